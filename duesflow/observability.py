"""Seeing the service run (SPEC §8, docs/operations.md): one JSON log line per request with its request id, errors
with their traceback in the same stream, and ``GET /metrics`` in Prometheus text, summed over every worker process
of the host.

The metrics use prometheus_client's multiprocess mode: every worker writes its counters to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker sums them all. The directory must be fresh at each server
start and shared by the workers of one server: ``deploy/gunicorn.conf.py`` makes or empties it when the master
starts and marks dead workers in ``child_exit``. Without it the app makes one itself, named after the process that
started the workers (the gunicorn master) and that process's start time, so that each server start gets its own.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy
from flask import Flask, Response, abort, g, has_request_context, request

from .errors_web import mask_personal_numbers
from .services import metrics as metric_reads

REQUEST_ID_HEADER = "X-Request-ID"
# Kept when a client (or the proxy in front) sends one like this; anything else is replaced by one of ours.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Endpoints whose refusal is a failed login or a failed verification, and the statuses that mean it.
LOGIN_ENDPOINTS = {"api.issue_token", "web.login"}
VERIFY_ENDPOINTS = {"api.verify_receipt", "web.verify_page"}

request_log = logging.getLogger("duesflow.request")


class JsonLines(logging.Formatter):
    """One JSON object per record: the time, the level, the logger, the request id and the message's fields;
    an error's traceback rides in the same line. Resident ID and mobile numbers are masked in everything."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        else:
            line["message"] = record.getMessage()
            request_id = _current_request_id()
            if request_id:
                line["request_id"] = request_id
        if record.exc_info:
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            line["traceback"] = record.exc_text
        return mask_personal_numbers(json.dumps(line, ensure_ascii=False, default=str))


def _current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def _configure_logging() -> None:
    """The ``duesflow`` loggers write JSON lines to stderr (gunicorn's error log, or the journal under systemd)."""
    logger = logging.getLogger("duesflow")
    if not any(isinstance(handler.formatter, JsonLines) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # app.logger is this logger: Flask adds no handler of its own beside it


def _start_time(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def metrics_directory() -> Path:
    """``PROMETHEUS_MULTIPROC_DIR``, or one made for this server start and set in the environment."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
    else:
        under_gunicorn = "gunicorn.arbiter" in sys.modules
        server = os.getppid() if under_gunicorn else os.getpid()
        path = Path(tempfile.gettempdir()) / f"duesflow-metrics-{server}-{_start_time(server)}"
        os.environ[MULTIPROC_ENV] = str(path)
        if not under_gunicorn:  # a process of its own (flask run, a command): its directory ends with it
            atexit.register(shutil.rmtree, path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class _Metrics:
    """The process's metric objects (one set per process, whatever number of apps it makes), made after the
    multiprocess directory is known."""

    made: _Metrics | None = None

    @classmethod
    def of_this_process(cls) -> _Metrics:
        if cls.made is None:
            cls.made = cls(metrics_directory())
        return cls.made

    def __init__(self, directory: Path) -> None:
        from prometheus_client import Counter, Histogram, values

        if values.ValueClass.__name__ == "MutexValue":
            # prometheus_client was imported before the directory was set: its values would stay in this process.
            values.ValueClass = values.MultiProcessValue()
        self.directory = directory
        # In no registry of their own: a scrape reads every process's files (exposition).
        self.requests = Counter("duesflow_http_requests", "HTTP requests answered, by route pattern and status",
                                ["method", "endpoint", "status"], registry=None)
        self.latency = Histogram("duesflow_http_request_duration_seconds",
                                 "Time from the request's arrival in the app to its answer", ["endpoint"],
                                 registry=None)
        self.login_failures = Counter("duesflow_login_failures", "Refused logins (wrong credentials or throttled)",
                                      registry=None)
        self.verification_failures = Counter(
            "duesflow_verification_failures", "Public receipt verifications that found no receipt, or throttled",
            registry=None)

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        registry.register(_DatabaseCollector())
        return generate_latest(registry)


class _DatabaseCollector:
    """What the database knows, read at scrape time: payments by state, the outbox, usernames under attack, the age
    of the newest signed audit checkpoint."""

    def collect(self):  # noqa: ANN201 - a generator of prometheus metric families
        from prometheus_client.core import GaugeMetricFamily

        payments = GaugeMetricFamily("duesflow_payments", "Payments by state", labels=["state"])
        for state, count in metric_reads.payments_by_state().items():
            payments.add_metric([state], count)
        yield payments
        backlog = metric_reads.outbox_backlog()
        outbox = GaugeMetricFamily("duesflow_outbox_messages", "Notifications not yet sent, by state",
                                   labels=["state"])
        for state, count in backlog.counts.items():
            outbox.add_metric([state], count)
        yield outbox
        yield GaugeMetricFamily("duesflow_outbox_overdue_seconds",
                                "How long the most overdue pending notification has been due (0: none)",
                                value=backlog.overdue_seconds)
        clients = GaugeMetricFamily("duesflow_login_attack_clients",
                                    "Distinct client addresses that failed to log in as a username, in the window",
                                    labels=["username"])
        failures = GaugeMetricFamily("duesflow_login_attack_failures",
                                     "Failed logins of a username under attack, in the window", labels=["username"])
        for username, client_count, failure_count in metric_reads.usernames_under_attack():
            clients.add_metric([username], client_count)
            failures.add_metric([username], failure_count)
        yield clients
        yield failures
        yield GaugeMetricFamily("duesflow_audit_checkpoint_age_seconds",
                                "Seconds since the newest signed audit checkpoint (+Inf: none was ever written)",
                                value=metric_reads.checkpoint_age_seconds())


def _allowed_networks(setting: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]


def _metrics_allowed(networks: list[Any]) -> bool:
    """The client (after the trusted proxies' X-Forwarded-For, as the throttles see it) is in the allowed list."""
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped:
        client = client.ipv4_mapped
    return any(client in network for network in networks)


def init_app(app: Flask) -> None:
    """Request ids, JSON request logs and metrics. Registered before the blueprints, so that its clock starts
    before any other hook can answer."""
    _configure_logging()
    metrics = _Metrics.of_this_process()
    networks = _allowed_networks(app.config["METRICS_ALLOW"])

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = sent if _sane_request_id(sent) else _new_request_id()

    @app.after_request
    def _finish(response: Response) -> Response:
        started = g.get("request_started")
        if started is None:  # answered before this app's hooks ran (cannot happen for a routed request)
            return response
        duration = time.perf_counter() - started
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(duration)
        if request.endpoint in LOGIN_ENDPOINTS and response.status_code in (401, 429):
            metrics.login_failures.inc()
        if request.endpoint in VERIFY_ENDPOINTS and response.status_code in (404, 429):
            metrics.verification_failures.inc()
        response.headers[REQUEST_ID_HEADER] = g.request_id
        request_log.info("request", extra={"fields": {
            "request_id": g.request_id, "method": request.method, "route": endpoint,
            "status": response.status_code, "duration_ms": round(duration * 1000, 2), "user_id": _user_id(),
        }})
        return response

    def metrics_view() -> Any:
        if not _metrics_allowed(networks):
            abort(404)
        return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8")

    app.add_url_rule("/metrics", "metrics", metrics_view)


def _sane_request_id(request_id: str) -> bool:
    """A client's id is kept when it is short plain text that the log's masking leaves as it is (an id that
    looks like a resident ID or mobile number would not match its own log line)."""
    return bool(_SANE_REQUEST_ID.fullmatch(request_id)) and mask_personal_numbers(request_id) == request_id


def _new_request_id() -> str:
    while True:  # a random hex id holds a run of 11 digits now and then, which would be masked in the log
        request_id = uuid.uuid4().hex
        if mask_personal_numbers(request_id) == request_id:
            return request_id


def _user_id() -> int | None:
    """The authenticated user of the request, if one was established (bearer token or web session)."""
    user = g.get("user") or request.environ.get("duesflow.web_user")
    if user is None:
        return None
    # The key from the identity map: after the request's commit the instance is expired, and reading ``user.id``
    # would load the row again (a transaction and a SELECT per request, only for the log line).
    identity = sqlalchemy.inspect(user).identity
    return identity[0] if identity else None
