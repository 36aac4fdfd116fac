"""Senders of the notification outbox: anything with ``send(message)`` that delivers or raises.

Which one runs is configuration: ``DUESFLOW_NOTIFICATION_SENDER`` (``module:factory``, called with the app's
config) if set, else SMTP when ``DUESFLOW_SMTP_URL`` is set, else none (messages stay in the outbox and are
shown on the member's page). No Flask, no database.
"""

from __future__ import annotations

import importlib
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")


@dataclass(frozen=True)
class OutgoingMessage:
    """One message of the outbox, as a sender gets it."""

    notification_id: int
    recipient: str
    subject: str
    body: str


class Sender(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Deliver ``message``, or raise: any exception counts as a failed attempt, retried later."""


class SmtpSender:
    """Sends plain-text UTF-8 mail over SMTP. ``smtp://`` (port 25), ``smtp+starttls://`` (587, STARTTLS) or
    ``smtps://`` (465, TLS from the start); ``user:password@`` in the URL logs in."""

    def __init__(self, url: str, mail_from: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            raise ValueError(f"DUESFLOW_SMTP_URL must be {', '.join(s + '://host[:port]' for s in SMTP_SCHEMES)}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or {"smtp": 25, "smtps": 465, "smtp+starttls": 587}[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.mail_from = mail_from
        self.timeout = float(parse_qs(parts.query).get("timeout", [timeout])[0])

    def message(self, message: OutgoingMessage) -> EmailMessage:
        """The e-mail of an outbox message. Its Message-ID is derived from the outbox row, so a copy sent again
        after a crash (see docs/features.md, "Notifications") is recognisably the same message."""
        mail = EmailMessage()
        mail["From"] = self.mail_from
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        domain = self.mail_from.rpartition("@")[2] or self.host
        mail["Message-ID"] = f"<duesflow-notification-{message.notification_id}@{domain}>"
        mail.set_content(message.body, charset="utf-8")
        return mail

    def send(self, message: OutgoingMessage) -> None:
        context = ssl.create_default_context()
        if self.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(self.message(message))


def sender_from_config(config: Mapping[str, Any]) -> Sender | None:
    """The sender the configuration names, or None when notifications are only kept and shown."""
    chosen = config.get("NOTIFICATION_SENDER")
    if chosen is not None and not isinstance(chosen, str):
        return chosen  # an object handed to create_app (tests, embedding)
    if chosen:
        module_name, _, factory_name = chosen.partition(":")
        factory = getattr(importlib.import_module(module_name), factory_name or "sender")
        return factory(config)
    if config.get("SMTP_URL"):
        if not config.get("MAIL_FROM"):
            raise ValueError("DUESFLOW_MAIL_FROM (the sender's address) is required with DUESFLOW_SMTP_URL")
        return SmtpSender(config["SMTP_URL"], config["MAIL_FROM"])
    return None
