"""Transfer batches (汇总上缴, SPEC §9): payments moved up one level together, with one bank transfer of their
total; the receiving org records the money received; central confirms nothing whose money has not arrived."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, insert, literal, select, update
from sqlalchemy.engine import Row

from .. import permissions
from ..errors import AmountMismatch, InvalidTransition, NotEligible
from ..extensions import db
from ..models import Payment, Transfer, TransferDiscrepancy, TransferItem, User, utcnow
from ..receipts.capitals import format_yuan
from ..workflow import STATE_NAMES, Action, Position, State, target
from . import notifications, receipts
from . import payments as payment_service
from .audit import EventDraft, PaymentRef, append_events


@dataclass(frozen=True)
class TransferInput:
    payment_ids: list[int]
    bank_reference: str
    note: str | None = None


def _next_org_id(payment: Payment) -> int:
    """The org one level up from the payment's holder, along its (fixed or about to be fixed) path."""
    path = payment_service.upward_path(payment)
    return path[path.index(payment.holder_org_id) + 1]


_LOCKED_COLUMNS = (Payment.id, Payment.state, Payment.holder_org_id, Payment.grassroots_org_id, Payment.path,
                   Payment.amount)


def _locked_payments(user: User, ids: list[int]) -> list[Row[Any]]:
    """The visible payments among ``ids`` as plain rows (id, state, holder, grassroots org, path, amount), locked
    in id order: every transfer takes its rows in the same order, and before the audit chain's lock, so batches and
    single actions cannot deadlock on PostgreSQL. (Rows, not ORM objects: 10,000 of them a transfer.)"""
    query = (
        select(*_LOCKED_COLUMNS)
        .where(Payment.id.in_(ids), permissions.payment_visibility(user))
        .order_by(Payment.id)
        .with_for_update(of=Payment)
    )
    return list(db.session.execute(query))


def _why_not(user: User, payment: Payment | None, payment_id: int, action: Action) -> str | None:
    """Why the payment cannot travel in this batch, or None when it can."""
    if payment is None:
        return f"#{payment_id}（不存在或无权办理）"
    try:
        permissions.check_action(user, payment, action)
    except InvalidTransition:
        return f"#{payment.id}（{STATE_NAMES[payment.state]}，在{payment.holder_org.name}）"
    return None


def create_transfer(user: User, data: TransferInput) -> Transfer:
    """Move every payment up one level as ``submit``/``forward`` would, each with its own event naming the
    transfer, in the caller's transaction; 409 ``not_eligible`` (and nothing moves) if any one cannot go.

    The statements do not grow with the batch: the payments are locked with one SELECT, the items and the events
    are one executemany INSERT each, and the payments move with one UPDATE (they all go to the same place). The
    payments are checked and moved once per kind (state, holder, committee, path): a committee's payments share
    them, so a transfer of 10,000 does the per-payment work of a few dozen."""
    action = permissions.transfer_move(user)
    ids = sorted(set(data.payment_ids))
    rows = _locked_payments(user, ids)
    kinds: dict[tuple[Any, ...], list[Row[Any]]] = {}
    for row in rows:
        kinds.setdefault((row.state, row.holder_org_id, row.grassroots_org_id, tuple(row.path or ())), []).append(row)
    # one payment of each kind, as an object, for the permission check and its path up
    samples = {payment.id: payment for payment in db.session.scalars(
        select(Payment).where(Payment.id.in_([group[0].id for group in kinds.values()])))} if kinds else {}
    eligible = {row.id for group in kinds.values() if _why_not(user, samples[group[0].id], group[0].id, action) is None
                for row in group}
    if len(eligible) != len(ids):
        found = {row.id for row in rows}
        loaded = {payment.id: payment for payment in db.session.scalars(
            select(Payment).where(Payment.id.in_([pid for pid in ids if pid in found and pid not in eligible])))}
        refused = [reason for payment_id in ids if payment_id not in eligible
                   if (reason := _why_not(user, loaded.get(payment_id), payment_id, action))]
        shown = "、".join(refused[:20]) + (f"等 {len(refused)} 笔" if len(refused) > 20 else "")
        raise NotEligible(f"以下款项不能由本单位汇总上缴：{shown}。所选款项均未上缴。")
    moves = {_move(samples[group[0].id], action) for group in kinds.values()}
    if len(moves) != 1:
        raise NotEligible("所选款项的上一级组织不同（转交路径在首次上报时已固定），不能合并为一笔上缴。"
                          "所选款项均未上缴。")
    to_state, to_org_id, path = moves.pop()
    now = utcnow()
    transfer = Transfer(
        from_org_id=user.org_id,
        to_org_id=to_org_id,
        bank_reference=data.bank_reference,
        note=data.note,
        count=len(rows),
        total=sum((row.amount for row in rows), Decimal("0.00")),
        state="sent",
        created_by_id=user.id,
        created_at=now,
    )
    db.session.add(transfer)
    db.session.flush()
    db.session.execute(insert(TransferItem.__table__), [
        {"transfer_id": transfer.id, "payment_id": row.id, "amount": row.amount} for row in rows
    ])
    in_transfer = select(TransferItem.payment_id).where(TransferItem.transfer_id == transfer.id)
    values: dict[str, Any] = {"state": to_state, "holder_org_id": to_org_id, "updated_at": now,
                              "version": Payment.version + 1}
    if action is Action.SUBMIT:  # the path is fixed at the first submit; a returned payment keeps its own
        values["path"] = func.coalesce(Payment.path, literal(list(path), Payment.path.type))
    db.session.execute(update(Payment).where(Payment.id.in_(in_transfer)).values(**values)
                       .execution_options(synchronize_session=False))
    _expire_loaded(set(ids))  # payments this session had loaded before moved behind its back
    note, details = f"随汇总上缴单 #{transfer.id} 上缴", {"transfer_id": transfer.id}
    append_events([
        EventDraft(payment=PaymentRef(row.id, to_state, to_org_id, row.grassroots_org_id), action=action.value,
                   actor=user, from_state=row.state, from_org_id=row.holder_org_id, note=note, details=details)
        for row in rows
    ])
    db.session.expire(transfer, ["items"])
    return transfer


def _expire_loaded(ids: set[int]) -> None:
    """Expire the payments among ``ids`` that the session holds (a page or a test that loaded them earlier), so
    that they are read again after a bulk UPDATE; a request that loaded none pays for no look-up."""
    for instance in list(db.session.identity_map.values()):
        if isinstance(instance, Payment) and instance.id in ids:
            db.session.expire(instance)


def transfer_payment_ids(transfer: Transfer) -> list[int]:
    """The ids of a transfer's payments, ascending (one column, not 10,000 item objects)."""
    return list(db.session.scalars(select(TransferItem.payment_id).where(TransferItem.transfer_id == transfer.id)
                                   .order_by(TransferItem.payment_id)))


def _move(payment: Payment, action: Action) -> tuple[str, int, tuple[int, ...]]:
    """Where ``action`` takes the payment: its state, its holder, and for a submit the path it fixes (a forward
    moves payments of several committees, each along its own path, to the same org)."""
    path = payment_service.upward_path(payment)
    there = target(action, Position(State(payment.state), path.index(payment.holder_org_id)), path)
    return there.state.value, path[there.holder_index], tuple(path) if action is Action.SUBMIT else ()


def receive_transfer(user: User, transfer: Transfer, amount_received: Decimal) -> Transfer:
    """The receiving org records the money that arrived. Equal to the total: ``received``. Otherwise the
    discrepancy is added to the session and ``AmountMismatch`` raised: the caller commits the discrepancy
    before answering (the transfer itself stays ``sent``)."""
    permissions.check_receive(user, transfer)
    if amount_received != transfer.total:
        db.session.add(TransferDiscrepancy(
            transfer_id=transfer.id, amount_expected=transfer.total, amount_received=amount_received,
            recorded_by_id=user.id, recorded_at=utcnow(),
        ))
        db.session.flush()
        difference = amount_received - transfer.total
        raise AmountMismatch(
            f"实收 {format_yuan(amount_received)} 与上缴单合计 {format_yuan(transfer.total)} 不符"
            f"（{'多' if difference > 0 else '少'} {format_yuan(abs(difference))}），差额已登记；"
            "上缴单仍为待确认到账，请与上缴单位核对后重新登记。"
        )
    transfer.state = "received"
    transfer.amount_received = amount_received
    transfer.received_by_id = user.id
    transfer.received_at = utcnow()
    db.session.flush()  # the version check: of two receivers racing, one wins here
    return transfer


@dataclass(frozen=True)
class ConfirmedTransfer:
    count: int
    first_number: str | None
    last_number: str | None


def confirm_transfer(user: User, transfer: Transfer) -> ConfirmedTransfer:
    """Central confirms a received transfer as a whole (SPEC §9): every payment of it still ``at_central`` is
    receipted, each with its own event, with consecutive receipt numbers in the order of the payments' ids, in the
    caller's transaction. A payment that went back down and came up again in a later transfer whose money has not
    arrived is left to that transfer. The statements do not grow with the transfer: one SELECT locking the
    payments, one UPDATE, one INSERT (executemany) each for receipts, events and notifications."""
    permissions.check_confirm_transfer(user, transfer)
    later_unreceived = (
        select(TransferItem.id).join(Transfer, Transfer.id == TransferItem.transfer_id)
        .where(TransferItem.payment_id == Payment.id, Transfer.id > transfer.id,
               Transfer.to_org_id == transfer.to_org_id, Transfer.state != "received")
    )
    confirmable = db.session.execute(
        select(Payment.id, Payment.grassroots_org_id)
        .where(Payment.id.in_(select(TransferItem.payment_id).where(TransferItem.transfer_id == transfer.id)),
               Payment.state == State.AT_CENTRAL.value, ~later_unreceived.exists())
        .order_by(Payment.id)
        .with_for_update(of=Payment)
    ).all()
    if not confirmable:
        return ConfirmedTransfer(0, None, None)
    ids = [payment_id for payment_id, _org in confirmable]
    receipted = State.RECEIPTED.value
    db.session.execute(
        update(Payment).where(Payment.id.in_(ids))
        .values(state=receipted, updated_at=utcnow(), version=Payment.version + 1)
        .execution_options(synchronize_session=False)
    )
    issued_on, numbers = receipts.issue_receipts(ids)
    append_events([
        EventDraft(payment=PaymentRef(payment_id, receipted, transfer.to_org_id, grassroots_org_id),
                   action=Action.CONFIRM.value, actor=user, from_state=State.AT_CENTRAL.value,
                   from_org_id=transfer.to_org_id,
                   details={"receipt_number": number, "transfer_id": transfer.id})
        for (payment_id, grassroots_org_id), (_id, number) in zip(confirmable, numbers, strict=True)
    ])
    notifications.queue_receipts_issued(dict(numbers), issued_on)
    return ConfirmedTransfer(len(numbers), numbers[0][1], numbers[-1][1])


def visible_transfers(user: User, *, state: str | None = None, direction: str | None = None) -> Select[Any]:
    """The transfers ``user`` may see, ``state`` ``sent``/``received``, ``direction`` ``in`` (sent to the user's
    org) or ``out`` (sent from it); unordered, for the caller's pagination."""
    query = select(Transfer).where(permissions.transfer_visibility(user))
    if state:
        query = query.where(Transfer.state == state)
    if direction == "in":
        query = query.where(Transfer.to_org_id == user.org_id)
    elif direction == "out":
        query = query.where(Transfer.from_org_id == user.org_id)
    return query


def transfer_payments(transfer: Transfer) -> list[Payment]:
    """The payments of a transfer, in id order, with what their list shows loaded."""
    ids = transfer_payment_ids(transfer)
    return list(db.session.scalars(select(Payment).where(Payment.id.in_(ids)).order_by(Payment.id)))

