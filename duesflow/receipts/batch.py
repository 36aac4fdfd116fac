"""Render many receipts to files on every core: the parent reads the database, a pool of processes draws.

Only the parent touches the database (in chunks, so memory stays bounded whatever the year holds); the workers
get plain :class:`ReceiptContent` values and write ``<number>.pdf`` themselves, so the PDF bytes never travel
back. The workers are *spawned*, not forked: they hold no copy of the parent's database connections, and the
same code runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .pdf import ReceiptContent, _faces, render_receipt_pdf
from .signature import SigningKey

_worker_font: str | None = None
_worker_key: SigningKey | None = None


def _start_worker(font_path: str | None, key_pkcs12: bytes) -> None:
    """Pool initializer: remember the font and the signing key, and register the font once in this process."""
    global _worker_font, _worker_key
    _worker_font = font_path
    _worker_key = SigningKey.from_pkcs12(key_pkcs12)
    _faces(font_path)


def _render_to_file(job: tuple[ReceiptContent, str]) -> str:
    """Render one receipt into ``path`` (written under a temporary name, then renamed: never half a file)."""
    content, path = job
    partial = f"{path}.part"
    with open(partial, "wb") as handle:
        assert _worker_key is not None  # set by the pool initializer
        handle.write(render_receipt_pdf(content, _worker_key, _worker_font))
    os.replace(partial, path)
    return content.number


def render_to_files(
    chunks: Iterable[Sequence[ReceiptContent]],
    out_dir: Path,
    font_path: str | None,
    key: SigningKey,
    *,
    processes: int = 2,
    done: Callable[[int], None] = lambda count: None,
) -> int:
    """Write every receipt of ``chunks`` as ``out_dir/<number>.pdf``, signed with ``key``; returns how many were
    written. The key travels to the workers as a PKCS#12 file over the pool's pipe, never through the disk.

    The next chunk is read (from the database, in the caller's iterator) while the pool draws the current one,
    so at most two chunks of contents are held at once; ``done(1)`` is called as each receipt is written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0

    def drain(results: Iterator[str]) -> None:
        nonlocal written
        for _number in results:
            written += 1
            done(1)

    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(font_path, key.to_pkcs12())) as pool:
        in_flight: Iterator[str] | None = None
        for chunk in chunks:
            jobs = [(content, str(out_dir / f"{content.number}.pdf")) for content in chunk]
            queued = pool.imap_unordered(_render_to_file, jobs, chunksize=4)  # the workers start on it now
            if in_flight is not None:
                drain(in_flight)
            in_flight = queued
        if in_flight is not None:
            drain(in_flight)
    return written
