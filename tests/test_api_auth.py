"""Bearer tokens, the login throttle, logout and revocation, password changes (SPEC §7 Auth)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import PASSWORD
from sqlalchemy import func, select, update

from duesflow.extensions import db
from duesflow.models import Token, User, utcnow

NEW_PASSWORD = "a-brand-new-passphrase"


def login(client, username: str, password: str = PASSWORD, address: str = "10.0.0.1"):  # noqa: ANN201
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def call_with(client, token: str):  # noqa: ANN201
    """Any authenticated request: the org list."""
    return client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {token}"})


def token_of(client, username: str, password: str = PASSWORD) -> str:
    response = login(client, username, password)
    assert response.status_code == 200, response.json
    return response.json["token"]


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def live_tokens(username: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Token).join(User).where(User.username == username,
                                                                 Token.revoked_at.is_(None))
    )


def user_id(world, username: str) -> int:
    return world.users[username].id


# ---- issuing tokens -------------------------------------------------------------------------------------


def test_right_credentials_get_an_opaque_token_stored_only_as_a_hash(client, world):
    response = login(client, "clerk")

    assert response.status_code == 200
    assert set(response.json) == {"token", "expires_in"}
    assert response.json["expires_in"] == 8 * 3600
    token = response.json["token"]
    assert call_with(client, token).status_code == 200
    stored = db.session.scalars(select(Token.token_hash)).all()
    assert len(stored) == 1 and token not in stored[0]


@pytest.mark.parametrize(
    ("username", "password"),
    [("clerk", "wrong-password-1"), ("nobody", PASSWORD), ("CLERK", "Correct-Horse-Battery"),
     ("clerk", PASSWORD + " ")],
    ids=["wrong-password", "unknown-user", "password-is-case-sensitive", "password-is-not-stripped"],
)
def test_wrong_credentials_are_invalid_credentials(client, world, username, password):
    response = login(client, username, password)

    assert_error(response, 401, "invalid_credentials")
    assert db.session.scalar(select(func.count()).select_from(Token)) == 0


def test_a_nul_in_the_username_is_refused_on_the_api_and_the_login_page(client, world):
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    api_answer = login(client, "clerk\x00")
    page_answer = client.post("/login",
                              data={"username": "clerk\x00", "password": PASSWORD, "csrf_token": csrf})

    assert_error(api_answer, 422, "validation_error")
    assert page_answer.status_code == 401
    assert db.session.scalar(select(func.count()).select_from(Token)) == 0


def test_a_deactivated_user_cannot_log_in(api, client, world):
    api.patch(f"/users/{user_id(world, 'clerk')}", "admin", json={"active": False})

    assert_error(login(client, "clerk"), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer    ", "Bearer garbage", "Basic Y2xlcms6cGFzcw==", "Bearer " + "x" * 500,
     "Token abc"],
    ids=["none", "empty", "scheme-only", "blank-token", "garbage", "basic", "huge", "other-scheme"],
)
def test_missing_or_garbage_token_is_unauthenticated(client, world, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get("/api/v1/orgs", headers=headers)

    assert_error(response, 401, "unauthenticated")


def test_an_expired_token_is_unauthenticated(client, world):
    token = token_of(client, "clerk")
    db.session.execute(update(Token).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    assert_error(call_with(client, token), 401, "unauthenticated")


def test_tokens_expire_after_the_configured_ttl(app, client, world):
    app.config["TOKEN_TTL"] = timedelta(seconds=0)

    response = login(client, "clerk")

    assert response.json["expires_in"] == 0
    assert_error(call_with(client, response.json["token"]), 401, "unauthenticated")


def test_logout_revokes_only_the_token_it_carries(client, world):
    token, other = token_of(client, "clerk"), token_of(client, "clerk")

    response = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 204 and response.data == b""
    assert_error(call_with(client, token), 401, "unauthenticated")
    assert call_with(client, other).status_code == 200
    assert live_tokens("clerk") == 1


def test_logout_without_a_token_is_unauthenticated(client, world):
    assert_error(client.post("/api/v1/auth/logout"), 401, "unauthenticated")


# The login throttle: tests/test_login_throttle.py.


# ---- revocation -----------------------------------------------------------------------------------------


def test_deactivating_a_user_revokes_its_tokens_for_good(api, client, world):
    token = token_of(client, "clerk")
    target = f"/users/{user_id(world, 'clerk')}"

    response = api.patch(target, "admin", json={"active": False})

    assert response.status_code == 200 and response.json["active"] is False
    assert_error(call_with(client, token), 401, "unauthenticated")
    assert live_tokens("clerk") == 0
    api.patch(target, "admin", json={"active": True})
    assert_error(call_with(client, token), 401, "unauthenticated")
    assert login(client, "clerk").status_code == 200


def test_a_password_reset_by_the_admin_revokes_tokens_and_replaces_the_password(api, client, world):
    token = token_of(client, "clerk")

    response = api.patch(f"/users/{user_id(world, 'clerk')}", "admin", json={"password": NEW_PASSWORD})

    assert response.status_code == 200
    assert_error(call_with(client, token), 401, "unauthenticated")
    assert_error(login(client, "clerk", PASSWORD, "10.1.0.1"), 401, "invalid_credentials")
    assert login(client, "clerk", NEW_PASSWORD, "10.1.0.2").status_code == 200


# ---- changing one's own password ------------------------------------------------------------------------


def change_password(client, token: str, old: str, new: str):  # noqa: ANN201
    return client.post("/api/v1/auth/password", headers={"Authorization": f"Bearer {token}"},
                       json={"old_password": old, "new_password": new})


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [("wrong-old-password", NEW_PASSWORD, "old_password"), (PASSWORD, "123456789", "new_password")],
    ids=["wrong-old-password", "new-too-short"],
)
def test_a_refused_password_change_keeps_everything(client, world, old, new, field):
    token = token_of(client, "clerk")
    hash_before = world.users["clerk"].password_hash

    response = change_password(client, token, old, new)

    assert_error(response, 422, "validation_error")
    assert set(response.json["error"]["fields"]) == {field}
    db.session.expire_all()
    assert db.session.get(User, user_id(world, "clerk")).password_hash == hash_before
    assert call_with(client, token).status_code == 200


def test_changing_ones_password_revokes_every_token_and_the_new_password_works(client, world):
    token, other = token_of(client, "clerk"), token_of(client, "clerk")

    response = change_password(client, token, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 204
    assert_error(call_with(client, token), 401, "unauthenticated")
    assert_error(call_with(client, other), 401, "unauthenticated")
    assert_error(login(client, "clerk", PASSWORD, "10.2.0.1"), 401, "invalid_credentials")
    assert login(client, "clerk", NEW_PASSWORD, "10.2.0.2").status_code == 200


def test_passwords_are_stored_as_argon2id_hashes(api, world):
    api.post("/users", "admin", json={"username": "new_reviewer", "password": NEW_PASSWORD,
                                      "role": "reviewer", "org_id": world.orgs["siping"].id})

    hashes = db.session.scalars(select(User.password_hash)).all()

    assert len(hashes) == len(world.users) + 1
    assert all(stored.startswith("$argon2id$") for stored in hashes)
    assert not any(PASSWORD in stored or NEW_PASSWORD in stored for stored in hashes)


def test_two_revocations_at_once_both_count(app, world):
    """``revoke_all`` raises the user's auth_version in SQL, not from the value this request read: a revocation
    committed meanwhile (here: behind the loaded object's back) is not overwritten, and web sessions made
    between the two stay void."""
    from duesflow.services.auth import revoke_all

    user = world.users["clerk"]
    before = user.auth_version
    db.session.execute(update(User).where(User.id == user.id).values(auth_version=User.auth_version + 1),
                       execution_options={"synchronize_session": False})
    revoke_all(user)  # the object still holds ``before``
    db.session.commit()
    assert db.session.scalar(select(User.auth_version).where(User.id == user.id)) == before + 2
