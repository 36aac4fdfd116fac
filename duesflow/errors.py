"""Typed domain errors. Each knows its HTTP status and code; one handler turns them into the SPEC's JSON."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a client can cause. Never raised for a bug."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "malformed_request"
    default_message: ClassVar[str] = "请求有误。"

    def __init__(self, message: str | None = None, *, fields: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.fields = fields
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            body["fields"] = self.fields
        return {"error": body}


class MalformedRequest(DomainError):
    status, code, default_message = 400, "malformed_request", "请求体必须是 JSON 对象。"


class RequestTooLarge(DomainError):
    status, code, default_message = 413, "malformed_request", "请求体过大。"


class ServiceBusy(DomainError):
    """The database did not answer in time (SQLite: a writer's turn did not come within the busy timeout;
    PostgreSQL: the server is unreachable): any endpoint, with ``Retry-After``."""

    status, code, default_message = 503, "service_unavailable", "服务繁忙，请稍后再试。"


class UnsupportedMediaType(DomainError):
    """A body not declared as JSON: refused, so that a cross-site ``text/plain`` POST (no CORS preflight) never
    reaches the API (docs/security.md, "Decisions")."""

    status, code = 415, "malformed_request"
    default_message = "请求体须为 JSON，并以 Content-Type: application/json 发送。"


class Unauthenticated(DomainError):
    status, code, default_message = 401, "unauthenticated", "请先登录。"


class InvalidCredentials(DomainError):
    status, code, default_message = 401, "invalid_credentials", "用户名或密码不正确。"


class Forbidden(DomainError):
    status, code, default_message = 403, "forbidden", "您的角色无权进行此操作。"


class DirectPaymentRefused(DomainError):
    status, code = 403, "direct_payment_refused"
    default_message = (
        "党员个人不能直接交纳或汇寄自愿多交的党费。请通过所在基层党委代收，逐级转交中央组织部。"
    )


class NotFound(DomainError):
    status, code, default_message = 404, "not_found", "未找到。"


class ReceiptNotFound(DomainError):
    status, code, default_message = 404, "receipt_not_found", "未找到该收据，或验证码不正确。"


class MethodNotAllowed(DomainError):
    status, code, default_message = 405, "method_not_allowed", "不支持该请求方法。"


class InvalidTransition(DomainError):
    status, code, default_message = 409, "invalid_transition", "该款项当前不在您单位，或当前状态不允许此操作。"


class IdempotencyConflict(DomainError):
    status, code, default_message = 409, "idempotency_conflict", "该幂等键已用于另一个请求，或该请求仍在处理中。"


class AlreadyExists(DomainError):
    status, code, default_message = 409, "already_exists", "已存在。"


class NotEligible(DomainError):
    status, code, default_message = 409, "not_eligible", "所选款项不能一并汇总上缴。"


class AmountMismatch(DomainError):
    status, code, default_message = 409, "amount_mismatch", "实收金额与汇总上缴单的合计金额不符，差额已登记。"


class FundsNotReceived(DomainError):
    status, code = 409, "funds_not_received"
    default_message = "该款项随汇总上缴单转来，但该上缴单的款项尚未确认到账，暂不能确认开具收据。"


class ValidationFailed(DomainError):
    status, code, default_message = 422, "validation_error", "提交的数据有误。"


class InvalidAmount(DomainError):
    status, code = 422, "invalid_amount"
    default_message = "金额格式不正确：请填写不带正负号、千分位或空格的数字，最多两位小数，例如 \"1000.00\"。"


class AmountBelowMinimum(DomainError):
    status, code = 422, "amount_below_minimum"
    default_message = (
        "自愿一次性多交党费须为1000元及以上。不足1000元的属于普通党费，请按规定由党组织在本地收缴，不通过本系统办理。"
    )


class AmountAboveMaximum(DomainError):
    status, code, default_message = 422, "amount_above_maximum", "金额超过系统允许的上限。"


class RegularDuesUnpaid(DomainError):
    status, code = 422, "regular_dues_unpaid"
    default_message = "党员须已按规定比例或标准交纳党费，方可自愿多交党费。"


class TooManyRequests(DomainError):
    status, code, default_message = 429, "too_many_requests", "尝试次数过多，请稍后再试。"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


ALL_ERRORS: tuple[type[DomainError], ...] = tuple(DomainError.__subclasses__())
