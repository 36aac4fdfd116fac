"""Public verification guesses (SPEC §5; issue 14, finding 6): clients counted with IPv6 grouped by /64, and failed
attempts against one receipt number counted across every client and shown to central."""

from __future__ import annotations

from test_login_throttle import signed_in
from test_web_public import genuine_receipt

from duesflow.services import throttle


def verify(client, number: str, code: str, address: str):  # noqa: ANN001, ANN201
    return client.get(f"/api/v1/receipts/{number}/verify", query_string={"code": code},
                      environ_base={"REMOTE_ADDR": address})


def test_ipv6_addresses_of_one_64_share_the_verification_limit(app, client, api, world):
    app.config["VERIFY_MAX_ATTEMPTS"] = 3
    receipt = genuine_receipt(api, world)
    for host in range(1, 4):
        assert verify(client, receipt["number"], "WRONGCOD", f"2001:db8:5:6::{host}").status_code == 404

    refused = verify(client, receipt["number"], receipt["verification_code"], "2001:db8:5:6:abcd::1")

    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert verify(client, receipt["number"], receipt["verification_code"], "2001:db8:5:7::1").status_code == 200


def test_failed_verifications_of_one_number_are_counted_across_clients_and_shown_to_central(app, client, api,
                                                                                           world):
    receipt = genuine_receipt(api, world)
    for attacker in range(6):  # 40 loopback addresses made 1,200 guesses unseen; now every one is counted
        for guess in range(3):
            assert verify(client, receipt["number"], f"WRONG{guess:03d}", f"127.0.0.{attacker + 1}").status_code == 404
    verify(client, "2026-999999", "WRONGCOD", "127.0.0.1")
    verify(client, "not-a-number", "WRONGCOD", "127.0.0.1")  # never a receipt: not counted
    assert verify(client, receipt["number"], receipt["verification_code"], "127.0.0.9").status_code == 200

    expected = [throttle.NumberUnderAttack(receipt["number"], 6, 18),
                throttle.NumberUnderAttack("2026-999999", 1, 1)]
    assert throttle.receipt_numbers_under_attack() == expected
    answer = api.get("/security/verification-failures", "central")
    assert answer.status_code == 200 and answer.json["window_seconds"] == 24 * 3600
    assert answer.json["items"] == [{"number": receipt["number"], "clients": 6, "failures": 18},
                                    {"number": "2026-999999", "clients": 1, "failures": 1}]
    for user in ("admin", "clerk", "tiedong", "member"):
        assert api.get("/security/verification-failures", user).status_code == 403
    browser = signed_in(app, "central")
    page = browser.get("/verification-failures").get_data(as_text=True)
    assert f"<code>{receipt['number']}</code>" in page and ">18<" in page


def test_the_public_page_counts_its_failures_too(client, api, world):
    receipt = genuine_receipt(api, world)
    assert client.get(f"/verify/{receipt['number']}?code=WRONGCOD").status_code == 404

    assert throttle.receipt_numbers_under_attack() == [throttle.NumberUnderAttack(receipt["number"], 1, 1)]
