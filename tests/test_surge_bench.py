"""bench/surge.py runs end to end on a few hundred payments, so that the script cannot rot: a real gunicorn, batch
entry, transfers up every level, confirmation by transfer, verify-audit, gapless receipt numbers, the floor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_surge_runs_end_to_end(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'surge.sqlite3'}"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "surge.py"), "--engine", "sqlite", "--database", database,
         "--payments", "240", "--batch", "80", "--channels", "2", "--cities", "1", "--districts", "2",
         "--committees", "3", "--workers", "2", "--clients", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "| **batch entry → receipted** |" in result.stdout
    assert "receipt numbers 1..240 without a gap, verify-audit passed" in result.stdout
    assert "| central: received and confirmed |" in result.stdout
