"""Flask commands: init-db, seed-orgs, create-user, demo, verify-audit."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask_migrate import upgrade

from .errors import DomainError
from .extensions import db


def _fail(error: DomainError) -> None:
    db.session.rollback()
    detail = f" {error.fields}" if error.fields else ""
    raise click.ClickException(f"{error.message}{detail}")


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
def create_user(username: str, password: str, role: str, org_id: int | None, member_id: int | None) -> None:
    """Create an account of any role."""
    from .services.users import create_user as create

    try:
        user = create(None, {"username": username, "password": password, "role": role, "org_id": org_id,
                             "member_id": member_id})
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
    click.echo("演示数据已载入。演示账户（密码均为 %s）：" % password)
    for username, role, where in logins:
        click.echo(f"  {username:<18} {role:<9} {where}")


@click.command("verify-audit")
def verify_audit() -> None:
    """Check the event hash chain and that every payment replays to its state (exit 1 naming the first bad
    record)."""
    from .services.audit import verify_audit as verify

    problem = verify()
    if problem is not None:
        click.echo(f"审计校验失败：{problem}", err=True)
        sys.exit(1)
    click.echo("审计校验通过：事件链完整，每笔款项的状态与事件一致。")


def register(app: Flask) -> None:
    for command in (init_db, seed_orgs, create_user, demo, verify_audit):
        app.cli.add_command(command)
