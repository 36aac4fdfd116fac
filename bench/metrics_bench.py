"""What a /metrics scrape costs on a large database (issue 18): payments by state from the state index, against
the same grouped count read from the table (the floor it avoids), and a whole scrape, in process.

    DUESFLOW_DATABASE_URL=sqlite:////tmp/duesflow-bench-1m.sqlite python bench/metrics_bench.py
    DUESFLOW_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/duesflow_bench_1m python bench/metrics_bench.py

The database is one made by ``python bench/bench_seed.py`` (upgraded to the current schema here, which builds
ix_payments_state when it is missing), or an empty one that ``--fill N`` fills with N payment rows in the states
bench-seed gives a million (its SQLite run in BENCHMARKS.md), one committee and member, in one statement: what a
scrape reads is the state index, whose size depends on the number of payments only. Each measurement runs
``--runs`` times after a warm-up; medians are printed, with the plan each engine chose.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from flask_migrate import upgrade
from sqlalchemy import func, select, text

from duesflow import create_app
from duesflow.extensions import db
from duesflow.services import metrics

GROUPED = "SELECT state, count(*) FROM payments GROUP BY state"
# bench-seed's million (BENCHMARKS.md, "bench-seed: a million payments"), in the order of the State enum.
BENCH_SEED_STATES = {"recorded": 1_655, "in_review": 9_344, "at_central": 4_280, "receipted": 947_315,
                     "returned": 38, "rejected": 3_227, "refunded": 17_239, "withdrawn": 16_902}


def fill(payments: int) -> None:
    """``payments`` rows in bench-seed's proportions of states, on an empty database."""
    from duesflow.models import Member, Payment
    from duesflow.services import orgs, users
    from duesflow.workflow import OrgKind

    if db.session.scalar(select(func.count()).select_from(Payment)):
        raise SystemExit("--fill wants a database without payments")
    central = orgs.create_org("中共中央组织部", OrgKind.CENTRAL, None)
    channel = orgs.create_org("中共吉林省委组织部", OrgKind.CHANNEL, central.id)
    committee = orgs.create_org("北门街道党工委", OrgKind.GRASSROOTS, channel.id)
    member = Member(org_id=committee.id, name="张建国")
    db.session.add(member)
    clerk = users.create_user(None, {"username": "metrics-bench", "password": "metrics-bench-password",
                                     "role": "clerk", "org_id": committee.id})
    db.session.flush()
    scale = payments / sum(BENCH_SEED_STATES.values())
    bounds, upper = [], 0
    for state, count in BENCH_SEED_STATES.items():
        upper += round(count * scale)
        bounds.append(f"WHEN i <= {upper} THEN '{state}'")
    state = f"CASE {' '.join(bounds)} ELSE 'receipted' END"
    numbers = ("generate_series(1, :n) AS i" if db.engine.dialect.name == "postgresql" else
               "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) SELECT i FROM n)")
    db.session.execute(text(
        "INSERT INTO payments (member_id, grassroots_org_id, holder_org_id, state, amount, collected_on, method, "
        "regular_dues_paid, created_by_id, created_at, updated_at, version) "
        f"SELECT :member, :org, :org, {state}, 1000.00, '2026-01-05', 'cash', true, :clerk, "
        "'2026-01-05 02:00:00.000000', '2026-01-05 02:00:00.000000', 1 FROM " + numbers),
        {"n": payments, "member": member.id, "org": committee.id, "clerk": clerk.id})
    db.session.commit()


def median_ms(call: Callable[[], object], runs: int) -> float:
    call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fill", type=int, default=0, help="first fill an empty database with this many payments")
    args = parser.parse_args()
    app = create_app()
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        if args.fill:
            fill(args.fill)
        engine = db.engine.dialect.name
        connection = db.session.connection()
        if engine == "postgresql":
            db.session.commit()
            raw = db.engine.raw_connection()  # VACUUM runs outside a transaction, past the app's engine hooks
            raw.driver_connection.autocommit = True
            raw.cursor().execute("VACUUM (ANALYZE) payments")  # what autovacuum does after a bulk load
            raw.close()
            connection = db.session.connection()
            plan = [row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {GROUPED}"))]
            table_scan = ("SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_indexscan = off; "
                          "SET LOCAL enable_bitmapscan = off")
        else:
            plan = [str(row[-1]) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {GROUPED}"))]
            table_scan = ""
        total = sum(metrics.payments_by_state().values())

        def through_the_table() -> object:
            if engine == "postgresql":
                for statement in table_scan.split("; "):
                    db.session.execute(text(statement))
                rows = db.session.execute(text(GROUPED)).all()
                db.session.rollback()
                return rows
            return db.session.execute(text("SELECT state, count(*) FROM payments NOT INDEXED GROUP BY state")).all()

        by_index = median_ms(metrics.payments_by_state, args.runs)
        by_table = median_ms(through_the_table, args.runs)
        client = app.test_client()
        scrape = median_ms(lambda: client.get("/metrics"), args.runs)
        print(f"engine {engine}, {total:,} payments, {args.runs} runs each, medians:")
        print(f"  payments by state from ix_payments_state   {by_index:8.1f} ms")
        print(f"  the same grouped count through the table    {by_table:8.1f} ms  (index / table = "
              f"{by_index / by_table:.2f})")
        print(f"  a whole /metrics scrape, in process         {scrape:8.1f} ms")
        print("  plan:", " | ".join(line.strip() for line in plan))


if __name__ == "__main__":
    main()
