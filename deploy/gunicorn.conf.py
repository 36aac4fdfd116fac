"""gunicorn settings for duesflow (``gunicorn -c deploy/gunicorn.conf.py 'duesflow:create_app()'``).

The metrics directory is handled as prometheus_client's multiprocess mode asks: fresh at every start of the
server (made, or emptied, by the master before it forks a worker) and shared by all its workers; a worker that
exits is marked dead so that its live gauges leave the sums (its counters stay counted).
"""

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("DUESFLOW_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DUESFLOW_WORKERS", "4"))
worker_class = "sync"
timeout = 60
graceful_timeout = 20
# The app writes one JSON line per request to stderr; gunicorn's own access log would repeat it.
accesslog = None
errorlog = "-"
capture_output = True


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.is_dir():
            for entry in path.iterdir():  # the files of a previous start are not this server's
                if entry.is_file() and entry.suffix == ".db":
                    entry.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="duesflow-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    server.log.info("metrics directory %s", path)


def child_exit(server, worker):  # noqa: ANN001, ANN201
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001, ANN201
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if Path(directory).name.startswith("duesflow-metrics-") and Path(directory).parent == Path(tempfile.gettempdir()):
        shutil.rmtree(directory, ignore_errors=True)
