"""Text people typed, printed literally in every PDF (SPEC §7, "text people typed is only ever text").

reportlab's ``Paragraph`` reads its text as markup: ``A<B`` breaks the parse (a 500), ``<img src=…/>`` embeds a
file of the server, ``<a href=…>`` becomes a link annotation. Every document in ``receipts/`` passes a typed
value through :func:`paragraph` (flowing text) or :func:`printable` (a string drawn on the canvas), and nothing
else: this module is the one place where typed text meets reportlab.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any, TypeVar
from xml.sax.saxutils import escape

from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph

ContentT = TypeVar("ContentT", bound=Any)


def printable(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1: line breaks, tabs, escapes) shown as a space: a
    printed line is one line, and no byte reaches the PDF that no font has a glyph for."""
    return "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)


def paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph that prints ``text`` exactly as typed (escaped, never read as markup)."""
    return Paragraph(escape(printable(text)), style)


def printable_content(content: ContentT, *typed: str) -> ContentT:
    """``content`` (a frozen dataclass) with its ``typed`` fields made :func:`printable`, for documents drawn on
    the canvas (the receipt, the slip), where a string is never read as markup but may hold control characters."""
    return dataclasses.replace(content, **{name: printable(getattr(content, name)) for name in typed})
