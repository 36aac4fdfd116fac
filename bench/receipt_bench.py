"""How long a receipt takes, against the floor, in one run; and how the batch command scales.

    python bench/receipt_bench.py [--runs 300] [--warmup 30] [--database-url URL] [--batch 500,2000] [--pyhanko]

For each font (reportlab's built-in CID font, and wqy-zenhei embedded when it is installed) it times, as medians:

- floor: a bare reportlab page with the same text in the same fonts and nothing else (no frame, no QR code, no
  signature); without a configured font that is the built-in CID font and Vera, embedded, as on the receipt;
- render: ``render_receipt_pdf`` of the same receipt, signed (PAdES, the instance's signing key);
- request: the whole ``GET /api/v1/payments/{id}/receipt.pdf`` through Flask's test client (token check, the
  database queries, the stored signed document), on a demo database (a temporary SQLite file unless
  ``--database-url`` is given).

The runs of the three are interleaved, so a slow patch of the machine hits all of them alike. Medians are the
target's measure; the minimum is printed beside them because on a busy machine a call of a few milliseconds is
often preempted, which moves the median but not the minimum.

``--batch`` then fills a temporary SQLite database with that many receipts (rows inserted directly, no events)
and runs ``render-receipts``' code in a fresh process with one and with two worker processes: wall time,
receipts per second, and the parent's peak memory (which must not grow with the number of receipts).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from reportlab.lib.pagesizes import A5, landscape
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from duesflow import create_app  # noqa: E402
from duesflow.demo import load_demo  # noqa: E402
from duesflow.extensions import db  # noqa: E402
from duesflow.models import AuditHead, Member, Payment, Receipt, User  # noqa: E402
from duesflow.receipts.batch import render_to_files  # noqa: E402
from duesflow.receipts.capitals import PREFIX, format_yuan, to_capitals  # noqa: E402
from duesflow.receipts.pdf import (  # noqa: E402
    ACKNOWLEDGEMENT,
    TITLE,
    ReceiptContent,
    _faces,
    render_receipt_pdf,
    signature_block_lines,
)
from duesflow.receipts.signature import SigningKey  # noqa: E402
from duesflow.services import audit  # noqa: E402
from duesflow.services.receipt_documents import (  # noqa: E402
    content_for,
    count_live_receipts,
    live_receipt_contents,
)
from duesflow.services.receipts import new_verification_code, receipt_number  # noqa: E402
from duesflow.signing import signing  # noqa: E402
from duesflow.timeutil import beijing_today  # noqa: E402

WQY = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
PASSWORD = "bench-password"


def floor_pdf(content: ReceiptContent, font_path: str | None, key: SigningKey) -> bytes:
    """The same strings, same fonts, same page size, one line each: what any receipt costs at least. Without a
    configured font that is two fonts, as on the receipt: the CID font, and Vera (embedded) for Latin letters and
    digits."""
    faces = _faces(font_path)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=landscape(A5), invariant=True)
    lines = [
        TITLE, f"编号：{content.number}", content.member_name, "同志：", *ACKNOWLEDGEMENT,
        "金额（小写）", format_yuan(content.amount), "金额（大写）", PREFIX + to_capitals(content.amount),
        "代收党组织", content.grassroots_org_name, "验证码", content.verification_code, "扫码核验收据真伪",
        "扫描二维码或访问以下地址，可核验本收据：", content.verify_url, *signature_block_lines(content, key),
    ]
    for number, line in enumerate(lines):
        text = canvas.beginText(40, 380 - 18 * number)
        for font, run in faces.runs(line):
            text.setFont(font, 12)
            text.textOut(run)
        canvas.drawText(text)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def pyhanko_signer(key: SigningKey, folder: str, page: Callable[[], bytes]) -> Callable[[], bytes]:
    """The floor page signed by pyHanko's own signer (PAdES, SHA-256, the same key): what signing with the library
    costs, for comparison with the one-pass signature ``render_receipt_pdf`` makes."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    key_file = Path(folder) / "pyhanko.p12"
    key_file.write_bytes(key.to_pkcs12())
    signer = signers.SimpleSigner.load_pkcs12(str(key_file), passphrase=None)
    meta = signers.PdfSignatureMetadata(field_name="Signature", subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256")

    def sign() -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(page()))
        return signers.PdfSigner(meta, signer=signer).sign_pdf(writer).getvalue()

    return sign


def medians(timed: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, tuple[float, float]]:
    """(median, minimum) seconds of each callable, the runs interleaved, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for call in timed.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in timed}
    gc.collect()
    for _ in range(runs):
        for name, call in timed.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: (statistics.median(values), min(values)) for name, values in samples.items()}


def app_for(database_url: str):  # noqa: ANN201
    return create_app({
        "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "bench-secret-of-at-least-32-characters",
        "PUBLIC_URL": "https://duesflow.example.cn",
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1,
    })


def time_receipts(args: argparse.Namespace, folder: str) -> list[tuple[str, dict[str, tuple[float, float]], tuple]]:
    app = app_for(args.database_url or f"sqlite:///{folder}/bench.sqlite3")
    rows = []
    with app.app_context():
        db.create_all()
        load_demo(PASSWORD)
        db.session.commit()
        payment = db.session.scalars(select(Payment).where(Payment.state == "receipted")).first()
        assert payment is not None and payment.receipt is not None
        content = content_for(payment.receipt)
        key = signing(app).key
        client = app.test_client()
        token = client.post("/api/v1/auth/token", json={"username": "demo-central", "password": PASSWORD}).json["token"]
        path, headers = f"/api/v1/payments/{payment.id}/receipt.pdf", {"Authorization": f"Bearer {token}"}
        db.session.remove()

        def request() -> bytes:
            response = client.get(path, headers=headers)
            assert response.status_code == 200
            return response.data

        fonts = [("CID STSong-Light (built in)", None)]
        if Path(WQY).exists():
            fonts.append(("wqy-zenhei.ttc (embedded)", WQY))
        for label, font_path in fonts:
            app.config["RECEIPT_FONT"] = font_path
            timed = {
                "floor": lambda font_path=font_path: floor_pdf(content, font_path, key),
                "render": lambda font_path=font_path: render_receipt_pdf(content, key, font_path),
                "request": request,
            }
            if args.pyhanko:
                timed["pyhanko"] = pyhanko_signer(key, folder, lambda font_path=font_path: floor_pdf(
                    content, font_path, key))
            result = medians(timed, args.runs, args.warmup)
            sizes = (len(floor_pdf(content, font_path, key)), len(render_receipt_pdf(content, key, font_path)))
            rows.append((label, result, sizes))
        if args.database_url:
            db.drop_all()
    return rows


def fill(database_url: str, count: int) -> tuple[int, int]:
    """``count`` more receipted payments with live receipts of this Beijing year, beside the demo's; returns the
    year and how many live receipts it now has."""
    app = app_for(database_url)
    with app.app_context():
        db.create_all()
        load_demo(PASSWORD)
        street = db.session.scalars(select(Member)).first()
        assert street is not None
        clerk = db.session.scalars(select(User).where(User.username == "demo-clerk")).one()
        central_id = db.session.scalars(select(Payment.holder_org_id).where(Payment.state == "receipted")).first()
        today = beijing_today()
        start = db.session.scalar(select(Receipt.sequence).order_by(Receipt.sequence.desc()).limit(1)) or 0
        for offset in range(0, count, 1000):
            batch = range(offset, min(count, offset + 1000))
            ids = db.session.scalars(insert(Payment).returning(Payment.id), [{
                "member_id": street.id, "grassroots_org_id": street.org_id, "holder_org_id": central_id,
                "state": "receipted", "amount": Decimal(1000 + n), "collected_on": today - timedelta(days=1),
                "method": "cash", "regular_dues_paid": True, "created_by_id": clerk.id, "version": 1,
            } for n in batch]).all()
            db.session.execute(insert(Receipt), [{
                "payment_id": payment_id, "number": receipt_number(today.year, start + n + 1), "year": today.year,
                "sequence": start + n + 1, "verification_code": new_verification_code(), "version": 1,
                "issued_on": today, "voided": False,
            } for n, payment_id in zip(batch, ids, strict=True)])
        receipted = audit.PAYMENT_COUNTS["receipted"]  # the chain head counts them, as if they had events
        moved = db.session.execute(update(AuditHead).where(AuditHead.chain == audit.chain_key(street.org_id))
                                   .values({receipted: receipted + count}))
        assert moved.rowcount == 1  # the demo recorded payments of this committee, so its chain has a head
        db.session.commit()
        return today.year, count_live_receipts(today.year)


def render_year(database_url: str, year: int, processes: int, out_dir: str) -> None:
    """The batch command's work in this process; prints as JSON the seconds in all and those spent reading the
    database (in the parent), the receipts written and the parent's peak memory."""
    app = app_for(database_url)
    reading = 0.0

    def timed_chunks() -> Iterator[list[ReceiptContent]]:
        nonlocal reading
        chunks = live_receipt_contents(year)
        while True:
            start = time.perf_counter()
            chunk = next(chunks, None)
            reading += time.perf_counter() - start
            if chunk is None:
                return
            yield chunk

    with app.app_context():
        start = time.perf_counter()
        written = render_to_files(timed_chunks(), Path(out_dir), None, signing(app).key, processes=processes)
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "reading": reading, "written": written, "peak_kib": peak_kib}))


def time_batches(sizes: list[int], folder: str) -> list[tuple[int, int, dict]]:
    rows = []
    for count in sizes:
        database_url = f"sqlite:///{folder}/batch-{count}.sqlite3"
        year, total = fill(database_url, count)
        for processes in (1, 2):
            out_dir = f"{folder}/out-{count}-{processes}"
            answer = subprocess.run(
                [sys.executable, __file__, "--render-year", str(year), "--processes", str(processes),
                 "--database-url", database_url, "--out", out_dir],
                capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            result = json.loads(answer.stdout.strip().splitlines()[-1])
            assert result["written"] == total, result
            rows.append((total, processes, result))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--batch", default="500,2000", help="receipt counts for the batch runs; empty: none")
    parser.add_argument("--pyhanko", action="store_true",
                        help="also time the floor page signed by pyHanko's signer, for comparison")
    parser.add_argument("--render-year", type=int, help=argparse.SUPPRESS)  # the batch's child process
    parser.add_argument("--processes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_year is not None:
        render_year(args.database_url, args.render_year, args.processes, args.out)
        return

    with tempfile.TemporaryDirectory() as folder:
        rows = time_receipts(args, folder)
        batches = time_batches([int(size) for size in args.batch.split(",") if size], folder)

    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load average {load:.2f}; "
          f"{args.runs} interleaved runs after {args.warmup} warm-up; median (minimum)")
    print()
    print("| font | floor | render_receipt_pdf | × floor | GET receipt.pdf | × floor | bytes (floor / receipt) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, result, (floor_size, receipt_size) in rows:
        (floor, floor_min), (render, render_min), (request, request_min) = (
            result["floor"], result["render"], result["request"])
        print(f"| {label} | {floor * 1000:.2f} ({floor_min * 1000:.2f}) ms "
              f"| {render * 1000:.2f} ({render_min * 1000:.2f}) ms "
              f"| {render / floor:.2f} ({render_min / floor_min:.2f}) "
              f"| {request * 1000:.2f} ({request_min * 1000:.2f}) ms | {request / floor:.2f} "
              f"| {floor_size} / {receipt_size} |")
    for label, result, _sizes in rows:
        if "pyhanko" in result:
            (floor, floor_min), (signed, signed_min) = result["floor"], result["pyhanko"]
            print(f"\n{label}: the floor page signed by pyHanko's signer {signed * 1000:.2f} "
                  f"({signed_min * 1000:.2f}) ms, {signed / floor:.2f} ({signed_min / floor_min:.2f}) × floor")
    if batches:
        print()
        print("| receipts | processes | seconds | receipts/s | of which reading the database | parent peak memory |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for count, processes, result in batches:
            print(f"| {count} | {processes} | {result['seconds']:.2f} | {count / result['seconds']:.0f} "
                  f"| {result['reading']:.2f} s | {result['peak_kib'] / 1024:.0f} MiB |")


if __name__ == "__main__":
    main()
