"""Public HTML pages: login with CSRF protection, security headers, and the receipt verification page."""

from __future__ import annotations

import re

import pytest
from conftest import PASSWORD, advance
from flask import g

CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from_login_page(client) -> str:  # noqa: ANN001
    match = CSRF_FIELD.search(client.get("/login").get_data(as_text=True))
    assert match is not None
    return match.group(1)


def log_in(client, username: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    token = csrf_from_login_page(client)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    # The app fixture keeps one app context pushed, so `g` outlives a request here (never in production):
    # forget the anonymous user the login page cached there.
    g.pop("web_user", None)
    return response


def genuine_receipt(api, world) -> dict:  # noqa: ANN001
    payment = api.record(world.members["zhang"], "12345.67")
    advance(api, payment["id"], 4)
    return api.act(payment["id"], "confirm", "central")["receipt"]


def test_login_page_has_the_three_form_fields(client, world):
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    for field in ("username", "password", "csrf_token"):
        assert re.search(rf'<input[^>]*name="{field}"', page), field
    assert CSRF_FIELD.search(page)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_login_without_the_right_csrf_token_is_400(client, world, token):
    client.get("/login")
    form = {"username": "clerk", "password": PASSWORD}
    if token is not None:
        form["csrf_token"] = token
    response = client.post("/login", data=form)
    assert response.status_code == 400
    with client.session_transaction() as session:
        assert "user_id" not in session


def test_login_with_the_token_and_right_credentials_opens_a_session(client, world):
    response = log_in(client, "clerk")

    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    with client.session_transaction() as session:
        assert session["user_id"] == world.users["clerk"].id
    home = client.get("/")
    assert home.status_code == 200 and "clerk" in home.get_data(as_text=True)


def test_wrong_credentials_give_a_401_page_in_chinese(client, world):
    response = log_in(client, "clerk", "not-the-password")
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert "用户名或密码不正确" in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert "user_id" not in session


def test_home_without_a_session_redirects_to_login(client, world):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_logout_ends_the_session(client, world):
    log_in(client, "clerk")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    response = client.post("/logout", data={"csrf_token": token})
    g.pop("web_user", None)
    assert response.status_code == 302
    assert client.get("/").headers["Location"].endswith("/login")


def _html_responses(client, api, world) -> dict[str, object]:  # noqa: ANN001
    receipt = genuine_receipt(api, world)
    number, code = receipt["number"], receipt["verification_code"]
    responses = {
        "login form": client.get("/login"),
        "csrf refused": client.post("/login", data={"username": "x", "password": "y"}),
        "wrong login": log_in(client, "clerk", "not-the-password"),
        "verify genuine": client.get(f"/verify/{number}?code={code}"),
        "verify not found": client.get(f"/verify/{number}?code=AAAAAAAA"),
        "verify form": client.get(f"/verify/{number}"),
        "unknown page": client.get("/no-such-page"),
    }
    log_in(client, "clerk")
    responses["home"] = client.get("/")
    assert responses["home"].status_code == 200
    return responses


def test_every_html_page_carries_the_security_headers(client, api, world):
    for name, response in _html_responses(client, api, world).items():
        assert response.mimetype == "text/html", name
        policy = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy, name
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, name
        assert "script-src 'self'" in policy or "default-src 'self'" in policy, name
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Referrer-Policy"), name
        page = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), name  # no inline scripts
        assert not re.search(r"\son[a-z]+=", page), name  # no inline event handlers
        assert "https://" not in page and "http://" not in page, name  # no external CDN


def test_verify_page_says_a_genuine_receipt_is_genuine(client, api, world):
    receipt = genuine_receipt(api, world)
    response = client.get(f"/verify/{receipt['number']}?code={receipt['verification_code'].lower()}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "真实有效" in page and "张**" in page and "张建国" not in page
    assert receipt["number"] in page and "中共中央组织部" in page


def test_verify_page_says_a_wrong_code_is_not_found(client, api, world):
    receipt = genuine_receipt(api, world)
    wrong = ("B" if receipt["verification_code"][0] != "B" else "C") + receipt["verification_code"][1:]
    response = client.get(f"/verify/{receipt['number']}?code={wrong}")
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "未找到" in page and "真实有效" not in page and "张*" not in page


def test_verify_page_is_rate_limited_like_the_api(app, client, api, world):
    app.config["VERIFY_MAX_ATTEMPTS"] = 2
    receipt = genuine_receipt(api, world)
    url = f"/verify/{receipt['number']}?code={receipt['verification_code']}"
    statuses = [client.get(url).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_without_its_templates_the_health_check_fails_and_pages_still_answer(app, client, tmp_path):
    from jinja2 import FileSystemLoader

    app.jinja_env.loader = FileSystemLoader(str(tmp_path))  # an install that lost its templates
    app.jinja_env.cache.clear()

    assert client.get("/healthz").status_code == 503
    page = client.get("/login")
    assert page.status_code == 500 and page.mimetype == "text/plain"
    assert "无法完成请求" in page.get_data(as_text=True)
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and missing.mimetype == "text/plain"


def test_the_health_check_passes_when_the_pages_can_render(client):
    assert client.get("/healthz").json == {"status": "ok"}
