"""Benchmark data (issue 7): fill an empty database with N realistic payments, in bulk.

A tool beside the product, not part of it: ``python bench/bench_seed.py --payments N`` (the database from
``DUESFLOW_DATABASE_URL``, like ``flask --app duesflow``); ``bench_seed`` is the click command.

What it builds, below the real channel tree of ``seed-orgs``:

- a deep branch under five provinces (province → city → district → street working committee → community
  committees, grassroots six levels down from central; a few grassroots committees hang directly under a district)
  and under the SASAC party committee (enterprise group → branch company → grassroots), about 2,000 orgs;
- one account per org of that branch (reviewers ``bench-r-<code>``, clerks ``bench-c-<code>``), three central
  users, an admin and five member accounts, all with one password hashed once;
- members through the ORM (``Member(...)``), so whatever the model does to their particulars on the way in applies;
- N payments spread over the last years in working hours, each with the events of its whole history: corrections,
  returns, rejections and refunds, withdrawals, confirmations with their receipts, deliveries, reissues and voids.

How it stays true to the services: every payment's history is simulated with ``workflow.target`` and written the
way the services write it (same actions, notes, details, path fixed at the first submit, version = one per change).
The events of all payments are merged into time order through a heap, so event ids, the audit hash chain
(``audit.event_hash``) and the receipt numbers (gapless per Beijing year) all follow the order things happened in.

How it is fast: ids are assigned here; rows of payments, events, receipts, refunds and deliveries are built as
database-native values (timestamps as naive-UTC text, as ``UTCDateTime`` stores them) and written in chunks while
the next chunk is made, on the other core: COPY from a thread on PostgreSQL, executemany in a process of its own on
SQLite. SQLite commits per chunk (with ``synchronous=OFF`` meanwhile); PostgreSQL loads in one transaction whose
foreign keys are dropped and added back at its end, which checks them in one pass instead of row by row.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import secrets
import sqlite3
import threading
import time
import traceback
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from math import ceil, log
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as ProcessQueue
from operator import attrgetter
from queue import Queue
from typing import Any, cast

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from sqlalchemy import Connection, Table, func, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute

from duesflow.errors import DomainError
from duesflow.extensions import db
from duesflow.identity import fold_username, resident_id_check_character
from duesflow.models import (
    AuditHead,
    DirectRemittance,
    Event,
    Member,
    Org,
    Payment,
    Receipt,
    ReceiptDelivery,
    ReceiptSequence,
    Refund,
    User,
    utcnow,
)
from duesflow.money import format_amount
from duesflow.receipts.pdf import chinese_date
from duesflow.services import auth
from duesflow.services.audit import GENESIS_HASH, PAYMENT_COUNTS, chain_key, count_move, event_hash
from duesflow.services.orgs import load_channel_seed, seed_orgs
from duesflow.services.payments import CORRECTION_LABELS, EARLIEST_COLLECTION
from duesflow.services.receipts import CODE_ALPHABET, CODE_LENGTH, receipt_number
from duesflow.services.refunds import REFUND_METHOD_NAMES
from duesflow.workflow import RECEIPT_TRANSITIONS, Action, OrgKind, Position, ReceiptChange, Role, State, target

DEFAULT_PASSWORD = "bench-password"
CODE_PREFIX = "bench."
MAX_MEMBERS_BY_DEFAULT = 60_000

# ---- time: integer microseconds since the Unix epoch (UTC), cheap to add and compare by the million ----------

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
BEIJING_OFFSET = 8 * HOUR  # Asia/Shanghai has kept UTC+8 without daylight saving since 1991
WORK_START = 8 * HOUR + 30 * MINUTE  # Beijing office hours, 08:30–17:30, Monday to Friday
WORK_LENGTH = 9 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = EPOCH.date().toordinal()


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _db_time(moment: datetime) -> str:
    """A UTC timestamp as ``UTCDateTime`` stores it: naive UTC, always with microseconds (SQLite's text form)."""
    return moment.isoformat(" ", "microseconds")[:-6]  # without the "+00:00"


def _beijing_date(micros: int) -> date:
    return date.fromordinal(EPOCH_ORDINAL + (micros + BEIJING_OFFSET) // DAY)


def _is_workday(day: int) -> bool:
    return (day + 3) % 7 < 5  # day 0 (1970-01-01) was a Thursday


def _in_office_hours(micros: int, rng: random.Random) -> int:
    """``micros`` if it falls in Beijing office hours, else a moment early on the next working morning."""
    day, time_of_day = divmod(micros + BEIJING_OFFSET, DAY)
    if _is_workday(day) and WORK_START <= time_of_day < WORK_START + WORK_LENGTH:
        return micros
    if not (_is_workday(day) and time_of_day < WORK_START):
        day += 1
        while not _is_workday(day):
            day += 1
    return day * DAY + WORK_START + int(rng.random() * 90 * MINUTE) - BEIJING_OFFSET


class _OfficeClock:
    """The office hours between two moments laid end to end, so that N evenly spread points on it become N
    increasing moments in office hours."""

    def __init__(self, start: int, end: int) -> None:
        first, last = (start + BEIJING_OFFSET) // DAY, (end + BEIJING_OFFSET) // DAY
        self.days: list[int] = []
        self.ends: list[int] = []  # cumulative office time at the end of each day
        total = 0
        for day in range(first, last + 1):
            if not _is_workday(day):
                continue
            opens = day * DAY + WORK_START - BEIJING_OFFSET
            length = max(0, min(WORK_LENGTH, end - opens)) if day == last else WORK_LENGTH
            if length:
                total += length
                self.days.append(opens)
                self.ends.append(total)
        if not total:
            raise ValueError("no office hours in the span")
        self.length = total

    def moment(self, offset: int) -> int:
        """The moment ``offset`` microseconds of office time after the start."""
        index = bisect_right(self.ends, offset)
        index = min(index, len(self.ends) - 1)
        before = self.ends[index - 1] if index else 0
        return self.days[index] + offset - before


# ---- the bench branch of the org tree ----------------------------------------------------------------------

PROVINCES: dict[str, tuple[str, ...]] = {
    "jilin": ("长春市", "吉林市", "四平市", "通化市"),
    "henan": ("郑州市", "洛阳市", "开封市", "南阳市"),
    "sichuan": ("成都市", "绵阳市", "宜宾市", "南充市"),
    "guangdong": ("广州市", "佛山市", "东莞市", "湛江市"),
    "zhejiang": ("杭州市", "宁波市", "温州市", "绍兴市"),
}
DISTRICTS = ("东城区", "西城区", "南湖区", "北山区", "新华区", "高新区", "经开区", "城关区", "河东区", "河西区",
             "平安县", "永安县", "长乐县", "兴隆县")
STREETS = ("解放街道", "人民街道", "和平街道", "新华街道", "建设街道", "胜利街道", "红旗街道", "光明街道", "东风街道",
           "北门街道", "南门街道", "站前街道", "中山街道", "文化街道", "青年街道", "长青街道")
COMMUNITIES = ("幸福", "平安", "康宁", "春光", "丽园", "和谐", "阳光", "翠湖", "锦绣", "朝阳", "新苑", "民主",
               "友谊", "团结", "兴业", "福寿", "紫荆", "海棠", "桂花", "梧桐")
DISTRICT_UNITS = ("人民医院", "第一中学", "实验小学", "机关", "市场监督管理局")
ENTERPRISES: dict[str, tuple[str, ...]] = {
    "中国华能集团有限公司": ("华能吉林发电有限公司", "华能四川水电有限公司", "华能国际电力江苏分公司"),
    "中国中铁股份有限公司": ("中铁一局集团有限公司", "中铁二局集团有限公司", "中铁大桥局集团有限公司"),
    "中国建筑集团有限公司": ("中建一局集团有限公司", "中建三局集团有限公司", "中建八局集团有限公司"),
}
ENTERPRISE_UNITS = ("机关", "第一项目部", "第二项目部", "第三项目部", "检修分公司", "物资供应中心")
SASAC_REGION = "11"


@dataclass(frozen=True)
class _Place:
    """Where a grassroots org is, for its members' ID numbers and work units."""

    region: str  # six digits: the address code of its members' resident IDs
    locality: str  # e.g. 长春市东城区; empty for an enterprise
    street: str  # or the district-level unit, or the enterprise's branch company


@dataclass
class _Tree:
    """The bench branch as rows to insert, and what the simulation needs to know about it."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    staffed: list[int] = field(default_factory=list)  # intermediate and channel orgs that get a reviewer
    grassroots: list[int] = field(default_factory=list)
    paths: dict[int, list[int]] = field(default_factory=dict)  # grassroots org → its ids up to central
    places: dict[int, _Place] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def _build_tree(rng: random.Random, channels: dict[str, Org], first_id: int, now: datetime) -> _Tree:
    """The bench branch, with ids from ``first_id`` on, parents before children."""
    tree = _Tree()
    next_id = first_id
    regions = {channel["code"]: channel.get("region_code", SASAC_REGION) for channel in load_channel_seed()["channels"]}

    def add(name: str, kind: OrgKind, parent: tuple[int, str], code: str) -> tuple[int, str]:
        nonlocal next_id
        org_id, next_id = next_id, next_id + 1
        tree_path = f"{parent[1]}{org_id}/"
        tree.rows.append({"id": org_id, "name": name, "kind": kind.value, "parent_id": parent[0],
                          "tree_path": tree_path, "code": code, "active": True, "created_at": now})
        tree.codes[org_id], tree.names[org_id] = code, name
        if kind is OrgKind.GRASSROOTS:
            tree.grassroots.append(org_id)
            tree.paths[org_id] = [int(part) for part in reversed(tree_path.strip("/").split("/"))]
        else:
            tree.staffed.append(org_id)
        return org_id, tree_path

    for province, cities in PROVINCES.items():
        channel = channels[province]
        tree.staffed.append(channel.id)
        tree.codes[channel.id], tree.names[channel.id] = channel.code or province, channel.name
        for c, city in enumerate(cities, start=1):
            city_org = add(f"中共{city}委组织部", OrgKind.INTERMEDIATE, (channel.id, channel.tree_path),
                           f"{CODE_PREFIX}{province}.{c}")
            for d, district in enumerate(rng.sample(DISTRICTS, rng.randint(3, 4)), start=1):
                locality = f"{city}{district}"
                district_code = f"{CODE_PREFIX}{province}.{c}.{d}"
                district_org = add(f"中共{locality}委组织部", OrgKind.INTERMEDIATE, city_org, district_code)
                region = f"{regions[province]}{c:02d}{d:02d}"
                for u, unit in enumerate(rng.sample(DISTRICT_UNITS, rng.randint(1, 2)), start=1):
                    org_id, _ = add(f"中共{locality}{unit}委员会", OrgKind.GRASSROOTS, district_org,
                                    f"{district_code}.u{u}")
                    tree.places[org_id] = _Place(region, locality, unit)
                for s, street in enumerate(rng.sample(STREETS, rng.randint(3, 4)), start=1):
                    street_org = add(f"中共{locality}{street}工作委员会", OrgKind.INTERMEDIATE, district_org,
                                     f"{district_code}.{s}")
                    for g, community in enumerate(rng.sample(COMMUNITIES, rng.randint(4, 8)), start=1):
                        org_id, _ = add(f"中共{locality}{street}{community}社区委员会", OrgKind.GRASSROOTS,
                                        street_org, f"{district_code}.{s}.{g}")
                        tree.places[org_id] = _Place(region, locality, street)
    sasac = channels["sasac"]
    tree.staffed.append(sasac.id)
    tree.codes[sasac.id], tree.names[sasac.id] = sasac.code or "sasac", sasac.name
    for e, (enterprise, branches) in enumerate(ENTERPRISES.items(), start=1):
        group = add(f"中共{enterprise}委员会", OrgKind.INTERMEDIATE, (sasac.id, sasac.tree_path),
                    f"{CODE_PREFIX}sasac.{e}")
        for b, branch in enumerate(branches, start=1):
            branch_org = add(f"中共{branch}委员会", OrgKind.INTERMEDIATE, group, f"{CODE_PREFIX}sasac.{e}.{b}")
            for u, unit in enumerate(rng.sample(ENTERPRISE_UNITS, rng.randint(3, 5)), start=1):
                org_id, _ = add(f"中共{branch}{unit}委员会", OrgKind.GRASSROOTS, branch_org,
                                f"{CODE_PREFIX}sasac.{e}.{b}.{u}")
                tree.places[org_id] = _Place(f"{SASAC_REGION}01{e:02d}", "", branch)
    return tree


def _short_code(code: str) -> str:
    return code.removeprefix(CODE_PREFIX)


def reviewer_username(code: str) -> str:
    """The bench reviewer of the org with ``code`` (a channel's code, or a bench org's)."""
    return f"bench-r-{_short_code(code)}"


def clerk_username(code: str) -> str:
    """The bench clerk of the grassroots org with ``code``."""
    return f"bench-c-{_short_code(code)}"


# ---- members ------------------------------------------------------------------------------------------------

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤")
RARE_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫")
GIVEN_NAME_CHARACTERS = ("建国华明秀英丽娟志强伟芳敏静军洋勇艳杰娜涛超霞平刚桂兰玉珍海峰德胜淑红梅"
                         "文斌辉磊晓东雪春燕宏波鹏飞佳琳婷宇浩然欣怡远振兴庆卫萍新民立成永福长林金凤云龙")
POSITIONS = ("干部", "教师", "医生", "护士", "工程师", "技术员", "会计", "经理", "科员", "社区书记", "退休干部",
             "退休工人", "退休教师", "职员")
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158",
                   "159", "177", "180", "181", "186", "187", "188", "189", "199")


def _member_name(rng: random.Random) -> str:
    surname = rng.choice(RARE_SURNAMES) if rng.random() < 0.01 else rng.choice(SURNAMES)
    given = "".join(rng.choice(GIVEN_NAME_CHARACTERS) for _ in range(1 if rng.random() < 0.3 else 2))
    return surname + given


class _MemberMaker:
    """Members with particulars that pass the service's own checks: valid resident IDs (checksum), unique mobile
    numbers, birth and joining dates that fit."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.id_numbers: set[str] = set()
        self.phones: set[str] = set()

    def id_number(self, region: str, birth: date, gender: str) -> str:
        while True:
            serial = self.rng.randrange(100) * 10 + self.rng.randrange(5) * 2 + (gender == "male")
            first17 = f"{region}{birth:%Y%m%d}{serial:03d}"
            number = first17 + resident_id_check_character(first17)
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                return number

    def phone(self) -> str:
        while True:
            number = f"{self.rng.choice(MOBILE_PREFIXES)}{self.rng.randrange(10 ** 8):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def make(self, member_id: int, org_id: int, place: _Place, created_at: datetime) -> Member:
        rng = self.rng
        gender = "male" if rng.random() < 0.62 else "female"
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 63))
        joined = birth + timedelta(days=365 * rng.randint(18, 45) + rng.randrange(365))
        here = place.locality
        unit = place.street if not here else rng.choice((
            f"{here}{place.street}", f"{here}人民医院", f"{here}第{rng.randint(1, 12)}中学", f"{here}人民政府",
            f"{here}供电公司", f"{here}{place.street}办事处" if place.street.endswith("街道") else here))
        return Member(
            id=member_id, org_id=org_id, name=_member_name(rng), gender=gender, birth_date=birth,
            joined_on=joined if joined <= self.today else None,
            id_number=self.id_number(place.region, birth, gender) if rng.random() < 0.9 else None,
            work_unit=unit, position=rng.choice(POSITIONS),
            phone=self.phone() if rng.random() < 0.85 else None,
            email=f"bench{member_id}@example.cn" if rng.random() < 0.15 else None,
            created_at=created_at, updated_at=created_at,
        )


# ---- the payments' histories --------------------------------------------------------------------------------

METHODS = ("bank_transfer", "wechat", "cash", "alipay", "other")
METHOD_WEIGHTS = (40, 25, 20, 10, 5)
AMOUNTS = ("1000", "2000", "3000", "5000", "10000", "1200", "1500", "2500", "8000", "20000", "50000", "100000")
AMOUNT_WEIGHTS = (35, 15, 8, 12, 10, 3, 4, 3, 2, 3, 1, 0.3)
PAYMENT_NOTES = ("党员本人到党委办公室交纳", "通过单位账户转入", "党员委托家属代为交纳", "党员退休前自愿多交")
RETURN_REASONS = ("代收日期与登记册不一致，请核对。", "党员简要情况填写不完整，请补充。",
                  "金额与汇款凭证不符，请核对后重新上报。", "缺少党员本人签字的交纳登记表。")
REJECT_REASONS = ("经核实该党员未按规定交纳党费，不符合自愿多交条件。", "重复登记：该党员同日已交纳一笔。",
                  "经核实并非党员本人自愿交纳。")
WITHDRAW_REASONS = ("党员本人要求撤回，改日再交。", "登记有误，撤回后重新登记。", "党员组织关系已转出，由新单位代收。")
VOID_REASON = "确认有误，收据作废后重新确认。"
REISSUE_REASON = "党员收据遗失，申请补发。"

# Scripts for the newest payments, so that every state (and every level of review) is present even for small N.
COVERAGE_SCRIPTS: tuple[tuple[str, ...], ...] = (
    ("submit", "forward", "forward", "forward", "forward", "confirm", "deliver"),
    ("submit", "forward", "forward", "forward", "forward", "confirm", "deliver", "reissue"),
    ("submit", "forward", "forward", "forward", "forward", "confirm", "void"),
    ("submit", "forward", "reject", "refund"),
    ("withdraw",),
    ("submit", "forward", "forward", "reject"),
    ("submit", "return", "correct"),
    ("submit", "forward", "forward", "forward", "forward"),
    ("submit", "forward", "forward", "forward"),
    ("submit", "forward", "forward"),
    ("submit", "forward"),
    ("submit",),
    ("correct",),
)

Odds = tuple[tuple[str, float], ...]
STATE_TEXT = {state: state.value for state in State}  # a dict lookup, not the enum's property, millions of times


def _odds(weights: dict[str, float]) -> Odds:
    """Choices with their cumulative probabilities, for one ``random()`` per draw."""
    total, running, odds = sum(weights.values()), 0.0, []
    for name, weight in weights.items():
        running += weight / total
        odds.append((name, running))
    return tuple(odds)


# What happens next, and how often: at the grassroots org, at each level of review, once receipted.
FIRST_MOVE = _odds({"withdraw": 0.015, "submit": 0.985})
AFTER_RETURN = _odds({"withdraw": 0.15, "submit": 0.85})
AT_REVIEW = _odds({"reject": 0.004, "return": 0.012, "forward": 0.984})
AT_REVIEW_NO_RETURN = _odds({"reject": 0.004, "forward": 0.996})  # returned three times already: no more
AT_CENTRAL = _odds({"reject": 0.005, "return": 0.01, "confirm": 0.985})
AT_CENTRAL_NO_RETURN = _odds({"reject": 0.005, "confirm": 0.995})
RECEIPTED = _odds({"void": 0.0015, "reissue": 0.003, "deliver": 0.8, "stop": 0.1955})
METHOD_ODDS = tuple(accumulate(METHOD_WEIGHTS))
AMOUNT_ODDS = tuple(accumulate(AMOUNT_WEIGHTS))

# Kinds of step: (minimum, mean of the exponential part) of the delay before it, in office-hour-projected time.
DELAYS: dict[str, tuple[int, int]] = {
    "correct": (5 * MINUTE, 2 * HOUR),
    "submit": (30 * MINUTE, 1 * DAY),
    "resubmit": (1 * DAY, 3 * DAY),
    "withdraw": (30 * MINUTE, 2 * DAY),
    "review": (1 * HOUR, 2 * DAY),
    "central": (4 * HOUR, 4 * DAY),
    "void": (1 * DAY, 5 * DAY),
    "deliver": (5 * DAY, 20 * DAY),
    "reissue": (30 * DAY, 90 * DAY),
    "refund": (1 * DAY, 10 * DAY),
}


@dataclass(frozen=True)
class _Staff:
    clerks: dict[int, int]  # grassroots org → its clerk's user id
    reviewers: dict[int, int]  # org → its reviewer's user id
    central: tuple[int, ...]


@dataclass(slots=True, eq=False)
class _Journey:
    """A payment whose steps are being written, with its live receipt as the steps leave it."""

    payment_id: int
    member_name: str
    receipt: tuple[int, str] | None = None  # (receipt id, number)
    receipt_version: int = 0


@dataclass(slots=True, eq=False)
class _Step:
    """One event of a payment's history before it is numbered and hashed. Its attributes are those
    ``audit.event_hash`` reads (``at`` is set when it is written), so the step itself is hashed: no ORM object
    per event, of which there are millions."""

    micros: int  # when it happened
    action: str
    from_state: str | None
    to_state: str
    from_org_id: int | None
    to_org_id: int
    actor_id: int
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    payment_id: int = 0
    chain: str = ""  # the grassroots org's audit chain
    at: datetime | None = None
    journey: _Journey | None = None
    # confirm: the version and voided mark its receipt ends with (set once the history is cut at now)
    extra: tuple[int, bool] | None = None


class _Simulator:
    """Draws each payment's history, randomly or by a script, with ``workflow.target`` moving it along its path."""

    def __init__(self, rng: random.Random, staff: _Staff) -> None:
        self.rng = rng
        self.staff = staff

    def _delay(self, kind: str) -> int:
        minimum, mean = DELAYS[kind]
        return minimum + int(-log(1.0 - self.rng.random()) * mean)  # exponential, as random.expovariate draws it

    def history(self, payment_id: int, path: list[int], record_at: int, amount: Decimal, collected_on: date,
                script: list[str] | None) -> list[_Step]:
        """The steps of one payment from its record on (a script, when given, says what happens and where the
        history stops); the caller cuts them at now."""
        rng, staff = self.rng, self.staff
        grassroots, last = path[0], len(path) - 1
        clerk = staff.clerks[grassroots]
        steps = [_Step(record_at, "record", None, State.RECORDED.value, None, grassroots, clerk,
                       details={"amount": format_amount(amount)}, payment_id=payment_id)]
        position = Position(State.RECORDED, 0)
        moment = record_at

        def maybe(action: str, chance: float) -> bool:
            if script is not None:
                if script and script[0] == action:
                    script.pop(0)
                    return True
                return False
            return rng.random() < chance

        def pick(odds: Odds) -> str | None:
            if script is not None:
                return script.pop(0) if script and any(name == script[0] for name, _ in odds) else None
            draw = rng.random()
            for name, bound in odds:
                if draw < bound:
                    return name
            return odds[-1][0]

        def step(action: str, kind: str, actor: int, there: Position, note: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
            nonlocal moment, position
            moment = max(_in_office_hours(moment + self._delay(kind), rng), moment + US)
            steps.append(_Step(moment, action, STATE_TEXT[position.state], STATE_TEXT[there.state],
                               path[position.holder_index], path[there.holder_index], actor, note, details or {},
                               payment_id))
            position = there

        def move(action: Action, kind: str, actor: int, note: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
            step(action.value, kind, actor, target(action, position, path), note, details)

        def correct() -> None:
            nonlocal amount, collected_on
            if rng.random() < 0.6:
                new_amount = amount + Decimal(rng.choice(("100", "200", "500", "-100", "1000")))
                new_amount = max(new_amount, Decimal("1000.00"))
                if new_amount == amount:
                    new_amount += Decimal("100")
                old, new = {"amount": format_amount(amount)}, {"amount": format_amount(new_amount)}
                details: dict[str, Any] = {"old": old, "new": new, "amount": new["amount"]}
                amount = new_amount
            else:
                new_date = max(collected_on - timedelta(days=rng.randint(1, 5)), EARLIEST_COLLECTION)
                if new_date == collected_on:
                    new_date += timedelta(days=1)
                old, new = {"collected_on": collected_on.isoformat()}, {"collected_on": new_date.isoformat()}
                details = {"old": old, "new": new}
                collected_on = new_date
            label = next(iter(old))
            note = f"更正 {CORRECTION_LABELS[label]}：{old[label]} → {new[label]}"
            step("correct", "correct", clerk, position, note, details)

        def reviewer() -> int:
            if position.holder_index == last:
                return rng.choice(staff.central)
            return staff.reviewers[path[position.holder_index]]

        if maybe("correct", 0.03):
            correct()
        choice = pick(FIRST_MOVE)
        if choice is None:  # a script that ends before the first submit
            return steps
        if choice == "withdraw":
            move(Action.WITHDRAW, "withdraw", clerk, rng.choice(WITHDRAW_REASONS))
            return steps
        move(Action.SUBMIT, "submit", clerk)
        returns = 0
        while True:
            at_central = position.holder_index == last
            if position.state is State.RETURNED:
                if maybe("correct", 0.4):
                    correct()
                choice = pick(AFTER_RETURN)
                if choice is None:
                    break
                if choice == "withdraw":
                    move(Action.WITHDRAW, "withdraw", clerk, rng.choice(WITHDRAW_REASONS))
                    break
                move(Action.SUBMIT, "resubmit", clerk)
                continue
            if position.state is State.RECEIPTED:
                if not self._after_receipt(step, position, clerk, pick, maybe):
                    break
                continue  # voided: at central again, awaiting a new confirmation
            if position.state is State.REJECTED:
                if maybe("refund", 0.85):
                    self._refund(step, position, path, clerk)
                break
            if at_central:
                choice = pick(AT_CENTRAL if returns < 3 else AT_CENTRAL_NO_RETURN)
            else:
                choice = pick(AT_REVIEW if returns < 3 else AT_REVIEW_NO_RETURN)
            if choice is None:
                break
            kind = "central" if at_central else "review"
            if choice == "return":
                returns += 1
                move(Action.RETURN, kind, reviewer(), rng.choice(RETURN_REASONS))
            elif choice == "reject":
                move(Action.REJECT, kind, reviewer(), rng.choice(REJECT_REASONS))
            else:
                move(Action(choice), kind, reviewer())
        return steps

    def _after_receipt(self, step: Callable[..., None], position: Position, clerk: int,
                       pick: Callable[[Odds], str | None], maybe: Callable[[str, float], bool]) -> bool:
        """Deliveries and reissues of the live receipt; True when it was voided (the payment is at central again).
        The receipt's number goes into the notes and details when the step is written."""
        central = self.rng.choice(self.staff.central)
        choice = pick(RECEIPTED)
        if choice == "void":
            there = Position(RECEIPT_TRANSITIONS[ReceiptChange.VOID].target, position.holder_index)
            step("void", "void", central, there, VOID_REASON)
            return True
        while choice in ("deliver", "reissue"):
            if choice == "deliver":
                step("deliver", "deliver", clerk, position)
                choice = "reissue" if maybe("reissue", 0.003) else None
            else:
                step("reissue", "reissue", central, position, REISSUE_REASON)
                choice = "deliver" if maybe("deliver", 0.7) else None
        return False

    def _refund(self, step: Callable[..., None], position: Position, path: list[int], clerk: int) -> None:
        method = self.rng.choices(METHODS, cum_weights=METHOD_ODDS)[0]
        reference = f"TK{self.rng.randrange(10 ** 8):08d}" if method != "cash" else None
        step("refund", "refund", clerk, target(Action.REFUND, position, path), None,
             {"method": method, "reference": reference})


def _cut(steps: list[_Step], now: int) -> list[_Step]:
    """The steps that have happened by now: a history still under way stops where it is."""
    for index, taken in enumerate(steps):
        if taken.micros > now:
            return steps[:index]
    return steps


def _compress(steps: list[_Step], now: int) -> list[_Step]:
    """A scripted history that would end after now, squeezed into the time between its record and now."""
    start, end = steps[0].micros, steps[-1].micros
    if end <= now:
        return steps
    room = max(now - start - 1000, len(steps))
    previous = start
    for taken in steps[1:]:
        taken.micros = max(start + (taken.micros - start) * room // (end - start), previous + 1)
        previous = taken.micros
    return steps


def _finish_details(steps: list[_Step]) -> None:
    """Mark each confirmation with the version and voided mark its receipt ends with (after the cut)."""
    for index, taken in enumerate(steps):
        if taken.action != "confirm":
            continue
        version, voided = 1, False
        for later in steps[index + 1:]:
            if later.action == "reissue":
                version += 1
            elif later.action == "void":
                voided = True
                break
        taken.extra = (version, voided)


# ---- writing rows -------------------------------------------------------------------------------------------

ACTIONS = ("record", "correct", "submit", "forward", "return", "reject", "confirm", "withdraw", "refund", "deliver",
           "reissue", "void")
PAYMENT_COLUMNS = ("id", "member_id", "grassroots_org_id", "holder_org_id", "state", "amount", "collected_on", "method",
                   "regular_dues_paid", "note", "path", "created_by_id", "created_at", "updated_at", "version")
EVENT_COLUMNS = ("id", "payment_id", "action", "from_state", "to_state", "from_org_id", "to_org_id", "actor_id",
                 "note", "details", "at", "chain", "position", "prev_hash", "hash")
RECEIPT_COLUMNS = ("id", "payment_id", "number", "year", "sequence", "verification_code", "version", "issued_on",
                   "issued_at", "voided")
REFUND_COLUMNS = ("id", "payment_id", "refunded_on", "method", "reference", "recorded_by_id", "created_at")
DELIVERY_COLUMNS = ("id", "receipt_id", "version", "delivered_on", "signed_by", "recorded_by_id", "created_at")


def _insert_target(connection: Connection, table: Table, columns: Sequence[str]) -> str:
    """``table (column, ...)``, quoted for the dialect; a column the model no longer has fails here, by name."""
    quote = connection.dialect.identifier_preparer.quote
    for name in columns:
        table.c[name]  # noqa: B018 - raises KeyError naming the column
    return f"{quote(table.name)} ({', '.join(quote(name) for name in columns)})"


# Rows of database-native values (ids given; dates, timestamps and JSON as text), one table at a time. Writing them
# bypasses the column types, so they are encoded as the types would (``_db_time``, ``date.isoformat``, ``json.dumps``,
# ``str(Decimal)``: SQLite's column affinity then stores them exactly as SQLAlchemy does).
_Batch = list[tuple[Table, Sequence[str], list[tuple[Any, ...]]]]
_WHEN = attrgetter("micros")


class _CopyWriter:
    """PostgreSQL: each batch written with COPY, on a thread of its own while the next batch is made; the server
    parses it and fills the indexes on the other core. Nothing is committed here: the load is one transaction
    (``_foreign_keys_checked_at_the_end``). At most one batch waits, so memory stays bounded; a failure is raised in
    the caller's thread at the next hand-over."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.queue: Queue[_Batch | None] = Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bench-seed-writer", daemon=True)
        self.thread.start()

    def _write(self, batch: _Batch) -> None:
        if not self.connection.in_transaction():
            self.connection.begin()  # so that the connection's commit() commits what COPY wrote
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor:
            for table, columns, rows in batch:
                if rows:
                    with cursor.copy(f"COPY {_insert_target(self.connection, table, columns)} FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is not None:
                continue  # keep taking batches, so that the caller never blocks on a full queue
            try:
                self._write(batch)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, which raises it
                self.error = error

    def submit(self, batch: _Batch) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(batch)

    def __enter__(self) -> _CopyWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        """Wait for the batches handed over (after a failure of the caller's, the thread just stops); raise what
        went wrong on the writer's side."""
        self.queue.put(None)
        self.thread.join()
        if error_type is None and self.error is not None:
            raise self.error


_SqliteBatch = list[tuple[str, list[tuple[Any, ...]]]]


class _SqliteWriter:
    """SQLite: each batch inserted with executemany and committed, by a process of its own while the next batch is
    made. (A thread would not do: executemany takes the GIL back for every row.) Batches of plain tuples pickle
    cheaply; at most two wait, so memory stays bounded. A failure is raised in the caller at the next hand-over.
    A database in memory, or a platform without fork, gets the batches written here, in turn."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        path = connection.engine.url.database
        self.process: BaseProcess | None = None
        forkable = "fork" in multiprocessing.get_all_start_methods()
        if forkable and path and path != ":memory:" and not path.startswith("file:"):
            # fork, not spawn, which would import the caller's main module again; the child opens a connection of
            # its own and never touches the inherited ones (SQLite's locks are not inherited, and it ends by _exit)
            context = multiprocessing.get_context("fork")
            self.batches: ProcessQueue[_SqliteBatch | None] = context.Queue(maxsize=2)
            self.results: ProcessQueue[str | None] = context.Queue()
            self.process = context.Process(target=_write_sqlite_batches, args=(path, self.batches, self.results),
                                           name="bench-seed-writer", daemon=True)
            self.process.start()

    def submit(self, batch: _Batch) -> None:
        statements = [(f"INSERT INTO {_insert_target(self.connection, table, columns)}"
                       f" VALUES ({', '.join('?' * len(columns))})", rows) for table, columns, rows in batch if rows]
        if self.process is None:
            for statement, rows in statements:
                self.connection.exec_driver_sql(statement, rows)
            self.connection.commit()
            return
        self._hand_over(statements)

    def _hand_over(self, item: _SqliteBatch | None) -> None:
        while True:
            self._raise_reported()
            try:
                self.batches.put(item, timeout=1)
                return
            except queue.Full:
                if self.process is not None and not self.process.is_alive():
                    raise RuntimeError("bench-seed: the SQLite writer process died") from None

    def _raise_reported(self) -> None:
        try:
            report = self.results.get_nowait()
        except queue.Empty:
            return
        raise RuntimeError(f"bench-seed: the SQLite writer process failed:\n{report}")

    def __enter__(self) -> _SqliteWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        """Wait until everything handed over is committed; raise what went wrong on the writer's side."""
        if self.process is None:
            return
        try:
            self._hand_over(None)
            report = self.results.get()
        finally:
            self.process.join(timeout=60)
            if self.process.is_alive():
                self.process.terminate()
        if report is not None and error_type is None:
            raise RuntimeError(f"bench-seed: the SQLite writer process failed:\n{report}")


def _write_sqlite_batches(path: str, batches: ProcessQueue[_SqliteBatch | None],
                          results: ProcessQueue[str | None]) -> None:
    """The SQLite writer process: one transaction per batch, until None; then None on ``results`` (or the first
    failure's traceback, after which the batches are only drained, so that the sender never blocks)."""
    database = sqlite3.connect(path, isolation_level=None, timeout=30)
    # as duesflow's engine sets up each connection, but with no fsync and a big page cache while seeding
    for pragma in ("foreign_keys=ON", "busy_timeout=30000", "synchronous=OFF", "cache_size=-1000000"):
        database.execute(f"PRAGMA {pragma}")
    failure: str | None = None
    while (batch := batches.get()) is not None:
        if failure is not None:
            continue
        try:
            database.execute("BEGIN IMMEDIATE")
            for statement, rows in batch:
                database.executemany(statement, rows)
            database.execute("COMMIT")
        except Exception:  # noqa: BLE001 - reported to the parent process, which raises it
            failure = traceback.format_exc()
            if database.in_transaction:
                database.execute("ROLLBACK")
            results.put(failure)
    database.close()
    results.put(None if failure is None else failure)


def _batch_writer(connection: Connection) -> _CopyWriter | _SqliteWriter:
    return _CopyWriter(connection) if connection.dialect.name == "postgresql" else _SqliteWriter(connection)


def _verification_code() -> str:
    """A code as ``services.receipts.new_verification_code`` makes it, eight independent uniform symbols of its
    alphabet from the system's CSPRNG, drawn as one number below 31⁸ (the same distribution) instead of eight times:
    a million receipts would otherwise cost eight million system calls."""
    value, symbols = secrets.randbelow(len(CODE_ALPHABET) ** CODE_LENGTH), []
    for _ in range(CODE_LENGTH):
        value, digit = divmod(value, len(CODE_ALPHABET))
        symbols.append(CODE_ALPHABET[digit])
    return "".join(symbols)


@dataclass
class _Ids:
    event: int = 1
    receipt: int = 1
    refund: int = 1
    delivery: int = 1


class _Recorder:
    """Writes the payments' events in the order they happened, with everything they bring into being (receipts,
    refunds, deliveries), numbering events and receipts as it goes and extending each org's hash chain."""

    def __init__(self, staff: _Staff, ids: _Ids) -> None:
        self.staff = staff
        self.ids = ids
        self.heads: dict[str, tuple[int, str]] = {}  # chain -> (length, newest hash)
        self.payment_counts: dict[str, Counter[str]] = {}  # chain -> state -> payments, as the heads keep them
        self.sequences: dict[int, int] = {}
        self.pending: list[_Step] = []
        self.events: list[tuple[Any, ...]] = []
        self.receipts: list[tuple[Any, ...]] = []
        self.refunds: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)

    def add(self, steps: list[_Step]) -> None:
        """Queue a payment's steps (the caller has tied them to their journey)."""
        self.pending.extend(steps)

    def write_until(self, horizon: int | None) -> None:
        """Write the queued steps that happened before ``horizon`` (all of them for None), oldest first. The caller
        promises that no payment still to be added has a step before it: one sort per chunk, not a heap per step."""
        if horizon is None:
            ready, self.pending = self.pending, []
        else:
            ready = [taken for taken in self.pending if taken.micros < horizon]
            self.pending = [taken for taken in self.pending if taken.micros >= horizon]
        ready.sort(key=_WHEN)  # stable: a payment's own steps have increasing times anyway
        for taken in ready:
            self._write(taken)

    def _write(self, taken: _Step) -> None:
        journey = taken.journey
        assert journey is not None
        at = taken.at = EPOCH + timedelta(microseconds=taken.micros)
        action, details = taken.action, taken.details
        if action == "record":
            text = f'{{"amount": "{details["amount"]}"}}'  # json.dumps' text, written out: a million times
        elif action == "confirm":
            details = taken.details = self._issue_receipt(journey, taken, at)
            text = f'{{"receipt_number": "{details["receipt_number"]}"}}'
        elif action in ("deliver", "reissue", "void"):
            text = self._change_receipt(journey, taken, at)
        elif action == "refund":
            text = self._refund(journey, taken, at)
        else:
            text = json.dumps(details) if details else "{}"
        length, prev = self.heads.get(taken.chain, (0, GENESIS_HASH))
        new_hash = event_hash(prev, taken)
        self.heads[taken.chain] = (length + 1, new_hash)
        count_move(self.payment_counts.setdefault(taken.chain, Counter()), taken.from_state, taken.to_state)
        event_id = self.ids.event
        self.ids.event = event_id + 1
        self.events.append((event_id, taken.payment_id, action, taken.from_state, taken.to_state, taken.from_org_id,
                            taken.to_org_id, taken.actor_id, taken.note, text,
                            at.isoformat(" ", "microseconds")[:-6], taken.chain, length + 1, prev, new_hash))
        self.counts[action] += 1

    def _change_receipt(self, journey: _Journey, taken: _Step, at: datetime) -> str:
        """Deliver, reissue or void the live receipt: the details (and a delivery's note and record) as
        services.delivery.record_delivery and services.receipts.change_receipt write them."""
        assert journey.receipt is not None
        receipt_id, number = journey.receipt
        if taken.action == "reissue":
            journey.receipt_version += 1
        details: dict[str, Any] = {"receipt_number": number, "version": journey.receipt_version}
        if taken.action == "deliver":
            delivered_on, signed_by = _beijing_date(taken.micros), journey.member_name
            taken.note = f"收据 {number} 已于{chinese_date(delivered_on)}由 {signed_by} 签收"
            details |= {"delivered_on": delivered_on.isoformat(), "signed_by": signed_by}
            self.deliveries.append((self.ids.delivery, receipt_id, journey.receipt_version, delivered_on.isoformat(),
                                    signed_by, taken.actor_id, _db_time(at)))
            self.ids.delivery += 1
        elif taken.action == "void":
            journey.receipt = None
        taken.details = details
        return json.dumps(details)

    def _refund(self, journey: _Journey, taken: _Step, at: datetime) -> str:
        """The refund record, note and details as services.refunds.refund_payment writes them."""
        refunded_on = _beijing_date(taken.micros)
        method, reference = taken.details["method"], taken.details["reference"]
        taken.note = f"已于{chinese_date(refunded_on)}以{REFUND_METHOD_NAMES[method]}退还党员"
        if reference:
            taken.note += f"（凭证号 {reference}）"
        taken.details = {"refunded_on": refunded_on.isoformat(), "method": method, "reference": reference}
        self.refunds.append((self.ids.refund, journey.payment_id, refunded_on.isoformat(), method, reference,
                             taken.actor_id, _db_time(at)))
        self.ids.refund += 1
        return json.dumps(taken.details)

    def _issue_receipt(self, journey: _Journey, taken: _Step, at: datetime) -> dict[str, Any]:
        """The next number of the Beijing year of ``at``, as services.receipts.issue_receipt takes it."""
        issued_on = _beijing_date(taken.micros)
        sequence = self.sequences[issued_on.year] = self.sequences.get(issued_on.year, 0) + 1
        number = receipt_number(issued_on.year, sequence)
        assert taken.extra is not None
        version, voided = taken.extra
        self.receipts.append((self.ids.receipt, journey.payment_id, number, issued_on.year, sequence,
                              _verification_code(), version, issued_on.isoformat(), _db_time(at), voided))
        journey.receipt, journey.receipt_version = (self.ids.receipt, number), 1
        self.ids.receipt += 1
        return {"receipt_number": number}

    def take(self) -> _Batch:
        """The rows the steps written so far brought into being, in an order their foreign keys allow."""
        batch: _Batch = [(Event.__table__, EVENT_COLUMNS, self.events), (Receipt.__table__, RECEIPT_COLUMNS,
                         self.receipts), (Refund.__table__, REFUND_COLUMNS, self.refunds),
                         (ReceiptDelivery.__table__, DELIVERY_COLUMNS, self.deliveries)]
        self.events, self.receipts, self.refunds, self.deliveries = [], [], [], []
        return batch


# ---- the command's work -------------------------------------------------------------------------------------


class BenchRefused(Exception):
    """The database is not one bench-seed fills: it already has payments or a bench branch."""


@dataclass(frozen=True)
class BenchLogin:
    username: str
    role: str
    where: str


@dataclass
class BenchReport:
    """What bench-seed made, for the command to print."""

    payments: int = 0
    states: Counter[str] = field(default_factory=Counter)
    orgs: int = 0
    grassroots: int = 0
    depth: int = 0
    users: int = 0
    members: int = 0
    events: int = 0
    receipts: dict[int, int] = field(default_factory=dict)
    refunds: int = 0
    deliveries: int = 0
    remittances: int = 0
    logins: list[BenchLogin] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def default_member_count(payments: int, grassroots: int) -> int:
    """About one member for every 20 payments, at least three per grassroots org, at most 60,000 by default."""
    return min(max(payments // 20, 3 * grassroots), MAX_MEMBERS_BY_DEFAULT)


def _next_id(column: InstrumentedAttribute[int]) -> int:
    return (db.session.scalar(select(func.max(column))) or 0) + 1


def _ensure_schema() -> None:
    """Apply the migrations to an empty or migrated database (as init-db does); a schema made by create_all (the
    tests) is left as it is."""
    tables = set(inspect(db.engine).get_table_names())
    if "payments" not in tables or "alembic_version" in tables:
        upgrade(directory=current_app.extensions["migrate"].directory)


def _refuse_if_used() -> None:
    if db.session.scalar(select(func.count()).select_from(Payment)):
        raise BenchRefused("数据库中已有款项。bench-seed 只填充空库（init-db、seed-orgs 之后），不在已有数据上追加："
                           "请换一个新的数据库。")
    if db.session.scalar(select(Org.id).where(Org.code.startswith(CODE_PREFIX)).limit(1)):
        raise BenchRefused("数据库中已有 bench-seed 的组织（上次运行可能中断）。请换一个新的数据库。")
    if db.session.scalar(select(func.max(ReceiptSequence.last_number))):
        raise BenchRefused("数据库中已有收据编号。请换一个新的数据库。")


def _channels() -> dict[str, Org]:
    """The seeded channels the bench branch hangs under; refused when one of its orgs' names is already taken."""
    channels = {org.code: org for org in db.session.scalars(select(Org).where(Org.code.in_([*PROVINCES, "sasac"])))}
    names = [f"中共{city}委组织部" for cities in PROVINCES.values() for city in cities]
    names += [f"中共{enterprise}委员会" for enterprise in ENTERPRISES]
    clashes = db.session.scalars(select(Org.name).where(
        Org.parent_id.in_([org.id for org in channels.values()]), Org.name.in_(names))).all()
    if clashes:
        raise BenchRefused(f"渠道下已有同名组织（{'、'.join(clashes)}）。请换一个新的数据库。")
    return cast(dict[str, Org], channels)


MAX_SPAN_DAYS = 15 * 365  # payments collected before 2008 are refused (services.payments.EARLIEST_COLLECTION)


def span_days(payments: int, *, years: int = 3, per_year: int | None = None) -> int:
    """The days the payments are spread over: ``years``, or as many as ``per_year`` payments a year need, so that
    a bigger database is more years of the same work rather than more work at once (the same payments in flight,
    the same inboxes). ValueError beyond fifteen years."""
    days = years * 365 if per_year is None else max(1, ceil(payments * 365 / per_year))
    if days > MAX_SPAN_DAYS:
        raise ValueError(f"{payments} payments at {per_year} a year span more than fifteen years")
    return days


def seed_bench(payments: int, *, seed: int = 1, years: int = 3, per_year: int | None = None,
               members: int | None = None,
               password: str = DEFAULT_PASSWORD, chunk: int = 20_000,
               progress: Callable[[int], None] | None = None,
               phase: Callable[[str], None] | None = None) -> BenchReport:
    """Fill the database with ``payments`` payments and the orgs, users and members they need; commits as it goes.

    ``progress`` is told how many payments were written after each chunk, ``phase`` what is being done next.
    Raises ``BenchRefused`` for a database that already has payments or a bench branch, ``ValidationFailed`` for a
    password too short to log in with.
    """
    auth.check_password_rules(password)
    say = phase or (lambda _text: None)
    report = BenchReport()
    laps = [time.perf_counter()]

    def lap(name: str) -> None:
        laps.append(time.perf_counter())
        report.seconds[name] = laps[-1] - laps[-2]

    _ensure_schema()
    seed_orgs()
    db.session.commit()
    _refuse_if_used()
    rng = random.Random(seed)
    now = utcnow()
    now_us = _micros(now)
    start_us = now_us - span_days(payments, years=years, per_year=per_year) * DAY

    say("组织树与账户")
    tree = _build_tree(rng, _channels(), _next_id(Org.id), now)
    db.session.execute(insert(Org), tree.rows)
    password_hash = auth.hash_password(password)  # once: argon2 is slow on purpose
    staff, logins = _create_staff(tree, password_hash, now)
    db.session.commit()
    lap("orgs and users")

    say("党员")
    member_count = members if members is not None else default_member_count(payments, len(tree.grassroots))
    people = _create_members(rng, tree, member_count, start_us)
    logins += _create_member_accounts(people, password_hash, now)
    report.users = db.session.scalar(select(func.count()).select_from(User).where(User.username.like("bench-%"))) or 0
    db.session.commit()
    db.session.close()  # the session holds no transaction while the bulk connection writes
    lap("members")

    say("款项与事件")
    with db.engine.connect() as connection:
        _fast_writes(connection, on=True)
        try:
            with _foreign_keys_checked_at_the_end(connection):
                recorder = _write_payments(connection, rng, payments, tree, staff, people, (start_us, now_us),
                                           chunk, progress, report)
                report.remittances = _write_remittances(connection, rng, staff, (start_us, now_us),
                                                        max(2, payments // 2000))
                _finish(connection, recorder)
            connection.commit()
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("ANALYZE")  # fresh planner statistics for whoever benchmarks next
                connection.commit()
        finally:
            _fast_writes(connection, on=False)
    lap("payments")

    report.payments, report.members = payments, len(people)
    report.orgs, report.grassroots = len(tree.rows), len(tree.grassroots)
    report.depth = max(len(path) for path in tree.paths.values())
    report.events = sum(recorder.counts.values())
    report.receipts = dict(sorted(recorder.sequences.items()))
    report.refunds, report.deliveries = recorder.counts["refund"], recorder.counts["deliver"]
    report.logins = logins
    return report


def _create_staff(tree: _Tree, password_hash: str, now: datetime) -> tuple[_Staff, list[BenchLogin]]:
    """One reviewer per staffed org, one clerk per grassroots org, three central users and an admin; with a few of
    them (down one deep path) named for the command to print."""
    central = db.session.scalars(select(Org).where(Org.kind == OrgKind.CENTRAL.value)).one()
    first_id = _next_id(User.id)
    rows: list[dict[str, Any]] = []

    def account(username: str, role: Role, org_id: int | None) -> int:
        rows.append({"id": first_id + len(rows), "username": username, "username_folded": fold_username(username),
                     "password_hash": password_hash,
                     "role": role.value, "org_id": org_id, "member_id": None, "active": True, "auth_version": 1,
                     "created_at": now})
        return int(rows[-1]["id"])

    account("bench-admin", Role.ADMIN, None)
    central_ids = tuple(account(name, Role.CENTRAL, central.id)
                        for name in ("bench-central", "bench-central-2", "bench-central-3"))
    reviewers = {org_id: account(reviewer_username(tree.codes[org_id]), Role.REVIEWER, org_id)
                 for org_id in tree.staffed}
    clerks = {org_id: account(clerk_username(tree.codes[org_id]), Role.CLERK, org_id) for org_id in tree.grassroots}
    db.session.execute(insert(User), rows)

    deepest = next(org_id for org_id in tree.grassroots if len(tree.paths[org_id]) == 6)
    logins = [BenchLogin("bench-admin", "admin", "—"), BenchLogin("bench-central", "central", central.name),
              BenchLogin("bench-central-2", "central", central.name)]
    logins += [BenchLogin(reviewer_username(tree.codes[org_id]), "reviewer", tree.names[org_id])
               for org_id in reversed(tree.paths[deepest][1:-1])]
    logins.append(BenchLogin(clerk_username(tree.codes[deepest]), "clerk", tree.names[deepest]))
    enterprise = next(org_id for org_id in tree.grassroots if tree.codes[org_id].startswith(f"{CODE_PREFIX}sasac"))
    logins.append(BenchLogin(clerk_username(tree.codes[enterprise]), "clerk", tree.names[enterprise]))
    return _Staff(clerks, reviewers, central_ids), logins


@dataclass(frozen=True, slots=True)
class _MemberRef:
    id: int
    org_id: int
    name: str


def _create_members(rng: random.Random, tree: _Tree, count: int, start_us: int) -> list[_MemberRef]:
    """Members through the ORM (``Member(...)``), in chunks; committee sizes vary, a few big ones and many small."""
    maker = _MemberMaker(rng, _beijing_date(start_us))
    weights = [rng.lognormvariate(0, 0.8) for _ in tree.grassroots]
    # every grassroots org gets a member when there are enough of them; the others go by committee size
    orgs = tree.grassroots[:count] + rng.choices(tree.grassroots, weights, k=max(0, count - len(tree.grassroots)))
    rng.shuffle(orgs)
    first_id = _next_id(Member.id)
    created: list[_MemberRef] = []
    for offset in range(0, count, 5000):
        batch = []
        for index in range(offset, min(count, offset + 5000)):
            registered = _in_office_hours(start_us - int(rng.random() * 365 * DAY), rng)
            member = maker.make(first_id + index, orgs[index], tree.places[orgs[index]], _moment(registered))
            batch.append(member)
            created.append(_MemberRef(member.id, member.org_id, member.name))
        db.session.add_all(batch)
        db.session.commit()
        db.session.expunge_all()
    return created


def _create_member_accounts(people: list[_MemberRef], password_hash: str, now: datetime) -> list[BenchLogin]:
    """Accounts for the first five members, who (by the way payments pick members) pay most often."""
    first_id = _next_id(User.id)
    rows = [{"id": first_id + index, "username": f"bench-member-{index + 1}",
             "username_folded": f"bench-member-{index + 1}", "password_hash": password_hash,
             "role": Role.MEMBER.value, "org_id": None, "member_id": person.id, "active": True, "auth_version": 1,
             "created_at": now} for index, person in enumerate(people[:5])]
    if rows:
        db.session.execute(insert(User), rows)
    return [BenchLogin(row["username"], "member", person.name) for row, person in zip(rows, people, strict=False)]


BULK_TABLES = (Payment, Event, Receipt, Refund, ReceiptDelivery, DirectRemittance)


@contextmanager
def _foreign_keys_checked_at_the_end(connection: Connection) -> Iterator[None]:
    """PostgreSQL: drop the foreign keys of the bulk-loaded tables and add them back, exactly as they were, at the
    end of the same transaction (as pg_restore does): adding one checks every row in a single pass, where checking
    row by row costs a third of the load. DDL is transactional there, so nobody ever sees the tables without their
    keys, and a run that fails leaves nothing behind. SQLite checks as it goes (cheaply) and commits per chunk."""
    if connection.dialect.name != "postgresql":
        yield
        return
    keys = connection.execute(text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY conrelid, conname"),
        {"tables": [model.__table__.name for model in BULK_TABLES]}).all()
    quote = connection.dialect.identifier_preparer.quote
    for table, name, _definition in keys:
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
    yield
    for table, name, definition in keys:
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}")


def _fast_writes(connection: Connection, *, on: bool) -> None:
    """SQLite: no fsync and a big page cache while seeding (a crash means starting over anyway); PostgreSQL:
    commits that do not wait for the WAL flush. Set outside a transaction (SQLite requires it), restored after;
    whatever is left uncommitted when it is switched off (a failure) is rolled back."""
    if connection.in_transaction():
        connection.rollback()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA synchronous=OFF" if on else "PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA cache_size=-1000000" if on else "PRAGMA cache_size=-2000")
    else:
        connection.exec_driver_sql("SET synchronous_commit = off" if on else "RESET synchronous_commit")
        connection.commit()


def _particulars(steps: list[_Step], collected_on: date) -> tuple[str, date]:
    """The amount and collection date a payment has after its steps: the record's, then its corrections'."""
    amount = ""
    for taken in steps:
        if "amount" in taken.details:
            amount = taken.details["amount"]
        new = taken.details.get("new")
        if new and "collected_on" in new:
            collected_on = date.fromisoformat(new["collected_on"])
    return amount, collected_on


def _write_payments(connection: Connection, rng: random.Random, count: int, tree: _Tree, staff: _Staff,
                    people: list[_MemberRef], span: tuple[int, int], chunk: int,
                    progress: Callable[[int], None] | None, report: BenchReport) -> _Recorder:
    """Create the payments in the order they were recorded, evenly over the office hours of ``span``; their
    events go through the recorder, which writes them in the order they happened."""
    start_us, now_us = span
    recorder = _Recorder(staff, _Ids())
    simulator = _Simulator(rng, staff)
    clock = _OfficeClock(start_us, now_us - MINUTE)  # the newest record and its event both lie before now
    deep = [index for index, person in enumerate(people) if len(tree.paths[person.org_id]) >= 6]
    scripted_from = count - len(COVERAGE_SCRIPTS)
    amounts = [Decimal(amount).quantize(Decimal("0.01")) for amount in AMOUNTS]
    paths_text = {org_id: json.dumps(path) for org_id, path in tree.paths.items()}
    rows: list[tuple[Any, ...]] = []
    if progress is not None:
        progress(0)
    with _batch_writer(connection) as background:
        for index in range(count):
            payment_id = index + 1
            slot = (index * clock.length) // count  # each payment gets its own stretch of office time
            created = clock.moment(slot + int(rng.random() * clock.length / count))
            script = list(COVERAGE_SCRIPTS[index - scripted_from]) if index >= scripted_from else None
            if script is not None:  # the coverage scripts go up all four levels of review
                person = people[rng.choice(deep)]
            elif index % 200 == 0:  # the five member accounts pay regularly (member views have pages to show)
                person = people[index // 200 % min(5, len(people))]
            else:  # a few members pay often, most now and then
                person = people[int(len(people) * rng.random() ** 1.3)]
            path = tree.paths[person.org_id]
            amount = rng.choices(amounts, cum_weights=AMOUNT_ODDS)[0]
            if rng.random() < 0.05:
                amount += Decimal(rng.randrange(1, 100_000)).scaleb(-2)
            collected_on = max(_beijing_date(created) - timedelta(days=rng.choice((0, 0, 0, 0, 0, 1, 1, 2, 3, 7))),
                               EARLIEST_COLLECTION)
            record_at = created + 2000 + int(rng.random() * 20_000)  # the event follows the row's insert
            steps = simulator.history(payment_id, path, record_at, amount, collected_on, script)
            steps = _cut(steps, now_us) if script is None else _compress(steps, now_us)
            _finish_details(steps)
            journey = _Journey(payment_id, person.name)
            chain = chain_key(path[0])
            submitted = False
            for taken in steps:
                taken.journey, taken.chain = journey, chain
                submitted = submitted or taken.action == "submit"
            final = steps[-1]
            final_amount, final_collected_on = _particulars(steps, collected_on)
            updated = created if len(steps) == 1 else max(created, final.micros - 1000 - int(rng.random() * 3000))
            rows.append((payment_id, person.id, path[0], final.to_org_id, final.to_state, final_amount,
                         final_collected_on.isoformat(), rng.choices(METHODS, cum_weights=METHOD_ODDS)[0], True,
                         rng.choice(PAYMENT_NOTES) if rng.random() < 0.08 else None,
                         paths_text[path[0]] if submitted else None, staff.clerks[path[0]],
                         _db_time(_moment(created)), _db_time(_moment(updated)), len(steps)))
            report.states[final.to_state] += 1
            recorder.add(steps)
            if len(rows) >= chunk or index == count - 1:
                # every later payment is recorded after the start of the next one's stretch of office time
                later = clock.moment(((index + 1) * clock.length) // count) if index + 1 < count else None
                recorder.write_until(later)
                # the payments first: the other rows refer to them
                background.submit([(Payment.__table__, PAYMENT_COLUMNS, rows), *recorder.take()])
                if progress is not None:
                    progress(len(rows))
                rows = []
    return recorder


def _write_remittances(connection: Connection, rng: random.Random, staff: _Staff, span: tuple[int, int],
                       count: int) -> int:
    """A few direct remittances that central refused, most of them since sent back (SPEC §6, §9); few enough for a
    plain insert through the column types."""
    start_us, now_us = span
    first_id = (connection.scalar(select(func.max(DirectRemittance.id))) or 0) + 1
    rows = []
    for index in range(count):
        received = _in_office_hours(start_us + int(rng.random() * (now_us - start_us - 40 * DAY)), rng)
        returned = _in_office_hours(received + 5 * DAY + int(rng.random() * 25 * DAY), rng)
        officer = rng.choice(staff.central)
        sent_back = returned < now_us and rng.random() < 0.7
        rows.append({
            "id": first_id + index, "remitter_name": _member_name(rng), "amount": Decimal(rng.choice(AMOUNTS)),
            "received_on": _beijing_date(received), "reference": f"邮汇{rng.randrange(10 ** 10):010d}", "note": None,
            "state": "returned" if sent_back else "refused", "recorded_by_id": officer,
            "created_at": _moment(received), "returned_on": _beijing_date(returned) if sent_back else None,
            "return_reference": f"退汇{rng.randrange(10 ** 8):08d}" if sent_back else None,
            "returned_by_id": officer if sent_back else None, "returned_at": _moment(returned) if sent_back else None,
        })
    connection.execute(insert(DirectRemittance), rows)
    return count


def _finish(connection: Connection, recorder: _Recorder) -> None:
    """The heads of the hash chains and the last receipt number of each year, where the services keep them; on
    PostgreSQL the id sequences moved past the ids given here."""
    dialect = connection.dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if recorder.heads:  # bench-seed only fills a database without payments, so no chain exists yet
        connection.execute(insert(AuditHead), [
            {"chain": chain, "length": length, "last_hash": last_hash,
             **{column.name: recorder.payment_counts[chain][state] for state, column in PAYMENT_COUNTS.items()}}
            for chain, (length, last_hash) in recorder.heads.items()])
    for year, last in recorder.sequences.items():
        sequence = upsert(ReceiptSequence).values(year=year, last_number=last)
        connection.execute(sequence.on_conflict_do_update(
            index_elements=["year"], set_={"last_number": sequence.excluded.last_number}))
    if dialect == "postgresql":
        for model in (Org, User, Member, Payment, Event, Receipt, Refund, ReceiptDelivery, DirectRemittance):
            table = model.__table__.name
            connection.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                f" WHERE EXISTS (SELECT 1 FROM {table})"))


@click.command("bench-seed")
@click.option("--payments", required=True, type=click.IntRange(min=1), help="how many payments to create")
@click.option("--seed", "random_seed", type=int, default=1, show_default=True,
              help="random seed: the same seed gives the same tree, members and histories")
@click.option("--years", type=click.IntRange(1, 15), default=3, show_default=True,
              help="the payments are spread evenly over this many years up to now (office hours, Beijing time)")
@click.option("--per-year", type=click.IntRange(min=1), default=None,
              help="spread the payments at this many a year instead (overrides --years): databases of any size then "
                   "hold the same work in flight, as more years of the same service would")
@click.option("--members", type=click.IntRange(min=1), default=None,
              help="members to register  [default: payments/20, at least 3 per grassroots org, at most 60,000]")
@click.option("--password", default="bench-password", show_default=True, help="password of every bench account")
@click.option("--chunk", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="payments written per batch (SQLite: one commit each; PostgreSQL loads in one transaction)")
@with_appcontext
def bench_seed(payments: int, random_seed: int, years: int, per_year: int | None, members: int | None, password: str,
               chunk: int) -> None:
    """Fill an empty database with PAYMENTS realistic payments for benchmarks (issue 7).

    Applies the migrations and loads the channel tree when needed (init-db, seed-orgs), then adds a deep branch
    below five provinces and the SASAC party committee (grassroots six levels down from central), one account per
    org, members, and payments in every state with their whole event history, receipts, refunds and deliveries;
    verify-audit passes afterwards.

    Not idempotent, on purpose: a database that already has payments or a bench branch is refused (exit 1), since
    back-dated bench payments cannot join an existing audit chain and receipt sequence in time order. Seed a fresh
    database each time; if a run is interrupted, drop the database and start again.
    """

    try:
        span_days(payments, years=years, per_year=per_year)
    except ValueError as too_long:
        raise click.BadParameter(str(too_long), param_hint="--per-year") from None

    started = time.perf_counter()
    with ExitStack() as stack:
        updates: list[Callable[[int], None]] = []

        def progress(written: int) -> None:
            if not updates:  # opened when the payments begin, below the phases already printed
                updates.append(stack.enter_context(click.progressbar(
                    length=payments, label="款项", show_pos=True, show_percent=True, show_eta=True,
                    file=click.get_text_stream("stderr"))).update)
            updates[0](written)

        try:
            report = seed_bench(payments, seed=random_seed, years=years, per_year=per_year, members=members,
                                password=password, chunk=chunk, progress=progress,
                                phase=lambda text: click.echo(f"{text}……", err=True))
        except BenchRefused as refused:
            db.session.rollback()
            raise click.ClickException(str(refused)) from None
        except DomainError as error:
            db.session.rollback()
            raise click.ClickException(error.message) from None
    laps = "，".join(f"{name} {seconds:.1f} 秒" for name, seconds in report.seconds.items())
    click.echo(f"已生成 {report.payments} 笔款项、{report.events} 个事件，用时 {time.perf_counter() - started:.1f} 秒"
               f"（{laps}）。")
    click.echo("各状态：" + "，".join(f"{state} {report.states[state]}" for state in State))
    click.echo(f"组织 {report.orgs} 个（基层党委 {report.grassroots} 个，最深处距中央 {report.depth - 1} 级），"
               f"账户 {report.users} 个，党员 {report.members} 名，直接汇款 {report.remittances} 笔。")
    click.echo("收据：" + "，".join(f"{year} 年 {count} 张" for year, count in report.receipts.items())
               + f"；退还 {report.refunds} 笔，签收 {report.deliveries} 次。")
    click.echo(f"基准测试账户（密码均为 {password}）：")
    for login in report.logins:
        click.echo(f"  {login.username:<28} {login.role:<9} {login.where}")
    click.echo("  另：每个 bench 组织各有一个账户——审核员 bench-r-<代码>，基层经办人 bench-c-<代码>"
               "（<代码> 为组织 code 去掉 bench. 前缀，省级渠道即其 code，如 bench-r-jilin）。")


if __name__ == "__main__":
    from flask.cli import ScriptInfo

    from duesflow import create_app

    bench_seed.main(obj=ScriptInfo(create_app=create_app))
