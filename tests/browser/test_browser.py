"""The pages in a real browser: Playwright drives Debian's Chromium (headless) against a live gunicorn on the
suite's test database. With DUESFLOW_SCREENSHOT_DIR set, every page visited is saved there as a screenshot.

Skipped only where Chromium is not installed and this is not CI; in CI (CI set) a missing browser fails.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, advance

from duesflow.timeutil import beijing_today

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from live import LiveServer, release_database, start_server  # noqa: E402
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Screenshots of every page visited, to look at as a user would (docs/testing.md): only when asked for, since the
# full-page PNGs took about a fifth of an axe check of a role's pages.
SHOTS = Path(os.environ["DUESFLOW_SCREENSHOT_DIR"]) if os.environ.get("DUESFLOW_SCREENSHOT_DIR") else None
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The widths the pages are checked at (issue 17): a common laptop, a full-HD screen, a small phone.
LAPTOP = {"width": 1366, "height": 768}
WIDE = {"width": 1920, "height": 1080}
SMALL_PHONE = {"width": 375, "height": 812}
AXE = Axe()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(database_url, tmp_path_factory.mktemp("gunicorn-browser"), workers=2)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "chromium is not installed: apt-get install -y chromium chromium-driver"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visitor:
    """One person at one browser: logs in through the form, keeps screenshots, and records console errors
    (a Content-Security-Policy violation, e.g. an inline script or style, shows up there)."""

    def __init__(self, browser: Browser, server: LiveServer, name: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.server = server
        self.name = name
        self.context: BrowserContext = browser.new_context(viewport=viewport, locale="zh-CN")
        self.page: Page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # A refused form answers 4xx by design; a failed style sheet, script or icon is caught in _response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.console_errors.append(f"{response.status} {response.url}")

    def goto(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def check_accessibility(self, where: str) -> None:
        """axe-core on the page as it stands: no serious or critical violation."""
        violations = AXE.run(self.page).response["violations"]
        serious = [(v["id"], v["help"], [node["target"] for node in v["nodes"]][:3])
                   for v in violations if v["impact"] in ("serious", "critical")]
        assert serious == [], (where, serious)

    def shot(self, label: str) -> None:
        if SHOTS is None:
            return
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{label}.png"), full_page=True)

    def login(self, username: str, password: str = PASSWORD) -> Visitor:
        self.goto("/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("main button[type=submit]")
        return self

    def nav(self, label: str) -> None:
        self.page.click(f"nav.mainnav a:has-text('{label}')")

    def act(self, action: str, reason: str | None = None) -> None:
        form = self.page.locator(f"form.action-{action}")
        details = self.page.locator(f"details:has(form.action-{action})")
        if details.count() and not details.evaluate("element => element.open"):
            details.locator("summary").click()  # an action that undoes or refuses is opened on purpose
        if reason is not None:
            form.locator("textarea").fill(reason)
            form.locator("input[name=confirmed]").check()
        form.locator("button").click()

    def close(self) -> None:
        assert self.console_errors == [], self.console_errors
        self.context.close()


@pytest.fixture
def ids(world: Any) -> dict[str, int]:
    """The ids of the world's members, orgs and users, read once: a test that touches the database after
    ``release_database`` would hold SQLite's write lock again while the server waits for it."""
    found = {f"member_{name}": member.id for name, member in world.members.items()}
    found |= {f"org_{name}": org.id for name, org in world.orgs.items()}
    found |= {f"user_{name}": user.id for name, user in world.users.items()}
    release_database()
    return found


@pytest.fixture
def visit(browser: Browser, server: LiveServer, ids: dict[str, int]) -> Iterator[Any]:
    """``visit(username)``: a logged-in browser for that user of this test's world."""
    opened: list[Visitor] = []

    def open_as(username: str | None, name: str | None = None, viewport: dict[str, int] = DESKTOP) -> Visitor:
        visitor = Visitor(browser, server, name or username or "visitor", viewport)
        opened.append(visitor)
        return visitor.login(username) if username else visitor

    yield open_as
    for visitor in opened:
        visitor.close()


def payment_id_of(page: Page) -> int:
    found = re.search(r"/payments/(\d+)$", page.url)
    assert found, page.url
    return int(found.group(1))


def test_a_payment_travels_from_the_clerk_through_every_level_to_the_members_receipt(visit, ids):
    clerk = visit("clerk", "path-1-clerk")
    clerk.nav("登记款项")
    clerk.page.select_option("#member_id", str(ids["member_zhang"]))
    clerk.page.fill("#amount", "12345.67")
    clerk.page.check("input[name=regular_dues_paid]")
    clerk.shot("entry-form")
    clerk.page.click("main button[type=submit]")
    expect(clerk.page.locator(".flash")).to_contain_text("已登记款项")
    expect(clerk.page.locator("main")).to_contain_text("¥12,345.67")
    expect(clerk.page.locator("main")).to_contain_text("人民币壹万贰仟叁佰肆拾伍元陆角柒分")
    payment_id = payment_id_of(clerk.page)
    clerk.shot("recorded")
    clerk.act("submit")
    expect(clerk.page.locator("h2").first).to_contain_text("逐级审核中")

    tiedong = visit("tiedong", "path-2-tiedong")
    expect(tiedong.page.locator("nav.mainnav")).to_contain_text("待办 1")
    tiedong.nav("待办")
    tiedong.page.check("#select-all")  # select-all.js ticks every row
    expect(tiedong.page.locator(f"input[name=payment_id][value='{payment_id}']")).to_be_checked()
    tiedong.shot("inbox")
    tiedong.page.click("button[name=action][value=forward]")
    expect(tiedong.page.locator(".flash")).to_contain_text("已转交上一级 1 笔款项")
    tiedong.shot("inbox-after")

    siping = visit("siping", "path-3-siping")
    siping.goto(f"/payments/{payment_id}")
    expect(siping.page.locator("main")).to_contain_text("党员简要情况")
    siping.shot("detail")
    siping.act("forward")
    expect(siping.page.locator("ol.path li.here")).to_contain_text("中共吉林省委组织部")

    jilin = visit("jilin", "path-4-jilin")
    jilin.nav("待办")
    jilin.page.click(f"a:has-text('#{payment_id}')")
    jilin.act("forward")
    expect(jilin.page.locator("h2").first).to_contain_text("待中央组织部确认")

    central = visit("central", "path-5-central")
    central.nav("待办")
    central.shot("inbox")
    central.page.click(f"a:has-text('#{payment_id}')")
    central.act("confirm")
    expect(central.page.locator("section.receipt")).to_contain_text("收据编号")
    central.shot("confirmed")
    central.nav("收据")
    central.shot("receipts")

    member = visit("member", "path-6-member")
    member.nav("我的款项")
    expect(member.page.locator("main")).to_contain_text("纪念收据已开具")
    member.shot("my-payments")
    link = member.page.locator("a:has-text('下载纪念收据')").first
    download = member.context.request.get(member.server.url + link.get_attribute("href"))
    assert download.status == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.body().startswith(b"%PDF")


def test_a_returned_payment_is_corrected_and_resubmitted(visit, api, world):
    payment_id = api.record(world.members["li"], "2000.00")["id"]  # the API client, in this process
    advance(api, payment_id, 1)
    release_database()

    tiedong = visit("tiedong", "return-1-tiedong")
    tiedong.goto(f"/payments/{payment_id}")
    tiedong.act("return")  # the reason is required: the browser does not send the form
    expect(tiedong.page.locator("h2").first).to_contain_text("逐级审核中")
    tiedong.act("return", "代收日期与登记册不一致，请核对。")
    expect(tiedong.page.locator(".flash")).to_contain_text("已退回下一级")
    tiedong.shot("returned")

    clerk = visit("clerk", "return-2-clerk")
    clerk.goto(f"/payments/{payment_id}")
    expect(clerk.page.locator("ol.timeline")).to_contain_text("代收日期与登记册不一致")
    clerk.shot("returned-detail")
    clerk.page.click("a:has-text('更正金额')")
    clerk.page.fill("#amount", "999")
    clerk.page.click("main button[type=submit]")
    expect(clerk.page.locator("#amount-error")).to_contain_text("普通党费")
    clerk.shot("correct-below-minimum")
    clerk.page.fill("#amount", "2500")
    clerk.page.click("main button[type=submit]")
    expect(clerk.page.locator("main")).to_contain_text("¥2,500.00")
    clerk.act("submit")
    expect(clerk.page.locator("ol.path li.here")).to_contain_text("中共四平市铁东区委组织部")
    clerk.shot("resubmitted")


def test_a_wrong_password_is_refused_at_the_login_page(visit):
    visitor = visit(None, "login-refused")
    visitor.login("clerk", "not-the-password")
    expect(visitor.page.locator("p.error")).to_contain_text("用户名或密码不正确")
    expect(visitor.page.locator("nav.mainnav")).to_have_count(0)
    visitor.shot("login")


def test_a_clerk_finds_a_member_by_id_number_without_it_entering_the_url_and_central_sees_the_phone_view(visit):
    clerk = visit("clerk", "search")
    clerk.goto("/members")
    clerk.page.fill("#id_number", "220302199001051231")
    clerk.page.click("form.search button")
    expect(clerk.page.locator("table.list")).to_contain_text("张建国")
    expect(clerk.page.locator("table.list")).not_to_contain_text("李秀兰")
    assert "220302199001051231" not in clerk.page.url
    clerk.shot("search-by-id-number")
    clerk.page.click("text=张建国")
    expect(clerk.page.locator("dl.facts")).to_contain_text("13843430001")

    central = visit("central", "access-log")
    central.goto("/access-log")
    expect(central.page.locator("table.list")).to_contain_text("张建国")
    expect(central.page.locator("table.list")).to_contain_text("联系电话")
    central.shot("access-log")


PAGES = {
    "clerk": ["/", "/members", "/members/{zhang}", "/members/{zhang}/edit", "/members/new", "/payments/new",
              "/payments", "/payments/{recorded}", "/payments/{recorded}/correct", "/inbox", "/password",
              "/reports", "/payments/new?category=employed&monthly_income=8000"],
    "tiedong": ["/", "/inbox", "/payments", "/payments/{at_tiedong}", "/members", "/reports?group_by=org"],
    "central": ["/", "/inbox", "/payments/{receipted}", "/receipts", "/direct-remittances", "/payments",
                "/reports?group_by=channel", "/access-log"],
    "member": ["/", "/payments", "/payments/new", "/payments/{receipted}"],
    "admin": ["/", "/admin/orgs", "/admin/orgs/{tiedong_org}", "/admin/users", "/admin/users/{clerk_user}"],
}


# The server does not know the width: the pages' queries run on PostgreSQL at the laptop's, the same markup is laid
# out and checked at the other two on the SQLite run only.
@pytest.mark.parametrize("viewport", [LAPTOP, pytest.param(WIDE, marks=pytest.mark.engine_independent),
                                      pytest.param(SMALL_PHONE, marks=pytest.mark.engine_independent)],
                         ids=["1366", "1920", "375"])
@pytest.mark.parametrize("username", list(PAGES))
def test_every_page_renders_without_errors_fits_the_screen_and_passes_axe(visit, api, world, username, viewport):
    receipted = api.record(world.members["zhang"], "12345.67")["id"]
    advance(api, receipted, 4)
    api.act(receipted, "confirm", "central")
    at_tiedong = api.record(world.members["li"], "2000.50")["id"]
    advance(api, at_tiedong, 1)
    where = {"zhang": world.members["zhang"].id, "recorded": api.record(world.members["zhang"])["id"],
           "receipted": receipted, "at_tiedong": at_tiedong, "tiedong_org": world.orgs["tiedong"].id,
           "clerk_user": world.users["clerk"].id}
    release_database()
    tag = str(viewport["width"])
    visitor = visit(username, f"page-{tag}-{username}", viewport)
    for path in PAGES[username]:
        response = visitor.goto(path.format(**where))
        assert response is not None and response.status == 200, path
        assert visitor.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), \
            f"{path} is wider than the screen"
        visitor.check_accessibility(path)
        visitor.shot(path.strip("/").replace("/", "_").format(**where) or "home")


def test_the_public_pages_pass_axe(visit, server):
    from duesflow import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x" * 32})
    public = ["/login"] + (["/verify"] if any(rule.rule == "/verify" for rule in app.url_map.iter_rules()) else [])
    for viewport in (LAPTOP, SMALL_PHONE):
        visitor = visit(None, f"public-{viewport['width']}", viewport)
        for path in public:
            response = visitor.goto(path)
            assert response is not None and response.status == 200, path
            visitor.check_accessibility(path)
            visitor.shot(path.strip("/"))


def _tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element ``selector`` names has the focus (the keyboard alone, as a person would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(selector) => document.activeElement?.matches(selector) ?? false", selector):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} has the focus but shows no outline"
            return
    pytest.fail(f"Tab never reached {selector}")


def test_a_clerk_records_and_submits_a_payment_with_the_keyboard_alone(visit, ids):
    clerk = visit(None, "keyboard-clerk")
    page = clerk.page
    clerk.goto("/login")
    _tab_to(page, "#username")
    page.keyboard.type("clerk")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/$"))

    _tab_to(page, "nav.mainnav a[href$='/payments/new']")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/payments/new$"))
    _tab_to(page, "#member_id")
    page.keyboard.press("ArrowDown")  # the first member of the list
    _tab_to(page, "#amount")
    page.keyboard.type("1500")
    _tab_to(page, "#collected_on")  # today, as the form proposes
    expect(page.locator("#collected_on")).to_have_value(beijing_today().isoformat())
    _tab_to(page, "#method")
    page.keyboard.press("ArrowDown")
    _tab_to(page, "input[name=regular_dues_paid]")
    page.keyboard.press("Space")
    _tab_to(page, "form.grid-form button[type=submit]:not(.secondary)")
    clerk.shot("form-filled")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/payments/\d+$"))
    expect(page.locator(".flash")).to_contain_text("已登记")
    clerk.shot("recorded")

    _tab_to(page, "form.action-submit button")
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_contain_text("已上报")
    expect(page.locator("main h2").first).to_contain_text("逐级审核中")
    clerk.shot("submitted")
