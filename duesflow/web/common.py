"""What every page shares: the words shown for states and actions, Chinese dates and yuan amounts, the
role check, the navigation with the inbox count, and the session cookie's Secure flag."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, Request, has_request_context, redirect, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import func, select

from .. import permissions
from ..errors import Forbidden
from ..extensions import db
from ..models import Payment, User
from ..receipts.capitals import PREFIX, to_capitals
from ..receipts.pdf import chinese_date
from ..services import access_log
from ..timeutil import BEIJING
from ..workflow import STATE_NAMES, TRANSITIONS, Action, Role
from . import bp
from .session import session_user

# The same states in the words a member understands (my payments).
MEMBER_STATE_TEXT = {
    "recorded": "基层党委已代收登记，尚未上报。",
    "in_review": "正在逐级转交中。",
    "at_central": "已送达中共中央组织部，等待确认。",
    "receipted": "中共中央组织部已确认收到，纪念收据已开具，可下载。",
    "returned": "已退回基层党委核对更正，之后会重新上报。",
    "rejected": "未被接收，款项将由基层党委退还给您。",
    "refunded": "款项已退还给您。",
    "withdrawn": "已撤回，未上报。",
}

ACTION_NAMES = {
    "record": "登记",
    "correct": "更正",
    "submit": "上报",
    "forward": "转交上一级",
    "return": "退回下一级",
    "reject": "不予接收",
    "confirm": "确认并开具收据",
    "withdraw": "撤回",
    "reissue": "补发收据",
    "void": "作废收据",
    "refund": "退还党员",
    "deliver": "收据送达签收",
}

# What a batch action in the inbox does, beside its button (汇总上缴 has its own hint in the template).
BATCH_HINTS = {
    "submit": "把所选款项立即交上一级审核；款项本身另行逐笔转账或已交付时用这一项。",
    "forward": "把所选款项立即转交上一级。",
    "confirm": "确认收到所选款项，并为每笔开具纪念收据。",
}

# What an action that undoes or refuses does, said before the person confirms it (payment page).
CAREFUL_HINTS = {
    "return": "退回下一级更正：款项逐级退回，直至基层党委；更正后可再次上报。",
    "reject": "不予接收是最终决定：款项不再上报，须由基层党委退还党员本人。",
    "withdraw": "撤回后此笔款项不再上报，且不能恢复；党员如仍要交纳，须重新登记。",
    "reissue": "补发收据仅用于党员遗失收据：收据编号不变，生成新的验证码，原验证码立即失效。",
    "void": "作废收据仅用于误确认：收据作废，款项回到“待确认”，重新确认时开具新编号。",
}

METHOD_NAMES = {"cash": "现金", "bank_transfer": "银行转账", "wechat": "微信支付", "alipay": "支付宝", "other": "其他"}
KIND_NAMES = {"central": "中央组织部", "channel": "转交渠道", "intermediate": "中间层级组织部",
              "grassroots": "基层党委"}
GENDER_NAMES = {"male": "男", "female": "女"}


def needs_reason(action: str) -> bool:
    """Whether the workflow table asks a reason for ``action`` (receipt reissue and void always do)."""
    try:
        return TRANSITIONS[Action(action)].needs_reason
    except ValueError:
        return True


def capitals(amount: Decimal) -> str:
    """``人民币壹万贰仟叁佰肆拾伍元陆角柒分``, as on the receipt."""
    return PREFIX + to_capitals(amount)


def cn_date(day: date | None) -> str:
    """``2026年11月26日``."""
    return "" if day is None else chinese_date(day)


def cn_datetime(moment: datetime | None) -> str:
    """``2026年11月26日 14:05`` in Beijing time."""
    if moment is None:
        return ""
    local = moment.astimezone(BEIJING)
    return f"{chinese_date(local.date())} {local:%H:%M}"


@bp.app_context_processor
def _page_helpers() -> dict[str, Any]:
    return {"state_names": STATE_NAMES, "member_state_text": MEMBER_STATE_TEXT, "action_names": ACTION_NAMES,
            "method_names": METHOD_NAMES, "kind_names": KIND_NAMES, "gender_names": GENDER_NAMES,
            "navigation": navigation, "needs_reason": needs_reason, "capitals": capitals,
            "careful_hints": CAREFUL_HINTS, "batch_hints": BATCH_HINTS,
            "cn_date": cn_date, "cn_datetime": cn_datetime}


def login_required(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Send a visitor without a session to the login page; 403 for a role not in ``roles`` (any when empty).

    Views of one object leave ``roles`` empty and look the object up first, so that 404 comes before 403.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            user = session_user()
            if user is None:
                return redirect(url_for("web.login_form"))
            if roles and user.role not in roles:
                raise Forbidden("您的角色不能使用此页面。")
            answer = view(user, **kwargs)
            access_log.write_pending()
            return answer

        return wrapper

    return decorate


def inbox_count(user: User) -> int:
    """How many payments await ``user``'s org (the count in the navigation)."""
    return db.session.scalar(select(func.count()).select_from(Payment).where(permissions.inbox_clause(user))) or 0


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    endpoint: str
    badge: int | None = None

    @property
    def current(self) -> bool:
        return has_request_context() and request.endpoint == self.endpoint


def navigation(user: User) -> list[NavItem]:
    """The pages ``user``'s role may use, in the order of its work."""
    def item(label: str, endpoint: str, badge: int | None = None, **values: Any) -> NavItem:
        return NavItem(label, url_for(endpoint, **values), endpoint, badge)

    items = [item("首页", "web.home")]
    if user.role in (Role.CLERK, Role.REVIEWER, Role.CENTRAL):
        items.append(item("待办", "web.inbox", badge=inbox_count(user)))
    if user.role == Role.CLERK:
        items += [item("登记款项", "web.new_payment"), item("本单位款项", "web.payments"),
                  item("党员名册", "web.members")]
    elif user.role in (Role.REVIEWER, Role.CENTRAL):
        items.append(item("全部款项", "web.payments"))
        if user.role == Role.CENTRAL:
            items += [item("收据", "web.receipts"), item("直接汇款", "web.direct_remittances")]
    elif user.role == Role.MEMBER:
        items += [item("我的款项", "web.payments"), item("如何交纳", "web.new_payment")]
    elif user.role == Role.ADMIN:
        items += [item("组织", "web.orgs"), item("账户", "web.users"), item("登录监测", "web.login_attacks")]
    if user.role in (Role.CLERK, Role.REVIEWER, Role.CENTRAL):
        items += [item("汇总上缴", "web.transfers"), item("收据送达", "web.deliveries"),
                  item("待退还", "web.owed_page")]
        items.append(item("统计报表", "web.reports"))
    if user.role == Role.CENTRAL:
        items += [item("查看记录", "web.access_log_page"), item("核验失败", "web.verification_failures")]
    items.append(item("修改密码", "web.password_form"))
    return items


class _SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie belongs to the pages: it is Secure when configured so, or whenever the request came
    over HTTPS. The API authenticates by bearer token alone, so its requests neither read nor set the cookie (and
    opening a session cost a signing serializer on every API request, about 45 µs)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


@bp.record_once
def _install_session_interface(state: BlueprintSetupState) -> None:
    state.app.session_interface = _SessionInterface()
