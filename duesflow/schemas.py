"""Marshmallow schemas: what every request body may hold and the shape of every answer. The OpenAPI
document is generated from these same classes."""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from . import identity
from .dues import INCOME_CATEGORIES, DuesCategory
from .errors import InvalidAmount, ValidationFailed
from .money import JsonNumber, format_amount, parse_amount
from .timeutil import beijing_iso
from .workflow import OrgKind, Role, State

PAYMENT_METHODS = ("cash", "bank_transfer", "wechat", "alipay", "other")


# ---- marshmallow's own messages, in Chinese: the one place (the API and the pages both show these) ---------

_CHINESE_MESSAGES: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern), chinese) for pattern, chinese in [
    (r"Missing data for required field\.", "此项必填。"),
    (r"Field may not be null\.", "此项必填，不能为 null。"),
    (r"Unknown field\.", "不接受此字段（未知字段）。"),
    (r"Invalid input type\.|Invalid type\.|Not a valid mapping type\.", "须为 JSON 对象。"),
    (r"Not a valid list\.|Not a valid tuple\.", "须为列表。"),
    (r"Not a valid (utf-8 )?string\.", "须为字符串。"),
    (r"Not a valid integer\.", "须为整数。"),
    (r"Not a valid number\.|Special numeric values .*", "须为数字。"),
    (r"Number too large\.", "数值过大。"),
    (r"Not a valid boolean\.", "须为 true 或 false。"),
    (r"Not a valid date\.|.* cannot be formatted as a date\.", "日期须为 YYYY-MM-DD 格式。"),
    (r"Not a valid email address\.", "电子邮件地址格式不正确。"),
    (r"Not a valid URL\.", "网址格式不正确。"),
    (r"Shorter than minimum length 1\.", "此项必填，不能为空。"),
    (r"Shorter than minimum length (\d+)\.", r"不能少于 \1 个字符。"),
    (r"Longer than maximum length (\d+)\.", r"不能超过 \1 个字符。"),
    (r"Length must be between 0 and (\d+)\.", r"不能超过 \1 个字符。"),
    (r"Length must be between 1 and (\d+)\.", r"此项必填，且不能超过 \1 个字符。"),
    (r"Length must be between (\d+) and (\d+)\.", r"长度须为 \1 到 \2 个字符。"),
    (r"Length must be (\d+)\.", r"长度须为 \1 个字符。"),
    (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.", r"须在 \1 到 \2 之间。"),
    (r"Must be greater than or equal to (\S+)\.", r"不能小于 \1。"),
    (r"Must be less than or equal to (\S+)\.", r"不能大于 \1。"),
    (r"Must be one of: (.*)\.", r"须为所列选项之一：\1。"),
    (r"String does not match expected pattern\.", "格式不正确。"),
    (r"Invalid (value|input)\.", "值无效。"),
]]


def chinese_messages(messages: Any) -> Any:
    """marshmallow's error messages (a string, or lists and dicts of them) with its English defaults in Chinese;
    the project's own messages are Chinese already and pass unchanged."""
    if isinstance(messages, str):
        for pattern, chinese in _CHINESE_MESSAGES:
            if pattern.fullmatch(messages):
                return pattern.sub(chinese, messages)
        return messages
    if isinstance(messages, dict):
        return {key: chinese_messages(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [chinese_messages(value) for value in messages]
    return messages


# ---- fields ---------------------------------------------------------------------------------------------


class Text(fields.String):
    """A JSON string (never a number), stripped, with a bounded length."""

    def __init__(self, max_length: int, *, min_length: int = 1, strip: bool = True, **kwargs: Any) -> None:
        extra = kwargs.pop("validate", None)
        checks = [validate.Length(min=min_length, max=max_length)] + ([extra] if extra else [])
        super().__init__(validate=checks, **kwargs)
        self.strip = strip
        self.metadata.setdefault("maxLength", max_length)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or isinstance(value, JsonNumber):
            raise ValidationError("须为字符串。")
        text = value.strip() if self.strip else value
        if "\x00" in text:
            raise ValidationError("不能包含控制字符。")
        return text


class Amount(fields.Field):
    """A decimal string like "1000.00" (or a JSON number with ≤ 2 decimals); dumped with two decimals."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        try:
            return parse_amount(value)
        except ValueError:
            raise ValidationError("金额格式不正确。") from None

    def _serialize(self, value: Decimal | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_amount(value)


class StrictBool(fields.Boolean):
    """Only JSON true or false."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("须为 true 或 false。")
        return value


# Row ids are the database's 32-bit integers (PostgreSQL "integer"); a larger one names no row.
MAX_ID = 2**31 - 1


class Id(fields.Integer):
    """A positive JSON integer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class QueryId(fields.Integer):
    """A positive id in a query string: digits only, no sign, spaces or underscores."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(min=1, max=MAX_ID), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]{0,18}", value):
            raise ValidationError("编号须为正整数。")
        return int(value)


class IsoDate(fields.Date):
    """``YYYY-MM-DD``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or isinstance(value, JsonNumber) or len(value) != 10:
            raise ValidationError("日期须为 YYYY-MM-DD 格式。")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValidationError("日期须为 YYYY-MM-DD 格式的有效日期。") from None

    def _serialize(self, value: dt.date | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else value.isoformat()  # strftime("%Y") drops the zeros of a year < 1000


def within_lifetime(earliest: dt.date) -> Any:
    """A validator of a date in a person's life: not before ``earliest``, not after today in Beijing."""
    from .timeutil import beijing_today

    def check(value: dt.date | None) -> None:
        if value is not None and not earliest <= value <= beijing_today():
            raise ValidationError(f"日期须在 {earliest.isoformat()} 到今天之间。")

    return check


class Timestamp(fields.DateTime):
    """ISO 8601 in Beijing time with its offset."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else beijing_iso(value)


class Normalized(Text):
    """A string put in its canonical form by an identity check, which raises ValueError with the message."""

    def __init__(self, max_length: int, normalizer: Any, **kwargs: Any) -> None:
        super().__init__(max_length, **kwargs)
        self.normalizer = normalizer

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self.normalizer(text)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class Input(Schema):
    """Request bodies: unknown fields are refused."""

    class Meta:
        unknown = RAISE


# ---- requests -------------------------------------------------------------------------------------------


class TokenRequest(Input):
    username = Text(64, required=True)
    password = Text(256, strip=False, required=True)


class TokenResponse(Schema):
    token = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class PasswordChange(Input):
    old_password = Text(256, strip=False, required=True)
    new_password = Text(256, strip=False, required=True)


class OrgCreate(Input):
    name = Text(100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in OrgKind]))
    parent_id = Id(required=True, allow_none=True)


class OrgUpdate(Input):
    name = Text(100)
    active = StrictBool()


class OrgOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    parent_id = fields.Integer(allow_none=True, required=True)
    active = fields.Boolean(required=True)


class OrgList(Schema):
    items = fields.List(fields.Nested(OrgOut), required=True)


USERNAME = validate.Regexp(r"^[A-Za-z0-9_.@-]{3,64}$", error="用户名须为 3 到 64 个字母、数字或 _ . @ -。")


class UserCreate(Input):
    username = Text(64, required=True, validate=USERNAME)
    password = Text(256, strip=False, required=True)
    display_name = Text(50, min_length=0, metadata={"description": "姓名, shown instead of the username"})
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    org_id = Id(allow_none=True)
    member_id = Id(allow_none=True)


class UserUpdate(Input):
    active = StrictBool()
    password = Text(256, strip=False)
    display_name = Text(50, min_length=0)


class UserOut(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True, metadata={"description": "姓名; empty when not set"})
    role = fields.String(required=True)
    org_id = fields.Integer(allow_none=True, required=True)
    member_id = fields.Integer(allow_none=True, required=True)
    active = fields.Boolean(required=True)


class UserList(Schema):
    items = fields.List(fields.Nested(UserOut), required=True)


class MemberFields(Input):
    name = Normalized(50, identity.validate_person_name)
    gender = fields.String(allow_none=True, validate=validate.OneOf(["male", "female"]))
    birth_date = IsoDate(allow_none=True, validate=within_lifetime(dt.date(1900, 1, 1)))
    joined_on = IsoDate(allow_none=True, validate=within_lifetime(dt.date(1921, 7, 1)))  # the party's founding
    id_number = Normalized(18, identity.validate_resident_id, allow_none=True)
    work_unit = Text(200, allow_none=True)
    position = Text(100, allow_none=True)
    phone = Normalized(20, identity.validate_phone, allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))


class MemberCreate(MemberFields):
    name = Normalized(50, identity.validate_person_name, required=True)


class MemberOut(Schema):
    id = fields.Integer(required=True)
    org = fields.Nested(lambda: OrgRef(), required=True)
    name = fields.String(required=True)
    gender = fields.String(allow_none=True)
    birth_date = IsoDate(allow_none=True)
    joined_on = IsoDate(allow_none=True)
    id_number = fields.String(allow_none=True, metadata={"description": "always masked"})
    work_unit = fields.String(allow_none=True)
    position = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "masked except for the member's clerk"})
    email = fields.String(allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class Page(Schema):
    next_cursor = fields.String(allow_none=True, required=True)


class MemberPage(Page):
    items = fields.List(fields.Nested(MemberOut), required=True)


class ListQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


class MemberQuery(ListQuery):
    q = Text(50, min_length=0, metadata={"description": "part of a name (names only)"})
    id_number = Normalized(18, identity.validate_resident_id, metadata={
        "description": "a whole resident ID: the member's own clerk finds that member (access-logged); anyone else "
                       "finds nobody"})


class AccessLogQuery(ListQuery):
    member_id = QueryId()
    viewer_id = QueryId()


class UserRef(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)


class PersonalDataViewOut(Schema):
    id = fields.Integer(required=True)
    at = Timestamp(required=True, metadata={"description": "when the unmasked value was shown"})
    viewer = fields.Nested(UserRef, required=True)
    member = fields.Nested(lambda: MemberRef(), required=True)
    field = fields.String(required=True, validate=validate.OneOf(["id_number", "phone"]))
    shown_by = fields.String(required=True, metadata={"description": "the request that showed it"})


class AccessLogPage(Page):
    items = fields.List(fields.Nested(PersonalDataViewOut), required=True)


class PaymentQuery(ListQuery):
    state = fields.String(validate=validate.OneOf([s.value for s in State]))
    holder = fields.String(validate=validate.OneOf(["me"]))


class PaymentCreate(Input):
    member_id = Id(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    collected_on = IsoDate(required=True)
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    regular_dues_paid = StrictBool(required=True)
    note = Text(500, allow_none=True, min_length=0)


class PaymentBatchRow(PaymentCreate):
    """One row of a batch entry (SPEC §9): a single payment's fields, the member named by id or by a whole
    resident ID number of a member of the clerk's org."""

    member_id = Id()
    id_number = Normalized(18, identity.validate_resident_id)

    @validates_schema
    def _one_member(self, data: dict[str, Any], **kwargs: Any) -> None:
        named = [name for name in ("member_id", "id_number") if data.get(name) is not None]
        if kwargs.get("partial") and not named:
            return  # what a refused row got right (services.payment_batch): its member was reported already
        if len(named) != 1:
            raise ValidationError("请填写党员编号或身份证号码（只填其一）。", "member_id")


_BATCH_ROW_FIELDS = frozenset({"member_id", "id_number", "amount", "collected_on", "method", "regular_dues_paid",
                                "note"})


def well_formed_batch_row(body: Any) -> dict[str, Any] | None:
    """What ``PaymentBatchRow`` loads from ``body`` when the row is plainly well formed (the shapes a spreadsheet or
    a client sends), without the schema's per-field machinery (a quarter of batch entry's time at 10,000 rows);
    None when the row is anything else, so that the schema loads it and says what is wrong in its own words.
    tests/test_payment_batch.py holds the two equal."""
    if type(body) is not dict or not body.keys() <= _BATCH_ROW_FIELDS:
        return None
    member_id, id_number = body.get("member_id"), body.get("id_number")
    amount, collected_on = body.get("amount"), body.get("collected_on")
    method, paid = body.get("method"), body.get("regular_dues_paid")
    if (type(collected_on) is not str or len(collected_on) != 10 or type(method) is not str
            or method not in PAYMENT_METHODS or type(paid) is not bool or amount is None
            or ("member_id" in body) == ("id_number" in body)):
        return None
    try:
        data = {"amount": parse_amount(amount), "collected_on": dt.date.fromisoformat(collected_on),
                "method": method, "regular_dues_paid": paid}
    except ValueError:
        return None
    if "member_id" in body:
        if type(member_id) is not int or not 1 <= member_id <= MAX_ID:
            return None
        data["member_id"] = member_id
    else:
        if type(id_number) is not str or "\x00" in id_number:
            return None
        try:
            number = identity.validate_resident_id(id_number.strip())
        except ValueError:
            return None
        if not 1 <= len(number) <= 18:
            return None
        data["id_number"] = number
    if "note" in body:
        note = body["note"]
        if note is not None:
            if type(note) is not str or "\x00" in note or len(note.strip()) > 500:
                return None
            note = note.strip()
        data["note"] = note
    return data


class PaymentBatch(Input):
    """Batch entry as JSON; a CSV or XLSX upload (multipart field ``file``) carries the same columns."""

    rows = fields.List(fields.Nested(PaymentBatchRow), required=True)


class PaymentBatchOut(Schema):
    count = fields.Integer(required=True)
    total = Amount(required=True, metadata={"type": "string", "example": "250000.00"})
    payment_ids = fields.List(fields.Integer(), required=True)


class PaymentCorrect(Input):
    requires_body = True  # every field is optional, but an empty correction is refused (OpenAPI: body required)

    amount = Amount(metadata={"type": "string", "example": "1000.00"})
    collected_on = IsoDate()
    method = fields.String(validate=validate.OneOf(PAYMENT_METHODS))

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("至少更正一项：amount、collected_on 或 method。", "_schema")


class ActionBody(Input):
    reason = Text(500, allow_none=True)


class ReasonBody(Input):
    """Reissue and void of a receipt: the reason is required."""

    reason = Text(500, required=True)


class OrgRef(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class MemberRef(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class ReceiptOut(Schema):
    number = fields.String(required=True)
    verification_code = fields.String(allow_none=True, required=True,
                                      metadata={"description": "shown only to the member and central"})
    issued_on = IsoDate(required=True)
    version = fields.Integer(required=True)
    voided = fields.Boolean(required=True)
    delivered_on = IsoDate(allow_none=True, required=True,
                           metadata={"description": "when the member signed for this version (领取登记); null before"})


class ActorRef(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(metadata={"description": "姓名; empty when not set"})


class EventOut(Schema):
    action = fields.String(required=True)
    from_state = fields.String(allow_none=True, required=True)
    to_state = fields.String(required=True)
    from_org = fields.Nested(OrgRef, allow_none=True, required=True)
    to_org = fields.Nested(OrgRef, allow_none=True, required=True)
    actor = fields.Nested(ActorRef, required=True)
    note = fields.String(allow_none=True, required=True)
    at = Timestamp(required=True)


class PaymentOut(Schema):
    id = fields.Integer(required=True)
    state = fields.String(required=True, validate=validate.OneOf([s.value for s in State]))
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    collected_on = IsoDate(required=True)
    method = fields.String(required=True)
    note = fields.String(allow_none=True, required=True)
    member = fields.Nested(MemberRef, required=True)
    grassroots_org = fields.Nested(OrgRef, required=True)
    holder_org = fields.Nested(OrgRef, required=True)
    receipt = fields.Nested(ReceiptOut, allow_none=True, required=True)
    available_actions = fields.List(fields.String(), required=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class PaymentDetail(PaymentOut):
    events = fields.List(fields.Nested(EventOut), required=True)


class PaymentPage(Page):
    items = fields.List(fields.Nested(PaymentOut), required=True)


class VerifyQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    code = Text(64, required=True)


class VerifyOut(Schema):
    valid = fields.Boolean(required=True)
    voided = fields.Boolean()
    number = fields.String(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    issued_on = IsoDate(required=True)
    member_name = fields.String(required=True, metadata={"description": "masked: surname kept"})
    issuer = fields.String(required=True)


class VerifyDocumentOut(Schema):
    valid = fields.Boolean(required=True)
    reason = fields.String(metadata={"enum": ["not_signed", "modified", "unknown_signer", "superseded", "voided",
                                              "not_a_receipt"], "description": "only when not valid"})
    number = fields.String()
    version = fields.Integer()
    amount = Amount(metadata={"type": "string", "example": "1000.00"})
    issued_on = IsoDate()
    member_name = fields.String(metadata={"description": "masked: surname kept"})
    signed_by = fields.String(metadata={"description": "the organisation named by the signing certificate"})


class DirectRemittanceCreate(Input):
    remitter_name = Normalized(50, identity.validate_person_name, required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    received_on = IsoDate(required=True)
    reference = Text(100, allow_none=True, min_length=0)
    note = Text(500, allow_none=True, min_length=0)


class DirectRemittanceOut(Schema):
    id = fields.Integer(required=True)
    remitter_name = fields.String(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    received_on = IsoDate(required=True)
    reference = fields.String(allow_none=True, required=True)
    note = fields.String(allow_none=True, required=True)
    state = fields.String(required=True, validate=validate.OneOf(["refused", "returned"]))
    created_at = Timestamp(required=True)
    returned_on = IsoDate(allow_none=True, required=True)
    return_reference = fields.String(allow_none=True, required=True)


class DirectRemittanceList(Schema):
    items = fields.List(fields.Nested(DirectRemittanceOut), required=True)


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    field_errors = fields.Dict(data_key="fields", metadata={"description": "only for validation errors"})


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody, required=True)


class Health(Schema):
    status = fields.String(required=True)


# ---- member transfer, reports, the regular dues calculator (SPEC §9) ------------------------------------


class MemberTransfer(Input):
    to_org_id = Id(required=True, metadata={"description": "an active grassroots org"})


class Year(fields.Integer):
    """A four-digit year (query strings): no sign, spaces or underscores."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}", value):
            raise ValidationError("年份须为四位数字，例如 2026。")
        return int(value)


REPORT_GROUPINGS = ("channel", "org", "state", "month")
REPORT_FORMATS = ("json", "csv", "xlsx")


class SummaryQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    year = Year(required=True, validate=validate.Range(min=1900, max=9999, error="年份须在 1900 到 9999 之间。"),
                metadata={"description": "Beijing year of collection (collected_on)"})
    group_by = fields.String(required=True, validate=validate.OneOf(REPORT_GROUPINGS))
    state = fields.String(validate=validate.OneOf([s.value for s in State]),
                          metadata={"description": "only payments in this state (default: every state)"})
    format = fields.String(load_default="json", validate=validate.OneOf(REPORT_FORMATS),
                           metadata={"description": "json, or a download: csv (UTF-8 with BOM) or xlsx"})


class SummaryRow(Schema):
    key = fields.String(required=True, metadata={"description": "org id, state or YYYY-MM"})
    name = fields.String(required=True)
    count = fields.Integer(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})


class SummaryTotal(Schema):
    count = fields.Integer(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})


class SummaryOut(Schema):
    rows = fields.List(fields.Nested(SummaryRow), required=True)
    total = fields.Nested(SummaryTotal, required=True)


# A monthly income the calculator accepts: an amount as in payments (0 allowed), below a billion yuan.
MAX_MONTHLY_INCOME = Decimal("999999999.99")


class DuesQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    monthly_income = Amount(
        validate=validate.Range(max=MAX_MONTHLY_INCOME, error="月收入超出可计算的范围。"),
        metadata={"type": "string", "example": "8000.00",
                  "description": "after-tax monthly wage (employed) or pension (retired); required for those"})
    category = fields.String(required=True, validate=validate.OneOf([c.value for c in DuesCategory]))

    @validates_schema
    def _income_when_needed(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("category") in INCOME_CATEGORIES and data.get("monthly_income") is None:
            raise ValidationError("在职党员须填写税后月工资收入，离退休党员须填写离退休费或养老金。", "monthly_income")


class DuesOut(Schema):
    rate = fields.String(allow_none=True, required=True,
                         metadata={"description": "a share of the income, e.g. \"0.005\"; null for fixed amounts"})
    monthly_dues = Amount(required=True, metadata={"type": "string", "example": "15.00"})
    monthly_dues_max = Amount(allow_none=True, required=True,
                              metadata={"type": "string", "description": "upper end of a range (farmers)"})
    rule = fields.String(required=True, metadata={"description": "the regulation's text that was applied"})


# ---- operations (SPEC §9): transfer batches, refunds and returns, receipt delivery -------------------------

# One bank transfer, one printed list: a batch larger than this is a mistake, not a workload.
# SPEC §9: a transfer holds up to 10,000 payments (a campaign forwards thousands at once).
MAX_TRANSFER_PAYMENTS = 10_000


class TransferCreate(Input):
    payment_ids = fields.List(Id(), required=True,
                              validate=validate.Length(min=1, max=MAX_TRANSFER_PAYMENTS,
                                                       error=f"须选择 1 到 {MAX_TRANSFER_PAYMENTS} 笔款项。"))
    bank_reference = Text(100, required=True, metadata={"description": "the bank transfer's voucher number"})
    note = Text(500, allow_none=True, min_length=0)

    @validates_schema
    def _each_once(self, data: dict[str, Any], **kwargs: Any) -> None:
        ids = data.get("payment_ids") or []
        if len(set(ids)) != len(ids):
            raise ValidationError("每笔款项只能选一次。", "payment_ids")


class TransferConfirmOut(Schema):
    count = fields.Integer(required=True)
    first_number = fields.String(allow_none=True, required=True, metadata={"example": "2026-000101"})
    last_number = fields.String(allow_none=True, required=True, metadata={"example": "2026-000350"})


class TransferReceive(Input):
    amount_received = Amount(required=True, metadata={"type": "string", "example": "3000.00"})


class TransferQuery(ListQuery):
    state = fields.String(validate=validate.OneOf(["sent", "received"]))
    direction = fields.String(validate=validate.OneOf(["in", "out"]),
                              metadata={"description": "in: sent to the caller's org; out: sent from it"})


class DiscrepancyOut(Schema):
    amount_expected = Amount(required=True, metadata={"type": "string", "example": "3000.00"})
    amount_received = Amount(required=True, metadata={"type": "string", "example": "2900.00"})
    recorded_by = fields.Nested(ActorRef, required=True)
    recorded_at = Timestamp(required=True)


class TransferOut(Schema):
    id = fields.Integer(required=True)
    from_org = fields.Nested(OrgRef, required=True)
    to_org = fields.Nested(OrgRef, required=True)
    count = fields.Integer(required=True)
    total = Amount(required=True, metadata={"type": "string", "example": "3000.00"})
    bank_reference = fields.String(required=True)
    note = fields.String(allow_none=True, required=True)
    state = fields.String(required=True, validate=validate.OneOf(["sent", "received"]))
    payment_ids = fields.List(fields.Integer(), required=True)
    created_by = fields.Nested(ActorRef, required=True)
    created_at = Timestamp(required=True)
    amount_received = Amount(allow_none=True, required=True, metadata={"type": "string"})
    received_at = Timestamp(allow_none=True, required=True)
    discrepancies = fields.List(fields.Nested(DiscrepancyOut), required=True,
                                metadata={"description": "amounts reported that differed from the total"})


class TransferPage(Page):
    items = fields.List(fields.Nested(TransferOut), required=True)


class RefundBody(Input):
    refunded_on = IsoDate(required=True)
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    reference = Text(100, allow_none=True, min_length=0)


class RemittanceReturn(Input):
    returned_on = IsoDate(required=True)
    reference = Text(100, allow_none=True, min_length=0)


class DeliveryBody(Input):
    delivered_on = IsoDate(required=True)
    signed_by = Normalized(50, identity.validate_person_name, required=True,
                           metadata={"description": "who signed the collection register: the member or a proxy"})


class OwedPaymentOut(Schema):
    id = fields.Integer(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})
    collected_on = IsoDate(required=True)
    member = fields.Nested(MemberRef, required=True)
    grassroots_org = fields.Nested(OrgRef, required=True)
    rejected_by = fields.Nested(OrgRef, required=True, metadata={"description": "the org that rejected it"})
    rejected_at = Timestamp(allow_none=True, required=True)
    reason = fields.String(allow_none=True, required=True)


class OwedTotal(Schema):
    count = fields.Integer(required=True)
    amount = Amount(required=True, metadata={"type": "string", "example": "1000.00"})


class OwedOut(Schema):
    payments = fields.List(fields.Nested(OwedPaymentOut), required=True,
                           metadata={"description": "rejected payments not yet refunded, oldest first"})
    remittances = fields.List(fields.Nested(DirectRemittanceOut), required=True,
                              metadata={"description": "refused direct remittances not yet returned (central)"})
    payments_total = fields.Nested(OwedTotal, required=True)
    remittances_total = fields.Nested(OwedTotal, required=True)


class UndeliveredRow(Schema):
    org = fields.Nested(OrgRef, required=True)
    count = fields.Integer(required=True)


class UndeliveredOut(Schema):
    rows = fields.List(fields.Nested(UndeliveredRow), required=True,
                       metadata={"description": "grassroots orgs with receipts not yet delivered"})
    total = fields.Integer(required=True)


class RegisterQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    scope = fields.String(load_default="all", validate=validate.OneOf(["all", "undelivered"]),
                          metadata={"description": "all live receipts (default), or only those not yet signed for"})


# ---- loading ----------------------------------------------------------------------------------------------


@functools.cache
def shared(schema: type[Schema]) -> Schema:
    """One instance of ``schema`` per process: building a schema costs more than most loads and dumps."""
    return schema()


def load(schema: type[Schema], data: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data``; 422 ``validation_error`` listing every bad field in Chinese, or ``invalid_amount`` when
    a given amount is the only thing wrong (a body missing fields lists them all, the amount among them)."""
    try:
        return shared(schema).load(data)
    except ValidationError as error:
        messages = chinese_messages(error.messages if isinstance(error.messages, dict)
                                    else {"_schema": error.messages})
        if set(messages) == {"amount"} and isinstance(data, dict) and "amount" in data:
            raise InvalidAmount(fields=messages) from None
        raise ValidationFailed(fields=messages) from None


class UnderAttackRow(Schema):
    clients = fields.Integer(required=True, metadata={"description": "distinct clients (IPv6 by /64) that failed"})
    failures = fields.Integer(required=True, metadata={"description": "failed attempts within the window"})


class LoginAttackRow(UnderAttackRow):
    username = fields.String(required=True, metadata={"description": "as folded (NFKC, case-folded)"})


class LoginAttacksOut(Schema):
    window_seconds = fields.Integer(required=True)
    min_clients = fields.Integer(required=True, metadata={"description": "a username is listed from this many"})
    items = fields.List(fields.Nested(LoginAttackRow), required=True)


class VerificationFailureRow(UnderAttackRow):
    number = fields.String(required=True, metadata={"description": "the receipt number tried"})


class VerificationFailuresOut(Schema):
    window_seconds = fields.Integer(required=True)
    items = fields.List(fields.Nested(VerificationFailureRow), required=True)
