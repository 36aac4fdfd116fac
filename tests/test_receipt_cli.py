"""The receipt commands: sample-receipt, and render-receipts (every live receipt of a year, on a pool of processes,
read from the database in chunks)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest import advance
from pypdf import PdfReader
from sqlalchemy import select

from duesflow.extensions import db
from duesflow.models import Receipt
from duesflow.services.receipt_documents import count_live_receipts, live_receipt_contents
from duesflow.timeutil import beijing_today


def text_of(path: Path) -> str:
    return PdfReader(io.BytesIO(path.read_bytes())).pages[0].extract_text()


def page_of(path: Path) -> bytes:
    return PdfReader(io.BytesIO(path.read_bytes())).pages[0].get_contents().get_data()


# ---- sample-receipt ---------------------------------------------------------------------------------------


def test_sample_receipt_writes_a_first_version(runner, app, tmp_path):
    out = tmp_path / "sample.pdf"

    result = runner.invoke(args=["sample-receipt", str(out)])

    assert result.exit_code == 0, result.output
    page = text_of(out)
    number = f"{beijing_today().year}-000000"  # a sequence no real receipt has
    assert number in page and "欧阳晓明" in page and "人民币壹万贰仟叁佰肆拾伍元陆角柒分" in page
    assert "补发" not in page and "作废" not in page
    assert f"{app.config['PUBLIC_URL']}/verify/{number}?code=" in page


def test_sample_receipt_can_be_a_voided_reissue(runner, tmp_path):
    out = tmp_path / "sample.pdf"

    result = runner.invoke(args=["sample-receipt", str(out), "--version", "3", "--void"])

    assert result.exit_code == 0, result.output
    page = text_of(out)
    assert "补发（第3版）" in page and "作废" in page


def test_sample_receipt_refuses_version_zero(runner, tmp_path):
    assert runner.invoke(args=["sample-receipt", str(tmp_path / "x.pdf"), "--version", "0"]).exit_code == 2


# ---- render-receipts --------------------------------------------------------------------------------------


@pytest.fixture
def year_of_receipts(api, world) -> dict[str, dict]:
    """Four confirmed payments: one reissued, one voided (no live receipt), one voided and confirmed again."""
    payments = []
    for amount in ("1000.00", "2000.00", "3000.00", "4000.00"):
        payment = api.record(world.members["zhang"], amount)
        advance(api, payment["id"], 4)
        payments.append(api.act(payment["id"], "confirm", "central"))
    reissued, voided, again = payments[1], payments[2], payments[3]
    for payment, what in ((reissued, "reissue"), (voided, "void"), (again, "void")):
        answer = api.post(f"/payments/{payment['id']}/receipt/{what}", "central", json={"reason": "测试"})
        assert answer.status_code == 200, answer.json
    api.act(again["id"], "confirm", "central")
    live = db.session.execute(select(Receipt.number, Receipt.verification_code, Receipt.version)
                              .where(Receipt.voided.is_(False))).all()
    return {number: {"code": code, "version": version} for number, code, version in live}


def test_render_receipts_writes_every_live_receipt_of_the_year(runner, year_of_receipts, tmp_path):
    year = beijing_today().year
    out = tmp_path / "out"

    result = runner.invoke(args=["render-receipts", "--year", str(year), "--out", str(out), "--chunk", "2"])

    assert result.exit_code == 0, result.output
    assert "已写入 3 份收据" in result.output
    assert sorted(path.name for path in out.iterdir()) == sorted(f"{n}.pdf" for n in year_of_receipts)
    assert f"{year}-000003.pdf" not in os.listdir(out)  # voided, never confirmed again
    for number, receipt in year_of_receipts.items():
        page = text_of(out / f"{number}.pdf")
        assert number in page and receipt["code"] in page and "作废" not in page
        assert ("补发（第2版）" in page) == (receipt["version"] == 2)


def test_render_receipts_of_a_year_without_receipts_writes_nothing(runner, year_of_receipts, tmp_path):
    out = tmp_path / "out"

    result = runner.invoke(args=["render-receipts", "--year", str(beijing_today().year - 1), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "已写入 0 份收据" in result.output and list(out.iterdir()) == []


def test_receipts_are_read_in_chunks_and_not_kept(year_of_receipts):
    year = beijing_today().year
    sizes, held = [], []

    for chunk in live_receipt_contents(year, chunk_size=2):
        sizes.append(len(chunk))
        held.append(len(db.session.identity_map))

    assert sizes == [2, 1] and held == [0, 0]
    assert count_live_receipts(year) == 3


def test_render_receipts_with_one_process_writes_the_same_files(runner, year_of_receipts, tmp_path):
    year = str(beijing_today().year)
    one, two = tmp_path / "one", tmp_path / "two"

    assert runner.invoke(args=["render-receipts", "--year", year, "--out", str(one), "--processes", "1"]).exit_code == 0
    assert runner.invoke(args=["render-receipts", "--year", year, "--out", str(two)]).exit_code == 0

    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    for name in os.listdir(one):
        assert page_of(one / name) == page_of(two / name)  # rendering is deterministic, but for the signature
        verified = runner.invoke(args=["verify-receipt", str(two / name)])
        assert verified.exit_code == 0 and "真实有效" in verified.output, verified.output
