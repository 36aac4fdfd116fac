"""Flask commands: init-db, seed-orgs, create-user, demo, verify-audit, audit-checkpoint, verify-receipt,
sample-receipt, render-receipts, import-members, import-payments, backup, send-notifications, generate-data-key,
rotate-data-key (bench-seed is bench/bench_seed.py)."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click
from flask import Flask, current_app, g
from flask_migrate import upgrade

from .errors import DomainError
from .extensions import db
from .receipts.capitals import format_yuan
from .timeutil import beijing_today


def _fail(error: DomainError) -> None:
    """Stop the command with the error's message and each field's messages on lines of their own."""
    db.session.rollback()
    lines = [error.message]
    for name, messages in (error.fields or {}).items():
        for message in messages if isinstance(messages, list) else [messages]:
            lines.append(f"  --{name.replace('_', '-')}: {message}")
    raise click.ClickException("\n".join(lines))


@click.command("init-db")
def init_db() -> None:
    """Create or upgrade the schema by applying the migrations (idempotent)."""
    upgrade(directory=current_app.extensions["migrate"].directory)
    click.echo("数据库结构已是最新。")


@click.command("seed-orgs")
def seed_orgs() -> None:
    """Load the real channel tree under 中共中央组织部 (idempotent)."""
    from .services.orgs import seed_orgs as seed

    central, added = seed()
    db.session.commit()
    click.echo(f"已载入转交渠道：新增 {added} 个组织（根：{central.name}，id {central.id}）。")


@click.command("create-user")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "clerk", "reviewer", "central", "member"]))
@click.option("--org", "org_id", type=int, default=None, help="org id (clerk, reviewer, central)")
@click.option("--member", "member_id", type=int, default=None, help="member id (member accounts)")
@click.option("--display-name", default="", help="the person's name (姓名) the pages show")
def create_user(username: str, password: str, role: str, org_id: int | None, member_id: int | None,
                display_name: str) -> None:
    """Create an account of any role."""
    from .services.users import create_user as create

    try:
        user = create(None, {"username": username, "password": password, "role": role, "org_id": org_id,
                             "member_id": member_id, "display_name": display_name})
    except DomainError as error:
        _fail(error)
        return
    db.session.commit()
    click.echo(f"已创建用户 {user.username}（{user.role}，id {user.id}）。")


@click.command("demo")
@click.option("--password", default="demo-password", show_default=True, help="password of every demo login")
def demo(password: str) -> None:
    """Load a demo branch (Jilin → Siping → Tiedong) with users and payments in every state."""
    from .demo import load_demo

    logins = load_demo(password)
    db.session.commit()
    click.echo(f"演示数据已载入。演示账户（密码均为 {password}）：")
    for username, role, where in logins:
        click.echo(f"  {username:<18} {role:<9} {where}")
    click.echo(f"登录地址：{current_app.config['PUBLIC_URL']}/login")


@click.command("verify-audit")
@click.option("--checkpoint", "checkpoints", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a signed checkpoint file (audit-checkpoint): nothing recorded before it may be missing or changed")
@click.option("--jobs", type=click.IntRange(min=1),
              help="processes checking chains side by side (default: one per CPU for 100,000 events or more)")
def verify_audit(checkpoints: tuple[Path, ...], jobs: int | None) -> None:
    """Check the event hash chain and that every payment replays to its state, and against each checkpoint given
    that nothing before it was removed, truncated or rewritten (exit 1 naming the first bad record)."""
    from .services.audit import default_jobs
    from .services.audit import verify_audit as verify
    from .services.audit_checkpoints import CheckpointRefused, check_against, read_checkpoint

    g.read_only = True  # SQLite: read in a deferred transaction; writers go on while a large trail is checked
    try:
        signed = [read_checkpoint(path.read_text(encoding="utf-8")) for path in checkpoints]
    except (CheckpointRefused, UnicodeDecodeError) as refused:
        click.echo(f"审计校验失败：检查点文件不可信：{refused}", err=True)
        sys.exit(1)
    problem = verify(jobs or default_jobs())
    for checkpoint in signed:
        problem = problem or check_against(checkpoint)
    if problem is not None:
        click.echo(f"审计校验失败：{problem}", err=True)
        sys.exit(1)
    click.echo("审计校验通过：事件链完整，每笔款项的状态与事件一致。")
    for checkpoint in signed:
        click.echo(f"检查点（{checkpoint.created_at}，由{checkpoint.signed_by}签名）之前的记录无一缺失或改动。")


@click.command("audit-checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="write the signed checkpoint to this file (default: print it)")
def audit_checkpoint(out: Path | None) -> None:
    """Sign the length and head hash of every audit chain now, keep the checkpoint in the database and print it (or
    write it to OUT) for an archive outside the database's reach."""
    from .services.audit_checkpoints import write_checkpoint

    checkpoint = write_checkpoint()
    db.session.commit()
    if out is None:
        click.echo(checkpoint.document, nl=False)
        return
    out.write_text(checkpoint.document, encoding="utf-8")
    click.echo(f"审计检查点 {checkpoint.id} 已签名并写入 {out}。")


@click.command("verify-receipt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_receipt(file: Path) -> None:
    """Check a receipt PDF without the web service: signed by the service's key (current or retired), unchanged,
    and the live version of its receipt (exit 0 only then; 1 naming the reason; 2 when FILE is not a PDF)."""
    from .identity import mask_name
    from .receipts.verification import PROBLEM_TEXT
    from .services.receipts import verify_document

    g.read_only = True
    try:
        found = verify_document(file.read_bytes())
    except DomainError as error:
        click.echo(f"无法核验：{error.message}", err=True)
        sys.exit(2)
    if not found.valid:
        assert found.reason is not None
        click.echo(f"不是有效收据（{found.reason}）：{PROBLEM_TEXT[found.reason]}", err=True)
        sys.exit(1)
    assert found.amount is not None and found.issued_on is not None
    click.echo(f"真实有效：纪念收据 {found.number}（第{found.version}版），{format_yuan(found.amount)}，"
               f"{mask_name(found.member_name or '')}，{found.issued_on.isoformat()} 开具，由{found.signed_by}签名。")


@click.command("sample-receipt")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--version", "receipt_version", type=click.IntRange(min=1), default=1, show_default=True,
              help="a version above 1 is marked as a reissue (补发)")
@click.option("--void", "voided", is_flag=True, help="mark the sample as voided (作废)")
def sample_receipt(out: Path, receipt_version: int, voided: bool) -> None:
    """Write a receipt with made-up particulars to OUT (number YYYY-000000, which no real receipt has)."""
    from .receipts.pdf import ReceiptContent, render_receipt_pdf
    from .services.receipt_documents import verify_url
    from .services.receipts import ISSUER, new_verification_code, receipt_number
    from .signing import signing

    today = beijing_today()
    number, code = receipt_number(today.year, 0), new_verification_code()
    content = ReceiptContent(
        member_name="欧阳晓明", amount=Decimal("12345.67"), grassroots_org_name="中共四平市铁东区北门街道工作委员会",
        number=number, verification_code=code, issued_on=today, verify_url=verify_url(number, code),
        issuer=ISSUER, version=receipt_version, voided=voided,
    )
    out.write_bytes(render_receipt_pdf(content, signing().key, current_app.config["RECEIPT_FONT"]))
    click.echo(f"样例收据已写入 {out}（编号 {number}，第{receipt_version}版{'，已作废' if voided else ''}）。")


@click.command("render-receipts")
@click.option("--year", required=True, type=click.IntRange(2000, 9999), help="Beijing year of issue")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for the <number>.pdf files (created if missing)")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--chunk", type=click.IntRange(min=1), default=200, show_default=True,
              help="receipts read from the database at a time")
def render_receipts(year: int, out_dir: Path, processes: int, chunk: int) -> None:
    """Write every live receipt of a year as OUT/<number>.pdf, on several cores, in bounded memory."""
    from .receipts.batch import render_to_files
    from .services.receipt_documents import count_live_receipts, live_receipt_contents
    from .signing import signing

    total = count_live_receipts(year)
    with click.progressbar(length=total, label=f"{year} 年收据", show_pos=True) as bar:
        written = render_to_files(live_receipt_contents(year, chunk), out_dir, current_app.config["RECEIPT_FONT"],
                                  signing().key, processes=processes, done=bar.update)
    db.session.rollback()
    click.echo(f"已写入 {written} 份收据到 {out_dir}。")


@click.command("import-members")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_ref", required=True, metavar="ID|NAME",
              help="the active grassroots org they join: its id (the number in /admin/orgs/<id> on the admin's "
                   "组织 page, or in GET /api/v1/orgs) or its exact full name")
def import_members(file: Path, org_ref: str) -> None:
    """Import members from a CSV (UTF-8) or XLSX file: every row is checked, and nothing is imported when any
    row is bad (exit 1, the errors listed by row)."""
    from .services import member_import

    try:
        org = member_import.target_org(org_ref)
        sheet = member_import.read_sheet(file)
    except member_import.ImportRefused as error:
        raise click.ClickException(str(error)) from None
    with click.progressbar(sheet.rows, label="校验并导入党员", show_pos=True) as rows:
        result = member_import.import_rows(org, sheet, rows)
    if result.errors:
        db.session.rollback()
        for line in result.errors:
            click.echo(line, err=True)
        raise click.ClickException(f"{len(result.errors)} 处错误，未导入任何党员。请更正后重新导入整个文件。")
    db.session.commit()
    click.echo(f"已导入 {result.imported} 名党员到 {org.name}（id {org.id}）。")


@click.command("import-payments")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clerk", "username", required=True, help="username of the grassroots clerk who records them")
def import_payments(file: Path, username: str) -> None:
    """Record a batch of payments from a CSV (UTF-8) or XLSX file, as POST /api/v1/payments/batch does: every row
    is checked, and nothing is recorded when any row is bad (exit 1, the errors listed by row)."""
    from sqlalchemy import select

    from .models import User
    from .receipts.capitals import format_yuan
    from .services import payment_batch
    from .spreadsheets import ImportRefused

    clerk = db.session.scalars(select(User).where(User.username == username, User.active)).one_or_none()
    if clerk is None:
        raise click.ClickException(f"没有名为 {username} 的在用账户。")
    try:
        rows = payment_batch.rows_of_file(file)
    except ImportRefused as error:
        raise click.ClickException(str(error)) from None
    try:
        with click.progressbar(length=2 * len(rows), label="校验并登记款项", show_pos=True,
                               file=click.get_text_stream("stderr")) as bar:
            result = payment_batch.record_batch(clerk, rows, progress=bar.update)
    except DomainError as error:
        db.session.rollback()
        for number, columns in (error.fields or {}).get("rows", {}).items():
            for column, messages in columns.items():
                label = "" if column == "_schema" else f"（{payment_batch.LAYOUT.label(column)}）"
                for message in messages:
                    click.echo(f"第{number}行{label}：{message}", err=True)
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"已登记 {result.count} 笔款项，合计 {format_yuan(result.total)}（款项 #{result.payment_ids[0]} 至 "
               f"#{result.payment_ids[-1]}）。")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="replace FILE if it exists")
def backup(file: Path, overwrite: bool) -> None:
    """Write a consistent copy of the SQLite database to FILE while the service runs (SQLite's online backup);
    PostgreSQL is refused: use pg_dump."""
    from .backup import BackupRefused, backup_sqlite, sqlite_path

    db.session.remove()  # hold no transaction of our own while the copy is taken
    try:
        result = backup_sqlite(sqlite_path(current_app.config["SQLALCHEMY_DATABASE_URI"]), file,
                               overwrite=overwrite)
    except BackupRefused as refused:
        raise click.ClickException(str(refused)) from None
    click.echo(f"已备份到 {result.target}（{result.pages} 页，{result.bytes} 字节，完整性检查通过）。")


@click.command("send-notifications")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="messages sent at most in this run")
def send_notifications(limit: int) -> None:
    """Send the messages waiting in the outbox (new ones and those due for a retry); run it from cron or a timer.
    Safe to run on several hosts at once: each message is claimed before it is sent."""
    from .services.notifications import configured_sender, deliver_due

    sender = configured_sender(current_app)
    if sender is None:
        click.echo("未配置发送方式（DUESFLOW_SMTP_URL）：消息保留在站内，党员登录后在首页查看。")
        return
    report = deliver_due(sender, limit=limit)
    click.echo(f"已发送 {report.sent} 条；失败待重试 {report.retrying} 条；已放弃 {report.gave_up} 条。")


@click.command("generate-data-key")
def generate_data_key() -> None:
    """Print a new random key for DUESFLOW_DATA_KEY (docs/personal-data.md: keep it secret, keep it safe)."""
    from .personal_data import generate_key

    click.echo(generate_key())


@click.command("rotate-data-key")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True, help="members per commit")
def rotate_data_key(batch: int) -> None:
    """Re-encrypt every stored ID number and phone under DUESFLOW_DATA_KEY, after which the keys listed in
    DUESFLOW_DATA_OLD_KEYS may be dropped. Safe beside the running service and safe to run again."""
    from .services.members import rotate_data_key as rotate

    rotation = rotate(batch)
    click.echo(f"已检查 {rotation.checked} 名党员，重新加密 {rotation.rewritten} 名；"
               "现在可以从 DUESFLOW_DATA_OLD_KEYS 中删除旧密钥。")


def register(app: Flask) -> None:
    for command in (init_db, seed_orgs, create_user, demo, verify_audit, audit_checkpoint, verify_receipt,
                    sample_receipt, render_receipts, import_members, backup, send_notifications, generate_data_key,
                    rotate_data_key):
        app.cli.add_command(command)
    app.cli.add_command(import_payments)
