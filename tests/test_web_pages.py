"""The HTML pages through the Flask test client: each role's navigation, the forms with their field errors,
the workflow buttons, visibility (404 outside one's subtree) and CSRF."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import PASSWORD, advance, payment_row
from flask import request
from flask.testing import FlaskClient
from sqlalchemy import event

from duesflow.extensions import db
from duesflow.models import DirectRemittance, Member, Org, User


class Page:
    """A browser-like session on the test client: logs in through /login and sends the CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            return session.get("csrf_token", "")

    def login(self, username: str, password: str = PASSWORD) -> Any:
        self.client.get("/login")
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": self.csrf()})

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(), **(data or {})}, **kwargs)


@pytest.fixture
def pages(app, world):  # noqa: ANN201
    """``pages("clerk")``: a logged-in page session for that user of the world."""

    def open_as(username: str) -> Page:
        page = Page(app.test_client())
        assert page.login(username).status_code == 302
        return page

    return open_as


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def nav(response: Any) -> list[str]:
    """The labels of the main navigation."""
    block = re.search(r'<nav class="mainnav".*?</nav>', text(response), re.S)
    assert block, "no navigation"
    return [re.sub(r"<[^>]+>|\s+", "", label) for label in re.findall(r"<a [^>]*>(.*?)</a>", block.group(0), re.S)]


def field_error(response: Any, name: str) -> str:
    """The message shown next to form field ``name``."""
    found = re.search(rf'<p class="field-error" id="{name}-error">(.*?)</p>', text(response), re.S)
    assert found, f"no error next to {name}"
    return found.group(1)


def payment_form(member: Member, **changes: Any) -> dict[str, Any]:
    from conftest import yesterday

    return {"member_id": str(member.id), "amount": "1234.50", "collected_on": yesterday().isoformat(),
            "method": "cash", "regular_dues_paid": "1", "note": "", **changes}


# ---- login, navigation, headers -----------------------------------------------------------------------


@pytest.mark.parametrize(("username", "expected"), [
    ("clerk", ["首页", "待办0", "登记款项", "本单位款项", "党员名册", "汇总上缴", "收据送达", "待退还", "统计报表",
               "修改密码"]),
    ("tiedong", ["首页", "待办0", "全部款项", "汇总上缴", "收据送达", "待退还", "统计报表", "修改密码"]),
    ("central", ["首页", "待办0", "全部款项", "收据", "直接汇款", "汇总上缴", "收据送达", "待退还", "统计报表",
                 "查看记录", "核验失败", "修改密码"]),
    ("member", ["首页", "我的款项", "如何交纳", "修改密码"]),
    ("admin", ["首页", "组织", "账户", "登录监测", "修改密码"]),
])
def test_each_role_has_a_home_page_with_its_navigation(pages, username, expected):
    response = pages(username).get("/")
    assert response.status_code == 200
    assert nav(response) == expected
    assert "退出" in text(response)


def test_the_inbox_count_in_the_navigation_counts_what_awaits_the_org(pages, api, world):
    for _ in range(2):
        advance(api, api.record(world.members["zhang"])["id"], 1)
    assert "待办2" in nav(pages("tiedong").get("/"))
    assert "待办0" in nav(pages("siping").get("/"))


def test_pages_carry_the_security_headers(pages):
    response = pages("clerk").get("/payments/new")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in text(response) and "style=" not in text(response)


def test_a_visitor_without_a_session_is_sent_to_the_login_page(client, world):
    response = client.get("/payments")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_a_wrong_password_is_refused_with_a_message(client, world):
    response = Page(client).login("clerk", "wrong-password")
    assert response.status_code == 401
    assert "用户名或密码不正确" in text(response)


def test_the_login_is_throttled_like_the_api(client, world):
    page = Page(client)
    for _ in range(5):
        assert page.login("clerk", "wrong-password").status_code == 401
    response = page.login("clerk")
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_a_form_without_its_csrf_token_is_refused(pages, world):
    page = pages("clerk")
    response = page.client.post("/payments/new", data=payment_form(world.members["zhang"]))
    assert response.status_code == 400
    assert "CSRF" in text(response)


def test_the_session_cookie_is_httponly_and_lax(client, world):
    response = Page(client).login("clerk")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_session_cookie_is_secure_over_https(client, world):
    page = Page(client)
    client.get("/login", base_url="https://localhost")
    response = client.post("/login", base_url="https://localhost",
                           data={"username": "clerk", "password": PASSWORD, "csrf_token": page.csrf()})
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(("username", "path", "status"), [
    ("admin", "/payments", 403), ("admin", "/members", 403), ("member", "/members", 403),
    ("clerk", "/admin/orgs", 403), ("tiedong", "/direct-remittances", 403), ("central", "/payments/new", 403),
    ("tiedong", "/members/new", 403), ("member", "/inbox", 403),
])
def test_a_role_cannot_open_the_pages_of_another(pages, username, path, status):
    assert pages(username).get(path).status_code == status


# ---- clerk: members -------------------------------------------------------------------------------------


def test_the_register_is_searchable_and_shows_id_numbers_masked(pages, world):
    response = pages("clerk").get("/members?q=建国")
    assert response.status_code == 200
    assert "张建国" in text(response) and "李秀兰" not in text(response)
    assert "220302********1231" in text(response) and "220302199001051231" not in text(response)


def test_member_detail_masks_the_id_and_shows_the_phone_only_to_the_own_clerk(pages, world):
    member_id = world.members["zhang"].id
    own = text(pages("clerk").get(f"/members/{member_id}"))
    assert "220302********1231" in own and "13843430001" in own
    reviewer = text(pages("tiedong").get(f"/members/{member_id}"))
    assert "138****0001" not in reviewer and "13843430001" not in reviewer  # not the own clerk: no phone at all


def test_a_clerk_registers_a_member_and_sees_field_errors(pages, world):
    page = pages("clerk")
    refused = page.post("/members/new", {"name": "王小明", "id_number": "220302199001051232", "email": "nope"})
    assert refused.status_code == 422
    assert field_error(refused, "id_number") and "电子邮件" in field_error(refused, "email")
    assert 'value="王小明"' in text(refused)
    created = page.post("/members/new", {"name": "王小明", "gender": "male", "birth_date": "1980-02-03"})
    assert created.status_code == 302
    member = db.session.scalars(db.select(Member).where(Member.name == "王小明")).one()
    assert member.org_id == world.orgs["beimen"].id and member.gender == "male"


def test_a_clerk_corrects_a_member_and_a_blank_id_number_stays(pages, world):
    member = world.members["zhang"]
    response = pages("clerk").post(f"/members/{member.id}/edit", {"name": "张建国", "id_number": "",
                                                                  "position": "主任"})
    assert response.status_code == 302
    db.session.expire_all()
    assert member.position == "主任" and member.id_number == "220302199001051231"


def test_a_clerk_opens_a_member_account_once(pages, world):
    page = pages("clerk")
    member = world.members["li"]  # member_li already has an account
    taken = page.post(f"/members/{member.id}/account", {"username": "li-2", "password": "long-enough-1"})
    assert taken.status_code == 409 and "已有账户" in text(taken)
    new_member = world.members["zhang"].__class__(org_id=world.orgs["beimen"].id, name="赵一")
    db.session.add(new_member)
    db.session.commit()
    short = page.post(f"/members/{new_member.id}/account", {"username": "zhao-yi", "password": "short"})
    assert short.status_code == 422 and "10" in field_error(short, "password")
    created = page.post(f"/members/{new_member.id}/account", {"username": "zhao-yi", "password": "long-enough-1"})
    assert created.status_code == 302
    account = db.session.scalars(db.select(User).where(User.username == "zhao-yi")).one()
    assert account.role == "member" and account.member_id == new_member.id


# ---- clerk: payments ------------------------------------------------------------------------------------


def test_an_amount_below_1000_is_explained_as_ordinary_dues_next_to_the_field(pages, world):
    response = pages("clerk").post("/payments/new", payment_form(world.members["zhang"], amount="999.99"))
    assert response.status_code == 422
    message = field_error(response, "amount")
    assert "1000" in message and "普通党费" in message and "本地" in message
    assert 'value="999.99"' in text(response)


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"amount": "1,000"}, "amount", "格式"),
    ({"amount": ""}, "amount", "必填"),
    ({"regular_dues_paid": None}, "regular_dues_paid", "按规定比例"),
    ({"collected_on": "2999-01-01"}, "collected_on", "不能晚于今天"),
    ({"method": "cheque"}, "method", "选项"),
])
def test_the_payment_form_shows_the_specs_validation_next_to_the_fields(pages, world, changes, field, words):
    form = {k: v for k, v in payment_form(world.members["zhang"], **changes).items() if v is not None}
    response = pages("clerk").post("/payments/new", form)
    assert response.status_code == 422
    assert words in field_error(response, field)


def test_a_member_of_another_committee_cannot_be_chosen(pages, world):
    response = pages("clerk").post("/payments/new", payment_form(world.members["zhou"]))
    assert response.status_code == 422 and field_error(response, "member_id")


def test_a_clerk_records_a_payment_and_sees_it_in_figures_and_capitals(pages, world):
    page = pages("clerk")
    response = page.post("/payments/new", payment_form(world.members["zhang"], amount="12345.67"))
    assert response.status_code == 302
    detail = text(page.get(response.headers["Location"]))
    assert "¥12,345.67" in detail and "人民币壹万贰仟叁佰肆拾伍元陆角柒分" in detail
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", detail)
    assert "上报" in detail and "撤回" in detail and "更正金额" in detail


def test_the_committee_payments_are_listed_by_state(pages, api, world):
    kept = api.record(world.members["zhang"], "1000.00")
    sent = api.record(world.members["li"], "2000.00")
    advance(api, sent["id"], 1)
    page = pages("clerk")
    recorded = text(page.get("/payments?state=recorded"))
    assert f'>#{kept["id"]}<' in recorded and f'>#{sent["id"]}<' not in recorded
    everything = text(page.get("/payments"))
    assert "¥1,000.00" in everything and "¥2,000.00" in everything
    assert page.get("/payments?state=lost").status_code == 422


def test_submit_correct_and_withdraw_through_the_detail_page(pages, api, world):
    page = pages("clerk")
    payment_id = api.record(world.members["zhang"])["id"]
    corrected = page.post(f"/payments/{payment_id}/correct", {"amount": "1500", "collected_on":
                                                              payment_row(payment_id).collected_on.isoformat(),
                                                              "method": "wechat"})
    assert corrected.status_code == 302
    assert payment_row(payment_id).amount == 1500 and payment_row(payment_id).method == "wechat"
    too_small = page.post(f"/payments/{payment_id}/correct", {"amount": "500", "collected_on": "2020-01-01",
                                                              "method": "cash"})
    assert too_small.status_code == 422 and "普通党费" in field_error(too_small, "amount")
    no_reason = page.post(f"/payments/{payment_id}/actions/withdraw", {"reason": " "})
    assert no_reason.status_code == 422 and field_error(no_reason, "reason")
    assert page.post(f"/payments/{payment_id}/actions/submit").status_code == 302
    assert payment_row(payment_id).state == "in_review"
    late = page.post(f"/payments/{payment_id}/actions/withdraw", {"reason": "党员要求"})
    assert late.status_code == 409


# ---- reviewers and central ------------------------------------------------------------------------------


def test_the_payment_detail_shows_particulars_timeline_and_the_available_buttons(pages, api, world):
    payment_id = api.record(world.members["zhang"], "2000")["id"]
    advance(api, payment_id, 1)
    detail = text(pages("tiedong").get(f"/payments/{payment_id}"))
    assert "党员简要情况" in detail and "220302********1231" in detail and "138****0001" not in detail
    assert detail.count('<li>\n      <div class="when">') == 2  # record, submit
    buttons = re.findall(r'/actions/(\w+)"', detail)
    assert buttons == ["forward", "return", "reject"]
    assert "13843430001" not in detail
    assert re.findall(r'/actions/(\w+)"', text(pages("siping").get(f"/payments/{payment_id}"))) == []


def test_return_needs_a_reason_and_the_clerk_resubmits(pages, api, world):
    payment_id = api.record(world.members["zhang"])["id"]
    advance(api, payment_id, 1)
    reviewer = pages("tiedong")
    missing = reviewer.post(f"/payments/{payment_id}/actions/return", {"reason": ""})
    assert missing.status_code == 422 and "必填" in field_error(missing, "reason")
    assert payment_row(payment_id).state == "in_review"
    assert reviewer.post(f"/payments/{payment_id}/actions/return", {"reason": "日期有误"}).status_code == 302
    assert payment_row(payment_id).state == "returned"
    clerk = pages("clerk")
    assert "日期有误" in text(clerk.get(f"/payments/{payment_id}"))
    assert clerk.post(f"/payments/{payment_id}/actions/submit").status_code == 302
    assert payment_row(payment_id).holder_org_id == world.orgs["tiedong"].id


def test_reject_with_a_reason(pages, api, world):
    payment_id = api.record(world.members["zhang"])["id"]
    advance(api, payment_id, 2)
    response = pages("siping").post(f"/payments/{payment_id}/actions/reject", {"reason": "不符合条件"})
    assert response.status_code == 302
    assert payment_row(payment_id).state == "rejected"


def test_an_action_not_held_here_is_a_conflict_and_an_unknown_one_is_not_found(pages, api, world):
    payment_id = api.record(world.members["zhang"])["id"]
    advance(api, payment_id, 1)
    page = pages("siping")
    assert page.post(f"/payments/{payment_id}/actions/forward").status_code == 409
    assert page.post(f"/payments/{payment_id}/actions/fly").status_code == 404
    assert pages("clerk").post(f"/payments/{payment_id}/actions/forward").status_code == 403


@pytest.mark.parametrize("outsider", ["clerk_jiefang", "beijing", "clerk_dongcheng", "member_li", "admin"])
def test_a_user_outside_the_payments_subtree_gets_404(pages, api, world, outsider):
    payment_id = api.record(world.members["zhang"])["id"]
    page = pages(outsider)
    assert page.get(f"/payments/{payment_id}").status_code == 404
    assert page.post(f"/payments/{payment_id}/actions/submit").status_code == 404
    assert page.get(f"/payments/{payment_id}/receipt.pdf").status_code == 404


def test_several_payments_are_forwarded_together(pages, api, world):
    ids = [api.record(world.members[name])["id"] for name in ("zhang", "li", "zhang")]
    for payment_id in ids:
        advance(api, payment_id, 1)
    inbox = pages("tiedong")
    listed = text(inbox.get("/inbox"))
    assert all(f'name="payment_id" value="{payment_id}"' in listed for payment_id in ids)
    assert 'data-select-all="payment_id"' in listed and "select-all.js" in listed
    response = inbox.client.post("/payments/batch", data={"csrf_token": inbox.csrf(), "action": "forward",
                                                          "payment_id": [str(i) for i in ids[:2]]})
    assert response.status_code == 302
    assert [payment_row(i).holder_org_id for i in ids] == [world.orgs["siping"].id] * 2 + [world.orgs["tiedong"].id]


def test_if_one_of_several_cannot_move_none_moves_and_the_page_says_which(pages, api, world):
    ready = api.record(world.members["zhang"])["id"]
    advance(api, ready, 1)
    not_here = api.record(world.members["li"])["id"]  # still at the grassroots org
    page = pages("tiedong")
    response = page.client.post("/payments/batch", data={"csrf_token": page.csrf(), "action": "forward",
                                                         "payment_id": [str(ready), str(not_here)]})
    assert response.status_code == 409
    assert f"#{not_here}（李秀兰" in text(response) and "均未办理" in text(response)
    assert payment_row(ready).holder_org_id == world.orgs["tiedong"].id
    nothing = page.post("/payments/batch", {"action": "forward"})
    assert nothing.status_code == 422 and "勾选" in text(nothing)
    assert page.post("/payments/batch", {"action": "return", "payment_id": str(ready)}).status_code == 404


def test_central_confirms_and_downloads_the_receipt_with_its_session(pages, api, world):
    payment_id = api.record(world.members["zhang"], "12345.67")["id"]
    advance(api, payment_id, 4)
    central = pages("central")
    assert "待办1" in nav(central.get("/"))
    assert central.post("/payments/batch", {"action": "confirm", "payment_id": str(payment_id)}).status_code == 302
    detail = text(central.get(f"/payments/{payment_id}"))
    number = payment_row(payment_id).receipt.number
    assert number in detail and f"/payments/{payment_id}/receipt.pdf" in detail
    assert number in text(central.get("/receipts"))
    pdf = central.get(f"/payments/{payment_id}/receipt.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert pdf.headers["Cache-Control"] == "no-store"
    member = pages("member")
    assert "纪念收据已开具" in text(member.get("/payments"))
    assert member.get(f"/payments/{payment_id}/receipt.pdf").data.startswith(b"%PDF")
    siping = pages("siping").get(f"/payments/{payment_id}/receipt.pdf")
    assert siping.status_code == 200  # on the payment's path
    assert pages("clerk_jiefang").get(f"/payments/{payment_id}/receipt.pdf").status_code == 404


def test_a_receipt_is_not_downloadable_before_it_exists(pages, api, world):
    payment_id = api.record(world.members["zhang"])["id"]
    assert pages("member").get(f"/payments/{payment_id}/receipt.pdf").status_code == 404


def test_central_records_a_direct_remittance_that_is_refused(pages, world):
    page = pages("central")
    form = text(page.get("/direct-remittances"))
    assert "不予接收" in form and "不开具收据" in form
    bad = page.post("/direct-remittances", {"remitter_name": "钱多多", "amount": "0", "received_on": "2020-01-01"})
    assert bad.status_code == 422 and field_error(bad, "amount")
    response = page.post("/direct-remittances", {"remitter_name": "钱多多", "amount": "500",
                                                 "received_on": "2020-01-01", "reference": "邮汇 123"})
    assert response.status_code == 302
    remittance = db.session.scalars(db.select(DirectRemittance)).one()
    assert remittance.state == "refused" and remittance.reference == "邮汇 123"
    assert "¥500.00" in text(page.get("/direct-remittances"))


# ---- member ---------------------------------------------------------------------------------------------


def test_a_member_sees_own_payments_in_plain_words(pages, api, world):
    api.record(world.members["zhang"], "3000")
    advance(api, api.record(world.members["zhang"], "4000")["id"], 2)
    api.record(world.members["li"], "5000")
    page = text(pages("member").get("/payments"))
    assert "¥3,000.00" in page and "¥4,000.00" in page and "¥5,000.00" not in page
    assert "尚未上报" in page and "正在逐级转交" in page and "目前在：中共四平市委组织部" in page
    assert "不予接收" in page  # the notice on direct payment


def test_a_member_who_tries_to_pay_is_told_to_pay_through_the_committee(pages, world):
    page = pages("member")
    notice = page.get("/payments/new")
    assert notice.status_code == 200 and "基层党委" in text(notice) and "北门街道党工委" in text(notice)
    refused = page.post("/payments/new", payment_form(world.members["zhang"]))
    assert refused.status_code == 403 and "基层党委代收" in text(refused)


# ---- admin ----------------------------------------------------------------------------------------------


def test_admin_sees_the_org_tree_and_adds_renames_and_deactivates(pages, world):
    page = pages("admin")
    tree = text(page.get("/admin/orgs"))
    assert tree.index("中共吉林省委组织部") < tree.index("中共四平市委组织部") < tree.index("北门街道党工委")
    tiedong = world.orgs["tiedong"]
    wrong_kind = page.post(f"/admin/orgs/{tiedong.id}/children", {"child_name": "X", "kind": "channel",
                                                                  "parent_id": str(tiedong.id)})
    assert wrong_kind.status_code == 422 and field_error(wrong_kind, "kind")
    added = page.post(f"/admin/orgs/{tiedong.id}/children", {"child_name": "平东街道党工委", "kind": "grassroots",
                                                             "parent_id": str(tiedong.id)})
    assert added.status_code == 302
    org = db.session.scalars(db.select(Org).where(Org.name == "平东街道党工委")).one()
    assert org.parent_id == tiedong.id and org.kind == "grassroots"
    assert page.post(f"/admin/orgs/{org.id}", {"name": "平东街道党工委（新）"}).status_code == 302
    clash = page.post(f"/admin/orgs/{org.id}", {"name": "北门街道党工委"})
    assert clash.status_code == 409
    assert page.post(f"/admin/orgs/{org.id}", {"active": "0"}).status_code == 302
    db.session.expire_all()
    assert org.name == "平东街道党工委（新）" and not org.active
    assert page.post(f"/admin/orgs/{world.orgs['central'].id}", {"active": "0"}).status_code == 422


def test_admin_adds_deactivates_and_resets_accounts(pages, world):
    page = pages("admin")
    weak = page.post("/admin/users", {"username": "new-clerk", "password": "short", "role": "clerk",
                                      "org_id": str(world.orgs["jiefang"].id)})
    assert weak.status_code == 422 and field_error(weak, "password")
    wrong_org = page.post("/admin/users", {"username": "new-clerk", "password": "long-enough-1", "role": "clerk",
                                           "org_id": str(world.orgs["tiedong"].id)})
    assert wrong_org.status_code == 422 and field_error(wrong_org, "org_id")
    created = page.post("/admin/users", {"username": "new-clerk", "password": "long-enough-1", "role": "clerk",
                                         "org_id": str(world.orgs["jiefang"].id)})
    assert created.status_code == 302
    clerk_page = pages("clerk")
    clerk = world.users["clerk"]
    assert page.post(f"/admin/users/{clerk.id}", {"password": "brand-new-password"}).status_code == 302
    assert clerk_page.get("/").status_code == 302  # the old session is void
    assert Page(page.client.application.test_client()).login("clerk", "brand-new-password").status_code == 302
    assert page.post(f"/admin/users/{clerk.id}", {"active": "0"}).status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, clerk.id).active
    assert Page(page.client.application.test_client()).login("clerk", "brand-new-password").status_code == 401


def test_everyone_changes_their_own_password(pages, world):
    page = pages("member")
    wrong = page.post("/password", {"old_password": "nope", "new_password": "another-password",
                                    "new_password_again": "another-password"})
    assert wrong.status_code == 422 and field_error(wrong, "old_password")
    mismatch = page.post("/password", {"old_password": PASSWORD, "new_password": "another-password",
                                       "new_password_again": "other-password"})
    assert mismatch.status_code == 422 and field_error(mismatch, "new_password_again")
    changed = page.post("/password", {"old_password": PASSWORD, "new_password": "another-password",
                                      "new_password_again": "another-password"})
    assert changed.status_code == 302
    assert page.get("/").status_code == 200  # this session stays logged in
    assert Page(page.client.application.test_client()).login("member", PASSWORD).status_code == 401


def test_central_reissues_and_voids_a_receipt_from_the_detail_page(pages, api, world):
    payment_id = api.record(world.members["zhang"])["id"]
    advance(api, payment_id, 4)
    api.act(payment_id, "confirm", "central")
    central = pages("central")
    detail = text(central.get(f"/payments/{payment_id}"))
    assert re.findall(r'/actions/(\w+)"', detail) == ["reissue", "void"]
    number = payment_row(payment_id).receipt.number
    missing = central.post(f"/payments/{payment_id}/actions/reissue", {"reason": ""})
    assert missing.status_code == 422 and field_error(missing, "reason")
    assert central.post(f"/payments/{payment_id}/actions/reissue", {"reason": "党员遗失"}).status_code == 302
    assert payment_row(payment_id).receipt.version == 2 and payment_row(payment_id).receipt.number == number
    assert central.post(f"/payments/{payment_id}/actions/void", {"reason": "误确认"}).status_code == 302
    assert payment_row(payment_id).state == "at_central"


def test_a_logged_in_browser_has_no_access_to_the_api_and_api_answers_set_no_cookie(pages):
    page = pages("central")
    assert page.get("/inbox").status_code == 200  # the session cookie works for the pages
    answer = page.get("/api/v1/payments")
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthenticated"
    assert "Set-Cookie" not in answer.headers
    assert page.get("/inbox").status_code == 200  # and the API left the page session alone


def test_an_api_request_does_not_open_the_page_session(app, pages, monkeypatch):
    """The API never reads the cookie, so it does not build the signing serializer that would (a cost on every API
    request; the web blueprint's session interface once replaced the one that skipped it, unnoticed)."""
    page = pages("central")
    opened: list[str] = []
    real = type(app.session_interface).get_signing_serializer

    def counting(self, flask_app):  # noqa: ANN001, ANN202
        opened.append(request.path)
        return real(self, flask_app)

    monkeypatch.setattr(type(app.session_interface), "get_signing_serializer", counting)
    assert page.get("/api/v1/payments").status_code == 401
    assert opened == []
    assert page.get("/inbox").status_code == 200
    assert "/inbox" in opened


def test_a_write_after_a_page_that_only_read_is_one_transaction_on_postgresql(app, world, api, pages):
    """A read-only request's connection is in autocommit mode on PostgreSQL. A test's session outlives its requests,
    so a page that only read can hand that connection to the next request; when that one writes, its statements
    must go back into one transaction (committed or rolled back as a whole), as in a fresh request."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("autocommit for read-only requests is PostgreSQL's")
    payment_id = api.record(world.members["zhang"])["id"]
    clerk = pages("clerk")
    modes: list[tuple[str, bool]] = []

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        modes.append((statement.split(None, 1)[0].upper(), conn.connection.dbapi_connection.autocommit))

    assert clerk.get("/inbox").status_code == 200
    event.listen(db.engine, "before_cursor_execute", note)
    try:
        response = clerk.post(f"/payments/{payment_id}/actions/submit")
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert response.status_code in (200, 302), text(response)[:300]
    assert payment_row(payment_id).state == "in_review"
    assert any(verb in ("INSERT", "UPDATE") for verb, _ in modes), modes
    assert not any(autocommit for verb, autocommit in modes if verb in ("INSERT", "UPDATE")), modes


# ---- people by their names (SPEC §10) -----------------------------------------------------------------------


def test_pages_greet_and_list_people_by_name_and_fall_back_to_the_username(pages, world, api):
    world.users["clerk"].display_name = "王丽华"
    db.session.commit()
    payment = api.record(world.members["zhang"])
    api.act(payment["id"], "submit", "clerk")
    api.act(payment["id"], "forward", "tiedong")

    home = text(pages("clerk").get("/"))
    timeline = re.sub(r"<[^>]+>", "", text(pages("siping").get(f"/payments/{payment['id']}")))
    member_home = text(pages("member").get("/"))

    assert "您好，王丽华" in home
    assert "上报 · 王丽华" in timeline and "转交上一级 · tiedong" in timeline
    assert "您好，张建国" in member_home


def test_the_admin_sets_a_persons_name_on_the_account_page(pages, world):
    admin = pages("admin")
    account = world.users["tiedong"]

    response = admin.post(f"/admin/users/{account.id}", {"display_name": "刘卫东"}, follow_redirects=True)

    assert response.status_code == 200 and "姓名已保存" in text(response)
    assert "刘卫东" in text(admin.get("/admin/users"))
    db.session.expire_all()
    assert db.session.get(User, account.id).display_name == "刘卫东"
