"""What a test costs before its own first line: the ``app`` and ``world`` fixtures, the old way and the new way.

Each round builds a test's app on the given database twice, in turn (so that both ways see the same load on a
shared machine), and times each phase in wall-clock and in this process's CPU time:

- old: ``create_app`` with werkzeug compiling every URL builder, then the clean database as tests/conftest.py made
  it until issue 19 (SQLite: drop and create every table; PostgreSQL: create_all, then TRUNCATE … RESTART IDENTITY
  CASCADE of every table);
- new: ``create_app`` with the builders kept (tests/parallel.py, ``cache_url_builders``), then
  ``clean_database`` (DELETE from the tables holding rows, reset the used sequences);

then the ``world`` fixture: old, built by the services (``build_world``, what every test did until the world was
saved); new, the fixture as it is now, which writes back the rows of the world this process built first (the
warm-up round builds it). Then ``engine.dispose()``. Medians over the rounds.

    python bench/suite_fixtures.py --rounds 20                                     # SQLite (a temporary file)
    python bench/suite_fixtures.py --rounds 20 --url postgresql+psycopg://postgres@127.0.0.1:5432/duesflow_x
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent.parent)]

import conftest  # noqa: E402
import parallel  # noqa: E402
from sqlalchemy import text  # noqa: E402
from werkzeug.routing.rules import Rule  # noqa: E402

from duesflow import create_app  # noqa: E402
from duesflow.extensions import db  # noqa: E402

CACHED_BUILDER = Rule._compile_builder  # conftest imported: the cache is in place


def old_clean(url: str) -> None:
    """tests/conftest.py's ``_clean`` before issue 19."""
    if url.startswith("postgresql"):
        tables = ", ".join(table.name for table in db.metadata.sorted_tables)
        db.metadata.create_all(db.engine)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    else:
        db.metadata.drop_all(db.engine)
        db.metadata.create_all(db.engine)


def one_test(url: str, way: str, times: dict[str, list[tuple[float, float]]]) -> None:
    def timed(phase: str, action) -> None:  # noqa: ANN001
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        times[f"{way} {phase}"].append((time.perf_counter() - wall, time.process_time() - cpu))

    Rule._compile_builder = CACHED_BUILDER if way == "new" else CACHED_BUILDER.__wrapped__
    apps = []
    timed("create_app", lambda: apps.append(create_app(conftest.app_config(url))))
    with apps[0].app_context():
        timed("clean", (lambda: parallel.clean_database()) if way == "new" else (lambda: old_clean(url)))
        timed("world", conftest.build_world if way == "old" else lambda: conftest.world.__wrapped__(apps[0]))
        db.session.remove()
        timed("dispose", db.engine.dispose)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", help="a database of its own (default: a temporary SQLite file)")
    arguments = parser.parse_args()
    url = arguments.url or f"sqlite:///{tempfile.mkdtemp()}/suite_fixtures.sqlite3"
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for way in ("old", "new"):  # warm-up: imports, the schema, the first compiled builders
        one_test(url, way, defaultdict(list))
    for _ in range(arguments.rounds):
        for way in ("old", "new"):
            one_test(url, way, times)
    print(f"{url.split(':')[0]}, {arguments.rounds} rounds; medians in ms, wall / CPU of this process")
    for way in ("old", "new"):
        total_wall = total_cpu = 0.0
        for phase in ("create_app", "clean", "world", "dispose"):
            wall = statistics.median(w for w, _ in times[f"{way} {phase}"]) * 1000
            cpu = statistics.median(c for _, c in times[f"{way} {phase}"]) * 1000
            total_wall, total_cpu = total_wall + wall, total_cpu + cpu
            print(f"  {way} {phase:<11} {wall:8.1f} / {cpu:7.1f}")
        print(f"  {way} {'sum':<11} {total_wall:8.1f} / {total_cpu:7.1f}")


if __name__ == "__main__":
    main()
