"""Usernames are unique ignoring letter case and compatibility forms (SPEC §7; issue 14, finding 7): 409 for
``CLERK`` beside ``clerk``, login in any case, and migration 0008 refuses to run over clashing accounts."""

from __future__ import annotations

import pytest
from conftest import PASSWORD
from flask_migrate import upgrade
from sqlalchemy import inspect, text
from test_login_throttle import login, web_login
from test_migrations import _empty_database

from duesflow.extensions import db
from duesflow.identity import fold_username
from duesflow.models import User


@pytest.mark.parametrize("username", ["CLERK", "Clerk", "clerK"])
def test_a_username_differing_only_in_case_is_already_taken(api, world, username):
    response = api.post("/users", "admin", json={"username": username, "password": PASSWORD, "role": "admin"})

    assert response.status_code == 409 and response.json["error"]["code"] == "already_exists"
    assert db.session.query(User).filter(User.username == username).count() == 0


def test_the_admin_page_refuses_it_too(app, world):
    from test_login_throttle import signed_in

    browser = signed_in(app, "admin")
    with browser.session_transaction() as session:
        token = session["csrf_token"]
    page = browser.post("/admin/users", data={"username": "ADMIN", "password": PASSWORD, "role": "admin",
                                              "csrf_token": token})

    assert page.status_code == 409
    assert db.session.query(User).filter(User.username == "ADMIN").count() == 0


@pytest.mark.parametrize("spelling", ["CLERK", "Clerk", "ｃｌｅｒｋ"])
def test_login_accepts_any_case_of_the_username(app, client, world, spelling):
    answer = login(client, spelling)

    assert answer.status_code == 200, answer.json
    assert web_login(app, spelling).status_code == 302


def test_folding_unifies_case_and_compatibility_forms():
    assert {fold_username(name) for name in ("demo-admin", "DEMO-ADMIN", "Demo-Admin", "ｄｅｍｏ－ａｄｍｉｎ")} == {
        "demo-admin"}
    assert fold_username("Straße") == fold_username("STRASSE")


def _users_before_0008(app, *usernames: str) -> None:
    _empty_database()
    upgrade(directory=app.extensions["migrate"].directory, revision="0007")
    with db.engine.begin() as connection:
        for username in usernames:
            connection.execute(text(
                "INSERT INTO users (username, password_hash, role, active, auth_version, created_at) "
                "VALUES (:username, 'x', 'admin', :active, 1, CURRENT_TIMESTAMP)"),
                {"username": username, "active": True})


@pytest.mark.payment_counts_unchecked("it leaves the schema at revision 0007, before the heads count payments")
def test_migration_0008_refuses_clashing_accounts_naming_them_and_changes_nothing(app, capfd):
    try:
        _users_before_0008(app, "demo-admin", "DEMO-ADMIN", "clerk", "Clerk", "central")
        with pytest.raises(SystemExit):  # flask-migrate logs the error and exits 1, as `init-db` does
            upgrade(directory=app.extensions["migrate"].directory)
        message = capfd.readouterr().err
        assert "clash" in message
        for name in ("'demo-admin' (id 1)", "'DEMO-ADMIN' (id 2)", "'clerk' (id 3)", "'Clerk' (id 4)"):
            assert name in message
        assert "central" not in message
        db.session.remove()
        columns = {column["name"] for column in inspect(db.engine).get_columns("users")}
        assert "username_folded" not in columns
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0007"
            assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 5

        with db.engine.begin() as connection:  # the operator renames; nothing was merged
            connection.execute(text("UPDATE users SET username = 'demo-admin-2' WHERE id = 2"))
            connection.execute(text("UPDATE users SET username = 'clerk-2' WHERE id = 4"))
        upgrade(directory=app.extensions["migrate"].directory)
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT username, username_folded FROM users ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [("demo-admin", "demo-admin"), ("demo-admin-2", "demo-admin-2"),
                                                ("clerk", "clerk"), ("clerk-2", "clerk-2"), ("central", "central")]
    finally:
        db.session.remove()
        _empty_database()
