"""What a /metrics scrape costs on a large database (issue 18): payments by state as the scrape reads them now (the
sums of the counts on the audit chain heads, one row per grassroots org), against the grouped count over
ix_payments_state it read before and the same count read from the table, and a whole scrape, in process.

    DUESFLOW_DATABASE_URL=sqlite:////tmp/duesflow-bench-1m.sqlite python bench/metrics_bench.py
    DUESFLOW_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/duesflow_bench_1m python bench/metrics_bench.py

The database is one made by ``python bench/bench_seed.py`` (upgraded to the current schema here, which builds
ix_payments_state and fills the heads' counts when they are missing), or an empty one that ``--fill N`` fills with N
payment rows in the states bench-seed gives a million (its SQLite run in BENCHMARKS.md), one committee and member,
in one statement, and ``--committees`` chain heads (bench-seed's ~2,000 orgs hold 1,678 grassroots committees)
sharing their counts: the old count reads the state index, whose size depends on the number of payments only; the
new sum reads the heads, one per committee. The three ways are run in turns, ``--runs`` times after a warm-up;
medians of wall-clock and of this process's CPU time are printed (SQLite runs in the process; PostgreSQL's work is
the server's, so its CPU time here is only the client's), with the plan each engine chose for the old count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from flask_migrate import upgrade
from sqlalchemy import func, insert, select, text

from duesflow import create_app
from duesflow.extensions import db
from duesflow.services import metrics

GROUPED = "SELECT state, count(*) FROM payments GROUP BY state"
# bench-seed's million (BENCHMARKS.md, "bench-seed: a million payments"), in the order of the State enum.
BENCH_SEED_STATES = {"recorded": 1_655, "in_review": 9_344, "at_central": 4_280, "receipted": 947_315,
                     "returned": 38, "rejected": 3_227, "refunded": 17_239, "withdrawn": 16_902}


def fill(payments: int, committees: int) -> None:
    """``payments`` rows in bench-seed's proportions of states, on an empty database, and ``committees`` chain heads
    whose counts add up to them (the committee's own and the others', which hold no events)."""
    from duesflow.models import AuditHead, Member, Payment
    from duesflow.services import orgs, users
    from duesflow.services.audit import GENESIS_HASH, PAYMENT_COUNTS, chain_key, counted_payments
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
    counted = counted_payments()[chain_key(committee.id)]
    chains = [chain_key(committee.id), *(f"bench-{n}" for n in range(1, committees))]
    db.session.execute(insert(AuditHead), [
        {"chain": chain, "length": 0, "last_hash": GENESIS_HASH,
         **{column.name: counted[state] // committees + (index < counted[state] % committees)
            for state, column in PAYMENT_COUNTS.items()}}
        for index, chain in enumerate(chains)])
    db.session.commit()


def in_turns(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float]]:
    """Each call's median wall-clock and CPU milliseconds, the calls taking turns, after one warm-up each."""
    for call in calls.values():
        call()
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            timings[name].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    return {name: (statistics.median(t[0] for t in runs_of), statistics.median(t[1] for t in runs_of))
            for name, runs_of in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fill", type=int, default=0, help="first fill an empty database with this many payments")
    parser.add_argument("--committees", type=int, default=1678, help="--fill: how many chain heads share the counts")
    args = parser.parse_args()
    app = create_app()
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        if args.fill:
            fill(args.fill, args.committees)
        engine = db.engine.dialect.name
        connection = db.session.connection()
        if engine == "postgresql":
            db.session.commit()
            raw = db.engine.raw_connection()  # VACUUM runs outside a transaction, past the app's engine hooks
            raw.driver_connection.autocommit = True
            raw.cursor().execute("VACUUM (ANALYZE) payments, audit_heads")  # what autovacuum does after a bulk load
            raw.close()
            connection = db.session.connection()
            plan = [row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {GROUPED}"))]
            table_scan = ("SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_indexscan = off; "
                          "SET LOCAL enable_bitmapscan = off")
        else:
            plan = [str(row[-1]) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {GROUPED}"))]
            table_scan = ""
        total = sum(metrics.payments_by_state().values())
        by_index = {state: count for state, count in db.session.execute(text(GROUPED))}
        assert {state: count for state, count in metrics.payments_by_state().items() if count} == by_index
        heads = db.session.scalar(text("SELECT count(*) FROM audit_heads"))

        def through_the_table() -> object:
            if engine == "postgresql":
                for statement in table_scan.split("; "):
                    db.session.execute(text(statement))
                rows = db.session.execute(text(GROUPED)).all()
                db.session.rollback()
                return rows
            return db.session.execute(text("SELECT state, count(*) FROM payments NOT INDEXED GROUP BY state")).all()

        client = app.test_client()
        medians = in_turns({
            "heads": metrics.payments_by_state,
            "index": lambda: db.session.execute(text(GROUPED)).all(),
            "table": through_the_table,
            "scrape": lambda: client.get("/metrics"),
        }, args.runs)
        print(f"engine {engine}, {total:,} payments, {heads:,} chain heads, {args.runs} runs each in turns, "
              "medians (wall ms / this process's CPU ms):")
        for name, label in (("heads", "payments by state: sums over the chain heads"),
                            ("index", "before: grouped count from ix_payments_state"),
                            ("table", "the same grouped count through the table"),
                            ("scrape", "a whole /metrics scrape, in process")):
            wall, cpu = medians[name]
            print(f"  {label:48} {wall:9.2f} / {cpu:9.2f}")
        print(f"  heads / index (wall) = {medians['heads'][0] / medians['index'][0]:.4f}")
        print("  plan of the old count:", " | ".join(line.strip() for line in plan))


if __name__ == "__main__":
    main()
