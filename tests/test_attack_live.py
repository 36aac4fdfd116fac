"""Issue 14's attacks repeated against a live gunicorn (two workers) by bench/attack.py, as a person would run it:
the search oracle (finding 1) and the lockout (finding 4) are closed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date

import pytest
from conftest import PASSWORD, World
from live import PROJECT_ROOT, LiveServer, release_database, start_server

from duesflow.extensions import db
from duesflow.identity import mask_phone, mask_resident_id


@pytest.fixture
def two_workers(world: World, database_url: str, tmp_path) -> Iterator[tuple[LiveServer, int]]:  # noqa: ANN001
    """A server of two workers, and the id of 张建国 (read before the test lets go of the database)."""
    zhang = world.members["zhang"]
    zhang.birth_date = date(1990, 1, 5)
    db.session.commit()
    member_id = zhang.id
    release_database()
    server = start_server(database_url, tmp_path / "gunicorn", workers=2)
    yield server, member_id
    server.stop()


def attack(server: LiveServer, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "attack.py"), "--url", server.url,
                           "--password", PASSWORD, *options], capture_output=True, text=True, timeout=600,
                          cwd=PROJECT_ROOT)


def test_the_search_oracle_and_the_lockout_are_closed_against_a_live_server(two_workers):  # noqa: ANN001
    server, member_id = two_workers
    run = attack(
        server, "--reviewer", "tiedong", "--member-id", str(member_id),
        # the masks a reviewer used to see; short: the true values lie within the first tries
        "--phone-pattern", mask_phone("13843430001"), "--id-pattern", mask_resident_id("220302199001051231"),
        "--phone-from", "4330", "--newest-birth", "1990-01-10", "--tries", "20",
        "--victim", "central", "--attackers", "6", "--admin", "admin",
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "search oracle (finding 1): closed" in run.stdout
    assert "lockout (finding 4): closed" in run.stdout
    assert "attacker addresses refused even with the right password: 6 of 6" in run.stdout


def test_the_script_says_open_when_a_search_finds_the_member(two_workers):  # noqa: ANN001
    """The script does see an oracle: the clerk may look its own member up by whole ID, so as the clerk it finds."""
    server, member_id = two_workers
    run = attack(server, "--reviewer", "clerk", "--member-id", str(member_id), "--phone-pattern", "138****0001",
                 "--id-pattern", "220302********1231", "--newest-birth", "1990-01-10", "--tries", "20",
                 "--attackers", "1")

    assert run.returncode == 1, run.stdout + run.stderr
    assert "search oracle (finding 1): OPEN" in run.stdout and "?id_number=220302199001051231 finds" in run.stdout
