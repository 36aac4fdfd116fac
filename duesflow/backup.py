"""A consistent copy of the SQLite database while the service runs, through SQLite's online backup API.

PostgreSQL has its own tools (pg_dump, WAL archiving); copying its files from here would not be consistent,
so a backup of it is refused with a pointer to them.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupRefused(Exception):
    """The database cannot be backed up by this command; the message says what to do instead."""


@dataclass(frozen=True)
class BackupResult:
    target: Path
    pages: int
    bytes: int


PG_DUMP_HINT = (
    "本命令只能备份 SQLite 数据库。PostgreSQL 请用 pg_dump 做一致性备份，例如 "
    "`pg_dump -Fc -d DBNAME -f duesflow.dump`（恢复：pg_restore -d DBNAME duesflow.dump）；"
    "需要按时间点恢复时，请配置 WAL 归档（archive_mode/archive_command）并定期做 pg_basebackup。"
    "详见 docs/operations.md 的 Backups 一节。"
)


def sqlite_path(database_url: str) -> Path:
    """The file of an SQLite database URL; BackupRefused for any other engine or an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupRefused(PG_DUMP_HINT if url.get_backend_name() == "postgresql" else
                            f"不支持备份 {url.get_backend_name()} 数据库。")
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        raise BackupRefused("内存数据库无法备份。")
    return Path(url.database)


def backup_sqlite(source: Path, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy ``source`` to ``target`` with the online backup API, in one step: the copy is the database as of one
    moment (WAL: writers go on meanwhile), checked with ``PRAGMA integrity_check`` before it replaces ``target``.
    """
    if not source.is_file():
        raise BackupRefused(f"数据库文件 {source} 不存在。")
    if target.resolve() == source.resolve():
        raise BackupRefused("备份文件不能是数据库文件本身。")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} 已存在；确需覆盖请加 --overwrite。")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst)  # pages=-1: all pages in one step, so no concurrent writer can make it restart
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
        pages = dst.execute("PRAGMA page_count").fetchone()[0]
        check = dst.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            raise BackupRefused(f"备份副本未通过完整性检查：{check[:5]}")
        dst.commit()
    except BaseException:
        dst.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    dst.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    return BackupResult(target, pages, target.stat().st_size)
