"""bench/slow_sync.c, the disk model of ``bench/slow_disk``: preloaded, it makes every fsync and fdatasync of a
process, SQLite's commits among them, return the configured time after the real one, and changes nothing else."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DELAY_US = 40_000  # long beside any real sync, so that a lower bound is all the test needs

PROBE = """
import os, sqlite3, sys, time
folder = sys.argv[1]
fd = os.open(os.path.join(folder, "synced"), os.O_RDWR | os.O_CREAT)
os.write(fd, b"kept")
start = time.monotonic()
os.fsync(fd)
os.fdatasync(fd)
syncs = time.monotonic() - start
os.close(fd)
connection = sqlite3.connect(os.path.join(folder, "db.sqlite3"), isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA synchronous=FULL")
connection.execute("CREATE TABLE t (x)")
start = time.monotonic()
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO t VALUES (1)")
connection.execute("COMMIT")
commit = time.monotonic() - start
try:
    os.fsync(987654)  # no such descriptor: the real call's error comes back, not the sleep's
    error = 0
except OSError as refused:
    error = refused.errno
print(syncs, commit, connection.execute("SELECT count(*) FROM t").fetchone()[0],
      open(os.path.join(folder, "synced"), "rb").read().decode(), error)
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build bench/slow_sync.c")
    built = tmp_path_factory.mktemp("slow-disk") / "slow_sync.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(ROOT / "bench" / "slow_sync.c"),
                    "-ldl"], check=True)
    return built


def _probe(shim: Path, folder: Path, delay_us: int | None) -> tuple[float, float, int, str, int]:
    environment = {**os.environ, "LD_PRELOAD": str(shim)}
    environment.pop("SLOW_SYNC_US", None)
    if delay_us is not None:
        environment["SLOW_SYNC_US"] = str(delay_us)
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder)], env=environment, check=True,
                          capture_output=True, text=True)
    syncs, commit, rows, text, error = done.stdout.split()
    return float(syncs), float(commit), int(rows), text, int(error)


def test_every_sync_and_a_sqlite_commit_take_the_configured_time_more(shim: Path, tmp_path: Path) -> None:
    syncs, commit, rows, text, error = _probe(shim, tmp_path, DELAY_US)
    assert syncs >= 2 * DELAY_US / 1e6  # fsync and fdatasync both wait
    assert commit >= DELAY_US / 1e6  # SQLite's WAL commit with synchronous=FULL syncs through libc
    assert (rows, text, error) == (1, "kept", errno.EBADF)  # the real call still happens, and its result comes back


def test_without_a_delay_set_the_shim_only_passes_the_calls_on(shim: Path, tmp_path: Path) -> None:
    _syncs, _commit, rows, text, error = _probe(shim, tmp_path, None)
    assert (rows, text, error) == (1, "kept", errno.EBADF)
