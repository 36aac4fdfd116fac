"""Typed SQLAlchemy models. The rules the database can keep are kept there: CHECK, UNIQUE, foreign keys."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from .extensions import db
from .identity import fold_username
from .money import MINIMUM_AMOUNT
from .personal_data import EncryptedText, PersonalField, data_keys
from .timeutil import utcnow
from .workflow import OrgKind, Role, State


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every engine and gives back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


Money = Numeric(14, 2, asdecimal=True)


def _in(column: str, values: type) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Org(db.Model):
    __tablename__ = "orgs"
    __table_args__ = (
        CheckConstraint(_in("kind", OrgKind), name="kind"),
        CheckConstraint("(kind = 'central') = (parent_id IS NULL)", name="root_is_central"),
        UniqueConstraint("parent_id", "name", name="uq_orgs_parent_name"),
        Index("ix_orgs_tree_path", "tree_path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    # Materialized path of ids, "/1/7/42/": the subtree of an org is every org whose path starts with its own.
    tree_path: Mapped[str] = mapped_column(String(400), default="")
    code: Mapped[str | None] = mapped_column(String(60), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Org | None] = relationship(remote_side=[id])

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids from the root down to and including this org."""
        return [int(part) for part in self.tree_path.strip("/").split("/")]


PERSONAL = "personal"  # the deferred group of a member's encrypted particulars


class Member(db.Model):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("gender IS NULL OR gender IN ('male', 'female')", name="gender"),
        Index("ix_members_org_created", "org_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    name: Mapped[str] = mapped_column(String(50))
    gender: Mapped[str | None] = mapped_column(String(6))
    birth_date: Mapped[date | None] = mapped_column(Date)
    joined_on: Mapped[date | None] = mapped_column(Date)
    # Encrypted at rest; found by the keyed hash beside it (personal_data.py). The hashes follow the values.
    # Deferred: most loads of a member (a payment's member, a list of payments) need no decryption.
    id_number: Mapped[str | None] = mapped_column("id_number_encrypted", EncryptedText, deferred=True,
                                                  deferred_group=PERSONAL)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    work_unit: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column("phone_encrypted", EncryptedText, deferred=True,
                                              deferred_group=PERSONAL)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    org: Mapped[Org] = relationship()

    @validates("id_number", "phone")
    def _index(self, field: PersonalField, value: str | None) -> str | None:
        setattr(self, f"{field}_hash", None if value is None else data_keys().blind_index(field, value))
        return value


class PersonalDataView(db.Model):
    """One showing of an unmasked personal value to a user (the access log central reads)."""

    __tablename__ = "personal_data_views"
    __table_args__ = (
        CheckConstraint("field IN ('id_number', 'phone')", name="field"),
        Index("ix_personal_data_views_created", "created_at", "id"),
        Index("ix_personal_data_views_member_created", "member_id", "created_at", "id"),
        Index("ix_personal_data_views_viewer_created", "viewer_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # when it was shown
    viewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    field: Mapped[str] = mapped_column(String(20))
    # Where it was shown: the request's method and path ("GET /api/v1/members/7", "GET /members/7/edit").
    shown_by: Mapped[str] = mapped_column(String(300))

    viewer: Mapped[User] = relationship()
    member: Mapped[Member] = relationship()


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", Role), name="role"),
        CheckConstraint(
            "(role = 'admin' AND org_id IS NULL AND member_id IS NULL)"
            " OR (role = 'member' AND org_id IS NULL AND member_id IS NOT NULL)"
            " OR (role IN ('clerk', 'reviewer', 'central') AND org_id IS NOT NULL AND member_id IS NULL)",
            name="role_affiliation",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # The username as it is unique and looked up: NFKC and case-folded (identity.fold_username), set with it.
    username_folded: Mapped[str] = mapped_column(String(64), unique=True)
    # The person's name (姓名) the pages show; the username is only what one logs in with (SPEC §10).
    display_name: Mapped[str] = mapped_column(String(50), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on a password change or deactivation: web sessions carrying an older value are void.
    auth_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org: Mapped[Org | None] = relationship()
    member: Mapped[Member | None] = relationship()

    @validates("username")
    def _fold_username(self, _key: str, username: str) -> str:
        self.username_folded = fold_username(username)
        return username

    @property
    def shown_name(self) -> str:
        """The name pages and documents show: the display name, a member account's member, else the username."""
        if self.display_name:
            return self.display_name
        return self.member.name if self.member is not None else self.username


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"amount >= {MINIMUM_AMOUNT}", name="amount_minimum"),
        CheckConstraint(_in("state", State), name="state"),
        CheckConstraint("method IN ('cash', 'bank_transfer', 'wechat', 'alipay', 'other')", name="method"),
        CheckConstraint("regular_dues_paid", name="regular_dues_paid"),
        Index("ix_payments_created", "created_at", "id"),
        Index("ix_payments_grassroots_created", "grassroots_org_id", "created_at", "id"),
        Index("ix_payments_grassroots_state", "grassroots_org_id", "state", "created_at", "id"),
        Index("ix_payments_holder_state", "holder_org_id", "state", "created_at", "id"),
        Index("ix_payments_member_created", "member_id", "created_at", "id"),
        # made for /metrics' old count by state (0012), which the audit heads' counts replaced; not read by a scrape
        Index("ix_payments_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    grassroots_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    holder_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    state: Mapped[str] = mapped_column(String(12), default=State.RECORDED.value)
    amount: Mapped[Decimal] = mapped_column(Money)
    collected_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(16))
    regular_dues_paid: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(500))
    # Org ids from the grassroots org up to central, fixed at the first submit.
    path: Mapped[list[int] | None] = mapped_column(JSON)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Optimistic lock: every change is an UPDATE ... WHERE version = :seen, so of two racing actions one wins.
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    member: Mapped[Member] = relationship()
    grassroots_org: Mapped[Org] = relationship(foreign_keys=[grassroots_org_id])
    holder_org: Mapped[Org] = relationship(foreign_keys=[holder_org_id])
    events: Mapped[list[Event]] = relationship(
        back_populates="payment", order_by="Event.id", lazy="raise_on_sql"
    )
    receipts: Mapped[list[Receipt]] = relationship(
        back_populates="payment", order_by="Receipt.id", lazy="selectin"
    )

    @property
    def receipt(self) -> Receipt | None:
        """The latest receipt (possibly voided), or None."""
        return self.receipts[-1] if self.receipts else None


class Event(db.Model):
    """One entry of a payment's history, linked into its grassroots org's audit hash chain (SPEC §8): ``chain``
    names the chain, ``position`` counts from 1 within it, ``prev_hash`` is the hash of the event before."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_payment", "payment_id", "id"),
        UniqueConstraint("chain", "position", name="uq_events_chain_position"),
        CheckConstraint("position >= 1", name="position_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    from_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    to_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    # What else the event changed, e.g. {"amount": "1000.00"} on record, old/new values on correct.
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    chain: Mapped[str] = mapped_column(String(24))
    position: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    payment: Mapped[Payment] = relationship(back_populates="events")
    actor: Mapped[User] = relationship(lazy="joined")
    from_org: Mapped[Org | None] = relationship(foreign_keys=[from_org_id], lazy="joined")
    to_org: Mapped[Org] = relationship(foreign_keys=[to_org_id], lazy="joined")


def payment_count_column(state: str) -> str:
    """The column of ``audit_heads`` that counts the chain's payments in ``state``."""
    return f"payments_{state}"


def _payment_count() -> Mapped[int]:
    return mapped_column(Integer, server_default=text("0"))


class AuditHead(db.Model):
    """The end of one audit hash chain: how many events it holds and the newest one's hash. Its row lock
    serializes the writers of that chain only (one grassroots org's), never those of other chains.

    It also counts the chain's payments in each state (``payment_count_column``): every event moves one payment
    from its ``from_state`` to its ``to_state``, and the UPDATE that moves the head moves the counts, so /metrics
    sums a row per grassroots org instead of counting the payments (SPEC §8)."""

    __tablename__ = "audit_heads"
    __table_args__ = (CheckConstraint("length >= 0", name="length_nonnegative"),)

    chain: Mapped[str] = mapped_column(String(24), primary_key=True)
    length: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    payments_recorded: Mapped[int] = _payment_count()
    payments_in_review: Mapped[int] = _payment_count()
    payments_at_central: Mapped[int] = _payment_count()
    payments_receipted: Mapped[int] = _payment_count()
    payments_returned: Mapped[int] = _payment_count()
    payments_rejected: Mapped[int] = _payment_count()
    payments_refunded: Mapped[int] = _payment_count()
    payments_withdrawn: Mapped[int] = _payment_count()


class AuditCheckpoint(db.Model):
    """A signed checkpoint of the event trail (SPEC §8): every chain's length and head at ``created_at``, as the
    signed JSON document ``audit-checkpoint`` printed (``services/audit_checkpoints.py``)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signer_fingerprint: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)


class Receipt(db.Model):
    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("year", "sequence", name="uq_receipts_year_sequence"),
        CheckConstraint("sequence >= 1", name="sequence_range"),  # past 999,999: a seventh digit (0014)
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "uq_receipts_one_live_per_payment",
            "payment_id",
            unique=True,
            sqlite_where=text("NOT voided"),
            postgresql_where=text("NOT voided"),
        ),
        # Loading a page's receipts asks for every version (voided too): the partial index above cannot serve it.
        Index("ix_receipts_payment", "payment_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    number: Mapped[str] = mapped_column(String(16), unique=True)  # YYYY-NNNNNN, six digits or more
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    verification_code: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer, default=1)
    issued_on: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)

    payment: Mapped[Payment] = relationship(back_populates="receipts")
    deliveries: Mapped[list[ReceiptDelivery]] = relationship(
        back_populates="receipt", order_by="ReceiptDelivery.version", lazy="selectin"
    )

    @property
    def delivery(self) -> ReceiptDelivery | None:
        """The signature for this version of the receipt (领取登记), or None while it is not delivered."""
        return next((d for d in self.deliveries if d.version == self.version), None)


class ReceiptDocument(db.Model):
    """The PDF of a receipt as last rendered, kept so that a download sends stored bytes instead of rendering
    again. Rendering is deterministic: ``fingerprint`` hashes everything the PDF depends on (what it shows, the
    font, the renderer's code), and a document whose fingerprint no longer matches is rendered anew."""

    __tablename__ = "receipt_documents"

    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipts.id"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiptSequence(db.Model):
    """The last receipt number issued in a Beijing year; its row lock makes numbering gapless."""

    __tablename__ = "receipt_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class DirectRemittance(db.Model):
    """Money an individual sent straight to central: refused, never receipted."""

    __tablename__ = "direct_remittances"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("state IN ('refused', 'returned')", name="state"),
        CheckConstraint(
            "(state = 'returned') = (returned_on IS NOT NULL AND returned_by_id IS NOT NULL)", name="returned_when"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    remitter_name: Mapped[str] = mapped_column(String(50))
    amount: Mapped[Decimal] = mapped_column(Money)
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(10), default="refused")
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sent back to the remitter (SPEC §9): when, with which voucher, recorded by whom.
    returned_on: Mapped[date | None] = mapped_column(Date)
    return_reference: Mapped[str | None] = mapped_column(String(100))
    returned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Token(db.Model):
    """An API bearer token; only its SHA-256 is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class ThrottleHit(db.Model):
    """One counted attempt (a failed login, a verification) under a throttle key."""

    __tablename__ = "throttle_hits"
    __table_args__ = (Index("ix_throttle_hits_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
        CheckConstraint("state IN ('in_flight', 'done')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="in_flight")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---- operations (SPEC §9): transfer batches, refunds, receipt delivery, notifications ----------------------


class Transfer(db.Model):
    """A transfer batch (汇总上缴): payments moved up one level together, with one bank transfer of their total."""

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("state IN ('sent', 'received')", name="state"),
        CheckConstraint("count >= 1", name="count_positive"),
        CheckConstraint(f"total >= {MINIMUM_AMOUNT}", name="total_minimum"),
        CheckConstraint("from_org_id <> to_org_id", name="moves_up"),
        CheckConstraint(
            "(state = 'received') = (received_at IS NOT NULL AND received_by_id IS NOT NULL"
            " AND amount_received IS NOT NULL)",
            name="received_when",
        ),
        Index("ix_transfers_from_created", "from_org_id", "created_at", "id"),
        Index("ix_transfers_to_state", "to_org_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    from_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    to_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    bank_reference: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(500))
    count: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[str] = mapped_column(String(10), default="sent")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    amount_received: Mapped[Decimal | None] = mapped_column(Money)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic lock, as on payments: of two receivers racing, one wins and the other gets 409.
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    from_org: Mapped[Org] = relationship(foreign_keys=[from_org_id])
    to_org: Mapped[Org] = relationship(foreign_keys=[to_org_id])
    # loaded only when asked for (the printed list): up to 10,000 items, not for every receipt or confirmation
    items: Mapped[list[TransferItem]] = relationship(back_populates="transfer", order_by="TransferItem.payment_id")
    discrepancies: Mapped[list[TransferDiscrepancy]] = relationship(
        order_by="TransferDiscrepancy.id", lazy="selectin"
    )


class TransferItem(db.Model):
    """One payment of a transfer batch, with its amount as it was sent."""

    __tablename__ = "transfer_items"
    __table_args__ = (
        UniqueConstraint("transfer_id", "payment_id", name="uq_transfer_items_transfer_payment"),
        Index("ix_transfer_items_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[Decimal] = mapped_column(Money)

    transfer: Mapped[Transfer] = relationship(back_populates="items")
    payment: Mapped[Payment] = relationship()


class TransferDiscrepancy(db.Model):
    """An amount the receiving org said it received that differs from the transfer's total: kept on record."""

    __tablename__ = "transfer_discrepancies"
    __table_args__ = (Index("ix_transfer_discrepancies_transfer", "transfer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    amount_expected: Mapped[Decimal] = mapped_column(Money)
    amount_received: Mapped[Decimal] = mapped_column(Money)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recorded_by: Mapped[User] = relationship(lazy="joined")


class Refund(db.Model):
    """The money of a rejected payment given back to the member by the grassroots org (one per payment)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("method IN ('cash', 'bank_transfer', 'wechat', 'alipay', 'other')", name="method"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    refunded_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(100))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiptDelivery(db.Model):
    """A receipt handed to the member, who signed the collection register (领取登记); one per receipt version, so
    a reissued receipt (补发) travels down and is signed for again."""

    __tablename__ = "receipt_deliveries"
    __table_args__ = (
        UniqueConstraint("receipt_id", "version", name="uq_receipt_deliveries_receipt_version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipts.id"))
    version: Mapped[int] = mapped_column(Integer)
    delivered_on: Mapped[date] = mapped_column(Date)
    signed_by: Mapped[str] = mapped_column(String(50))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    receipt: Mapped[Receipt] = relationship(back_populates="deliveries")


NOTIFICATION_STATES = ("pending", "sending", "sent", "failed", "kept")


class Notification(db.Model):
    """The outbox: a message to a member, written in the transaction that caused it and sent after commit.

    ``pending`` waits for a sender; ``sending`` is claimed by one (``claim_token``); ``sent`` and ``failed`` (the
    attempts ran out) are final; ``kept`` has no address to send to and is only shown on the member's page.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"state IN ({', '.join(repr(s) for s in NOTIFICATION_STATES)})", name="state"),
        CheckConstraint("kind IN ('receipt_issued')", name="kind"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("(state = 'sending') = (claim_token IS NOT NULL AND claimed_at IS NOT NULL)",
                        name="claimed_when_sending"),
        CheckConstraint("(state = 'sent') = (sent_at IS NOT NULL)", name="sent_when"),
        CheckConstraint("state = 'kept' OR recipient IS NOT NULL", name="addressed"),
        Index("ix_notifications_state_due", "state", "next_attempt_at"),
        Index("ix_notifications_member_created", "member_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
