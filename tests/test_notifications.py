"""Notifications (SPEC §9): when the receipt is issued the member is told. The message is written to the outbox in
the confirming transaction, sent after commit by a pluggable sender, retried a bounded number of times, never
sent twice, and survives a sender killed mid-way; without a sender it stays and is shown on the member's page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from conftest import advance
from live import PROJECT_ROOT, subprocess_env
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from duesflow.extensions import db
from duesflow.mail import OutgoingMessage, SmtpSender, sender_from_config
from duesflow.models import Notification, utcnow
from duesflow.services.notifications import SENDER_EXTENSION, _claim, deliver_due

EMAIL = "zhang@example.org"


class RecordingSender:
    """Keeps what it sends; fails the first ``failures`` attempts; can look at the database while sending."""

    def __init__(self, failures: int = 0, check=None, pause: float = 0.0) -> None:  # noqa: ANN001
        self.sent: list[OutgoingMessage] = []
        self.failures = failures
        self.check = check
        self.pause = pause
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        if self.check is not None:
            self.check(message)
        time.sleep(self.pause)
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionRefusedError("smtp server unreachable")
            self.sent.append(message)


class SenderKilled(BaseException):
    """What the process sees when it is killed: nothing after it runs, nothing catches it."""


class DyingSender:
    def send(self, message: OutgoingMessage) -> None:
        raise SenderKilled()


@pytest.fixture
def with_email(world):  # noqa: ANN001, ANN201
    world.members["zhang"].email = EMAIL
    db.session.commit()
    return world


@pytest.fixture
def sender(app):  # noqa: ANN001, ANN201
    """A recording sender plugged into the app, as DUESFLOW_NOTIFICATION_SENDER would plug one in."""
    recording = RecordingSender()
    app.extensions[SENDER_EXTENSION] = recording
    app.config["NOTIFICATION_RETRY_DELAY"] = timedelta(0)
    return recording


def confirmed(api, world, member: str = "zhang") -> dict:
    payment_id = api.record(world.members[member], as_user="clerk")["id"]
    advance(api, payment_id, 4)
    return api.act(payment_id, "confirm", "central")


def rows() -> list[Notification]:
    db.session.expire_all()
    found = list(db.session.scalars(select(Notification).order_by(Notification.id)))
    for row in found:
        db.session.expunge(row)  # read as they are now, without reloading later
    db.session.rollback()  # hold no transaction: the senders below need SQLite's write lock
    return found


# ---- the outbox ----------------------------------------------------------------------------------------


def test_issuing_a_receipt_writes_the_members_message_to_the_outbox(api, with_email):
    payment = confirmed(api, with_email)

    [row] = rows()

    assert (row.member_id, row.payment_id, row.kind) == (with_email.members["zhang"].id, payment["id"],
                                                         "receipt_issued")
    assert (row.state, row.recipient, row.attempts, row.sent_at) == ("pending", EMAIL, 0, None)
    assert payment["receipt"]["number"] in row.subject
    assert "张建国同志" in row.body and "¥1,000.00" in row.body and payment["receipt"]["number"] in row.body
    assert payment["receipt"]["verification_code"] not in row.body  # a mail is no place for the code


def test_a_member_without_an_address_gets_the_message_kept_for_the_page(api, world):
    confirmed(api, world)
    [row] = rows()
    assert (row.state, row.recipient) == ("kept", None)


def test_a_confirmation_that_fails_writes_no_message(api, with_email):
    payment_id = api.record(with_email.members["zhang"])["id"]
    advance(api, payment_id, 3)
    transfer = api.post("/transfers", "jilin", json={"payment_ids": [payment_id], "bank_reference": "B-1"}).json

    refused = api.post(f"/payments/{payment_id}/confirm", "central")

    assert refused.status_code == 409 and rows() == []
    api.post(f"/transfers/{transfer['id']}/receive", "central", json={"amount_received": "1000"})
    api.act(payment_id, "confirm", "central")
    assert len(rows()) == 1


def test_only_a_confirmation_writes_a_message(api, with_email):
    payment = confirmed(api, with_email)
    api.post(f"/payments/{payment['id']}/receipt/delivered", "clerk",
             json={"delivered_on": payment["receipt"]["issued_on"], "signed_by": "张建国"})
    assert len(rows()) == 1


# ---- sending after commit ------------------------------------------------------------------------------


def test_the_message_is_sent_after_the_confirmation_commits(api, with_email, sender):
    seen: list[int] = []

    def committed(message: OutgoingMessage) -> None:
        with db.engine.connect() as connection:  # another connection sees only what is committed
            seen.append(connection.execute(text("SELECT count(*) FROM receipts")).scalar_one())

    sender.check = committed
    payment = confirmed(api, with_email)

    assert seen == [1]
    assert [(m.recipient, m.subject) for m in sender.sent] == [(EMAIL, rows()[0].subject)]
    [row] = rows()
    assert (row.state, row.attempts, row.claim_token, row.last_error) == ("sent", 1, None, None)
    assert row.sent_at is not None and payment["receipt"]["number"] in sender.sent[0].subject


def test_a_sent_message_is_never_sent_again(api, with_email, sender):
    confirmed(api, with_email)

    for _ in range(3):
        deliver_due(sender)

    assert len(sender.sent) == 1


def test_a_failed_attempt_is_retried_and_then_sent_once(api, with_email, sender):
    sender.failures = 1
    confirmed(api, with_email)
    [row] = rows()
    assert (row.state, row.attempts, row.sent_at) == ("pending", 1, None)
    assert "ConnectionRefusedError" in row.last_error

    report = deliver_due(sender)

    assert (report.sent, report.retrying, report.gave_up) == (1, 0, 0)
    [row] = rows()
    assert (row.state, row.attempts, len(sender.sent)) == ("sent", 2, 1)


def test_a_retry_waits_for_its_delay(api, with_email, sender, app):
    app.config["NOTIFICATION_RETRY_DELAY"] = timedelta(hours=1)
    sender.failures = 1
    confirmed(api, with_email)

    assert deliver_due(sender).sent == 0
    assert rows()[0].next_attempt_at > utcnow() + timedelta(minutes=50)


def test_attempts_are_bounded(api, with_email, sender, app):
    app.config["NOTIFICATION_MAX_ATTEMPTS"] = 3
    sender.failures = 100
    confirmed(api, with_email)  # attempt 1, after the request

    reports = [deliver_due(sender) for _ in range(4)]

    assert [(r.retrying, r.gave_up) for r in reports] == [(1, 0), (0, 1), (0, 0), (0, 0)]
    [row] = rows()
    assert (row.state, row.attempts, sender.sent) == ("failed", 3, [])


def test_without_a_sender_the_message_stays_and_is_shown_on_the_members_page(app, api, with_email):
    payment = confirmed(api, with_email)
    from test_web_pages import Page

    page = Page(app.test_client())
    page.login("member")
    home = page.get("/").get_data(as_text=True)

    assert rows()[0].state == "pending"
    assert "消息" in home and payment["receipt"]["number"] in home and "已由中共中央组织部确认收到" in home
    other = Page(app.test_client())
    other.login("member_li")
    assert payment["receipt"]["number"] not in other.get("/").get_data(as_text=True)


def test_the_command_sends_what_waits_and_says_when_no_sender_is_configured(app, api, with_email, runner):
    confirmed(api, with_email)  # no sender yet: it waits
    assert "未配置发送方式" in runner.invoke(args=["send-notifications"]).output

    recording = RecordingSender()
    app.extensions[SENDER_EXTENSION] = recording
    result = runner.invoke(args=["send-notifications"])

    assert result.exit_code == 0 and "已发送 1 条" in result.output
    assert [m.recipient for m in recording.sent] == [EMAIL]


# ---- never twice: claims, killed senders, concurrent senders ---------------------------------------------


def test_a_row_is_claimed_by_one_sender_only(app, api, with_email):
    confirmed(api, with_email)
    [row] = rows()
    with Session(db.engine) as first, Session(db.engine) as second:
        assert _claim(first, row.id) is not None
        assert _claim(second, row.id) is None


def test_a_sender_killed_mid_way_is_recovered_and_the_message_sent_exactly_once(app, api, with_email):
    confirmed(api, with_email)  # no sender plugged in yet: pending
    app.config["NOTIFICATION_LEASE"] = timedelta(minutes=10)

    with pytest.raises(SenderKilled):
        deliver_due(DyingSender())  # dies after claiming, before anything is sent
    [row] = rows()
    assert (row.state, row.attempts) == ("sending", 1) and row.claim_token is not None

    recovering = RecordingSender()
    assert deliver_due(recovering).sent == 0  # the claim is still within its lease: nobody else sends it
    db.session.execute(text("UPDATE notifications SET claimed_at = :then"), {"then": utcnow() - timedelta(hours=1)})
    db.session.commit()
    assert deliver_due(recovering).sent == 1
    assert deliver_due(recovering).sent == 0

    assert len(recovering.sent) == 1
    [row] = rows()
    assert (row.state, row.attempts, row.claim_token) == ("sent", 2, None)


def test_a_claim_abandoned_on_the_last_attempt_ends_failed(app, api, with_email):
    app.config["NOTIFICATION_MAX_ATTEMPTS"] = 1
    confirmed(api, with_email)
    with pytest.raises(SenderKilled):
        deliver_due(DyingSender())
    db.session.execute(text("UPDATE notifications SET claimed_at = :then"), {"then": utcnow() - timedelta(hours=1)})
    db.session.commit()

    report = deliver_due(RecordingSender())

    assert report.gave_up == 1 and rows()[0].state == "failed"


def test_concurrent_senders_send_each_message_once(app, api, with_email):
    for _ in range(6):
        confirmed(api, with_email)
    rows()
    shared = RecordingSender(pause=0.02)

    def run() -> None:
        with app.app_context():
            deliver_due(shared)
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    ids = sorted(message.notification_id for message in shared.sent)
    assert ids == sorted(row.id for row in rows()) and len(ids) == 6
    assert {row.state for row in rows()} == {"sent"}


def test_a_sender_process_killed_with_sigkill_after_claiming_is_recovered(app, api, with_email, database_url,
                                                                          tmp_path):
    confirmed(api, with_email)
    [row] = rows()
    mailbox, marker = tmp_path / "mailbox.txt", tmp_path / "claimed.txt"
    env = subprocess_env(database_url)
    env.update(DUESFLOW_NOTIFICATION_SENDER="notification_senders:sender", TEST_MAILBOX=str(mailbox),
               PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "tests"), env["PYTHONPATH"]]))
    command = [sys.executable, "-m", "flask", "--app", "duesflow", "send-notifications"]

    hanging = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**env, "TEST_SENDER_HANG": str(marker)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert hanging.poll() is None, hanging.communicate()
        assert time.monotonic() < deadline, "the sender never claimed the message"
        time.sleep(0.05)
    hanging.send_signal(signal.SIGKILL)
    hanging.wait(timeout=30)
    assert marker.read_text() == str(row.id) and not mailbox.exists()
    assert rows()[0].state == "sending"

    within_lease = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert within_lease.returncode == 0 and not mailbox.exists(), within_lease.stdout + within_lease.stderr
    recovery = subprocess.run(command, cwd=PROJECT_ROOT, env={**env, "DUESFLOW_NOTIFICATION_LEASE": "0"},
                              capture_output=True, text=True, timeout=120)
    again = subprocess.run(command, cwd=PROJECT_ROOT, env={**env, "DUESFLOW_NOTIFICATION_LEASE": "0"},
                           capture_output=True, text=True, timeout=120)

    assert recovery.returncode == 0 and "已发送 1 条" in recovery.stdout, recovery.stdout + recovery.stderr
    assert "已发送 0 条" in again.stdout
    lines = mailbox.read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[:2] for line in lines] == [[str(row.id), EMAIL]]
    [row] = rows()
    assert (row.state, row.attempts) == ("sent", 2)


# ---- configuration -------------------------------------------------------------------------------------


def test_smtp_is_used_when_a_url_is_configured():
    chosen = sender_from_config({"SMTP_URL": "smtp+starttls://user:p%40ss@mail.example.org",
                                 "MAIL_FROM": "duesflow@example.org"})
    assert isinstance(chosen, SmtpSender)
    assert (chosen.host, chosen.port, chosen.username, chosen.password) == ("mail.example.org", 587, "user", "p@ss")
    assert sender_from_config({}) is None


@pytest.mark.parametrize("config", [
    {"SMTP_URL": "http://mail.example.org", "MAIL_FROM": "a@example.org"},
    {"SMTP_URL": "smtp://mail.example.org"},
])
def test_a_wrong_smtp_configuration_is_refused_at_startup(config):
    with pytest.raises(ValueError):
        sender_from_config(config)


def test_the_mail_is_utf8_with_a_message_id_of_its_outbox_row():
    smtp = SmtpSender("smtps://mail.example.org", "党费 <duesflow@example.org>")
    mail = smtp.message(OutgoingMessage(42, EMAIL, "您的纪念收据已开具", "张建国同志：……"))
    assert mail["Message-ID"] == "<duesflow-notification-42@example.org>" and mail["To"] == EMAIL
    assert mail.get_content().strip() == "张建国同志：……" and smtp.port == 465


def test_a_named_sender_is_loaded_from_its_module(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_MAILBOX", str(tmp_path / "box"))
    chosen = sender_from_config({"NOTIFICATION_SENDER": "notification_senders:sender"})
    chosen.send(OutgoingMessage(1, EMAIL, "主题", "正文"))
    assert (tmp_path / "box").read_text(encoding="utf-8").startswith(f"1\t{EMAIL}\t主题")


def test_no_notification_table_rows_leak_between_members(api, with_email):
    confirmed(api, with_email)
    confirmed(api, with_email, "li")
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 2
