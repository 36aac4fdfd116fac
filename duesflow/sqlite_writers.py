"""SQLite writers wait their turn on a file lock, not in SQLite's busy handler.

SQLite lets one writer in at a time, and a writer that finds the database locked sleeps in its busy handler:
1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms at a time, never woken when the lock is let go. Under
load (eight clerks recording at once through four gunicorn workers) the writers slept while the lock stood free:
the two cores were 60 % busy, a recording's p95 was 0.3–0.6 s, and duesflow recorded at 0.3 of the floor's rate
(BENCHMARKS.md, issue 15).

So a connection made by ``connect`` takes an exclusive ``flock`` on ``<database>-writers.lock`` before its
``BEGIN IMMEDIATE`` (``duesflow._sqlite_setup``) and lets it go once its transaction has ended (commit, rollback
or close). A writer that finds it taken waits in the kernel, which wakes it when the lock is let go; its wait is
ended by an alarm (``SIGALRM``, set for the wait only). That needs the main thread, where a gunicorn sync worker
and a command run; another thread (or a process whose alarm is someone else's) looks again every 0.1 ms at first,
then every 2 ms, which cost 0.7 ms of CPU per recording more under load (BENCHMARKS.md).

The file lock only orders duesflow's own writers; SQLite's lock still guards the data, and a writer that
does not take the file lock (the ``sqlite3`` shell, a backup) is waited for by SQLite's busy handler, as before
(after a wait for the file lock, that wait may add its own busy timeout). The wait for the file lock is bounded
by the connection's busy timeout; after it the writer fails as SQLite's own wait would, with "database is
locked" (503 ``service_unavailable``). The kernel lets the lock go with the process that held it, however it
ended. A lock file that cannot be opened leaves the writers to SQLite's busy handler, with a warning in the log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import threading
import time
import weakref
from typing import Any

log = logging.getLogger(__name__)

LOCK_SUFFIX = "-writers.lock"
FIRST_WAIT = 0.0001  # seconds between looks at first, doubling up to
LONGEST_WAIT = 0.002


class Connection(sqlite3.Connection):
    """A pysqlite connection that can hold the database's writer lock (given as ``factory`` to ``connect``)."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.busy_timeout = float(kwargs.get("timeout", 5.0))
        self._lock_path = _lock_path(database, kwargs.get("uri", False))
        self._lock_fd: int | None = None
        self._holding = False

    def take_writer_lock(self) -> None:
        """Wait for the writer lock (at most the busy timeout; then raise "database is locked")."""
        if self._lock_path is None or self._holding:
            return
        if self._lock_fd is None and not self._open_lock_file():
            return  # SQLite's own wait, as before
        assert self._lock_fd is not None
        if not _try_lock(self._lock_fd):  # taken: only then is the way to wait chosen
            wait = _wait_for_alarm if _alarm_is_ours() else _wait_looking_again
            if not (self.busy_timeout > 0 and wait(self._lock_fd, self.busy_timeout)):
                raise sqlite3.OperationalError("database is locked")
        self._holding = True

    def _open_lock_file(self) -> bool:
        """Open (or make) the lock file. ``flock`` needs no write access, so a file another account made (a command
        run as root) still serves; a file or folder this process may not open leaves it to SQLite's own wait."""
        assert self._lock_path is not None
        try:
            self._lock_fd = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            log.warning("writers wait in SQLite's busy handler: the lock file %s cannot be opened (%s)",
                        self._lock_path, error.strerror)
            self._lock_path = None
            return False
        # a connection the garbage collector takes without close() lets the lock go with it
        self._closing = weakref.finalize(self, os.close, self._lock_fd)
        return True

    def release_writer_lock(self) -> None:
        """Let the writer lock go, if this connection holds it and its transaction has ended."""
        if self._holding and not self.in_transaction:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
            self._holding = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lock_fd is not None:
                self._closing()  # closes the lock file, which lets the lock go, if held
                self._lock_fd, self._holding = None, False


def _lock_path(database: Any, uri: bool) -> str | None:
    """The lock file beside the database file; None for a database in memory (no other process can write it)."""
    name = os.fsdecode(database)
    if uri:
        if not name.startswith("file:") or "mode=memory" in name:
            return None
        name = name[len("file:"):].split("?", 1)[0]
    if name in ("", ":memory:"):
        return None
    return name + LOCK_SUFFIX


def _try_lock(fd: int) -> bool:
    """Take the lock if it is free (or already held through ``fd``)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_looking_again(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    wait = FIRST_WAIT
    while time.monotonic() < deadline:
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT)
        if _try_lock(fd):
            return True
    return False


class _WaitEnded(Exception):
    """Raised by the alarm into a blocked ``flock``."""


_waiting = False  # whether the main thread is in _wait_for_alarm: the alarm ends nothing else


def _on_alarm(_signal: int, _frame: Any) -> None:
    if _waiting:
        raise _WaitEnded()


def _alarm_is_ours() -> bool:
    """Whether this thread may wait on an alarm: the main thread, with no other handler or timer for it."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, _on_alarm)
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))


def _wait_for_alarm(fd: int, timeout: float) -> bool:
    """Block in ``flock`` until the lock is ours or the alarm rings after ``timeout`` seconds.

    The alarm may ring just as the lock comes, even after ``flock`` returned: wherever ``_WaitEnded`` lands, the
    last look tells (``flock`` again through the same descriptor succeeds when it already holds the lock)."""
    global _waiting
    signal.signal(signal.SIGALRM, _on_alarm)  # stays: it does nothing outside a wait
    try:
        _waiting = True
        try:
            # then every 5 ms: an alarm that rang before flock blocked (the C handler took it, so no EINTR reached
            # flock) is not the last
            signal.setitimer(signal.ITIMER_REAL, timeout, 0.005)
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            _waiting = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _WaitEnded:
        pass
    return _try_lock(fd)
