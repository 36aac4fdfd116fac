"""Rules the suite's own machinery relies on (docs/testing.md, "Running the tests")."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
READS_THE_URL = re.compile(r"""environ(?:\.get\(|\[)\s*["']DUESFLOW_TEST_DATABASE_URL""")


def test_a_module_that_reads_the_test_database_url_itself_names_it_pg_url():
    """The PostgreSQL run leaves out the tests without a database fixture, except those of a module with a PG_URL:
    a module reading the URL under another name would have its PostgreSQL-only tests never run."""
    readers = [path for path in TESTS.rglob("*.py") if READS_THE_URL.search(path.read_text(encoding="utf-8"))]
    assert readers, "no module reads DUESFLOW_TEST_DATABASE_URL: the pattern is out of date"
    for path in readers:
        assert re.search(r"^PG_URL\b", path.read_text(encoding="utf-8"), re.MULTILINE), path

