"""Senders for the notification tests, loadable by name (DUESFLOW_NOTIFICATION_SENDER=notification_senders:sender)
in a ``flask send-notifications`` subprocess: each message sent is appended as one line to $TEST_MAILBOX; with
$TEST_SENDER_HANG set, the sender instead writes the message's id to that file and hangs, to be killed."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duesflow.mail import OutgoingMessage


class MailboxSender:
    def __init__(self, mailbox: Path, hang_marker: Path | None) -> None:
        self.mailbox = mailbox
        self.hang_marker = hang_marker

    def send(self, message: OutgoingMessage) -> None:
        if self.hang_marker is not None:
            self.hang_marker.write_text(str(message.notification_id))
            time.sleep(600)  # killed here, after the claim and before anything is sent
        with self.mailbox.open("a", encoding="utf-8") as mailbox:
            mailbox.write(f"{message.notification_id}\t{message.recipient}\t{message.subject}\n")


def sender(_config: Mapping[str, Any]) -> MailboxSender:
    hang = os.environ.get("TEST_SENDER_HANG")
    return MailboxSender(Path(os.environ["TEST_MAILBOX"]), Path(hang) if hang else None)
