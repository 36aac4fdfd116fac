"""Demo data: the Jilin → Siping → Tiedong branch, two street committees, users of every role, and payments
in every state, with a transfer batch, a refund and a delivered receipt. Built through the same services the API
uses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from .extensions import db
from .identity import resident_id_check_character
from .models import Member, Org, Payment, User
from .services import members, orgs, users
from .services.delivery import DeliveryInput, record_delivery
from .services.payments import PaymentInput, act, record_payment
from .services.refunds import RefundInput, refund_payment
from .services.transfers import TransferInput, create_transfer
from .timeutil import beijing_today
from .workflow import Action, OrgKind

BRANCH = (
    ("中共四平市委组织部", OrgKind.INTERMEDIATE),
    ("中共四平市铁东区委组织部", OrgKind.INTERMEDIATE),
)
STREETS = ("中共四平市铁东区北门街道工作委员会", "中共四平市铁东区解放街道工作委员会")

MEMBERS = (
    ("张建国", "male", "19680312", "四平市铁东区北门街道办事处", "主任"),
    ("李秀兰", "female", "19720521", "四平市第一中学", "教师"),
    ("欧阳明华", "male", "19590830", "四平市铁东区人民医院", "退休医生"),
    ("王淑珍", "female", "19810105", "吉林省四平市供电公司", "工程师"),
    ("刘志强", "male", "19750918", "四平市铁东区北门社区", "社区书记"),
    ("陈桂芳", "female", "19660227", "四平市铁东区北门街道办事处", "退休干部"),
    ("赵德胜", "male", "19540611", "四平市机车车辆厂", "退休工人"),
    ("孙丽娟", "female", "19880714", "四平市铁东区税务局", "科员"),
    ("周海峰", "male", "19790403", "四平市铁东区解放街道", "干部"),
)


# The people behind the demo logins (SPEC §10: pages show names, the username is only for logging in).
DISPLAY_NAMES = {
    "demo-admin": "郑晓明", "demo-clerk": "王丽华", "demo-clerk-jiefang": "陈志刚", "demo-tiedong": "刘卫东",
    "demo-siping": "杨秀梅", "demo-jilin": "高建平", "demo-central": "李文博", "demo-member": "张建国",
}


def _id_number(birth: str, serial: int) -> str:
    first17 = f"220302{birth}{serial:03d}"
    return first17 + resident_id_check_character(first17)


def load_demo(password: str) -> list[tuple[str, str, str]]:
    """Create the demo branch once; return (username, role, where) for every demo login."""
    central, _ = orgs.seed_orgs()
    jilin = db.session.scalars(select(Org).where(Org.code == "jilin")).one()
    existing = db.session.scalars(select(Org).where(Org.name == STREETS[0])).one_or_none()
    if existing is None:
        _build(central, jilin, password)
    return [
        (user.username, user.role, user.org.name if user.org else (user.member.name if user.member else "—"))
        for user in db.session.scalars(select(User).where(User.username.like("demo-%")).order_by(User.id))
    ]


def _build(central: Org, jilin: Org, password: str) -> None:
    parent = jilin
    chain = []
    for name, kind in BRANCH:
        parent = orgs.create_org(name, kind, parent.id)
        chain.append(parent)
    siping, tiedong = chain
    beimen = orgs.create_org(STREETS[0], OrgKind.GRASSROOTS, tiedong.id)
    jiefang = orgs.create_org(STREETS[1], OrgKind.GRASSROOTS, tiedong.id)

    def account(username: str, role: str, org: Org | None = None, member_id: int | None = None) -> User:
        return users.create_user(None, {"username": username, "password": password, "role": role,
                                        "display_name": DISPLAY_NAMES[username],
                                        "org_id": org.id if org else None, "member_id": member_id})

    account("demo-admin", "admin")
    clerk = account("demo-clerk", "clerk", beimen)
    account("demo-clerk-jiefang", "clerk", jiefang)
    tiedong_reviewer = account("demo-tiedong", "reviewer", tiedong)
    siping_reviewer = account("demo-siping", "reviewer", siping)
    jilin_reviewer = account("demo-jilin", "reviewer", jilin)
    officer = account("demo-central", "central", central)

    people = []
    for serial, (name, gender, birth, unit, position) in enumerate(MEMBERS, start=11):
        people.append(members.register_member(clerk, {
            "name": name, "gender": gender, "id_number": _id_number(birth, serial * 2 + (gender == "male")),
            "work_unit": unit, "position": position, "phone": f"1384343{serial:04d}",
        }))
    account("demo-member", "member", member_id=people[0].id)

    today = beijing_today()
    up_to_central = [(Action.SUBMIT, clerk), (Action.FORWARD, tiedong_reviewer), (Action.FORWARD, siping_reviewer),
                     (Action.FORWARD, jilin_reviewer)]
    plans: list[tuple[int, str, list[tuple[Action, User, str | None]]]] = [
        (0, "12345.67", [(a, u, None) for a, u in up_to_central] + [(Action.CONFIRM, officer, None)]),
        (1, "1000", []),
        (2, "5000", [(Action.SUBMIT, clerk, None)]),
        (3, "2000.50", [(a, u, None) for a, u in up_to_central[:2]]),
        (4, "3000", [(a, u, None) for a, u in up_to_central[:3]]),
        (5, "10000", [(a, u, None) for a, u in up_to_central]),
        (6, "1500", [(Action.SUBMIT, clerk, None),
                     (Action.RETURN, tiedong_reviewer, "代收日期与登记册不一致，请核对。")]),
        (7, "8000", [(a, u, None) for a, u in up_to_central[:2]]
         + [(Action.REJECT, siping_reviewer, "经核实该党员未按规定交纳党费，不符合自愿多交条件。")]),
        (8, "1200", [(Action.WITHDRAW, clerk, "党员本人要求撤回，改日再交。")]),
    ]
    payments = []
    for days_ago, (index, amount, steps) in enumerate(plans, start=1):
        payment = record_payment(clerk, PaymentInput(
            member_id=people[index].id, amount=Decimal(amount).quantize(Decimal("0.01")),
            collected_on=today - timedelta(days=days_ago), method="bank_transfer" if index % 2 else "cash",
            regular_dues_paid=True, note=None,
        ))
        for action, actor, reason in steps:
            act(payment, action, actor, reason=reason)
        payments.append(payment)
    _operations(people, payments[0], clerk, tiedong_reviewer)


def _operations(people: list[Member], receipted: Payment, clerk: User, tiedong_reviewer: User) -> None:
    """SPEC §9 in the demo: a transfer batch whose money 铁东 has yet to confirm, a refunded payment, and the
    first receipt signed for by its member."""
    today = beijing_today()

    def collected(index: int, amount: str, days_ago: int) -> Payment:
        return record_payment(clerk, PaymentInput(member_id=people[index].id, amount=Decimal(amount),
                                                  collected_on=today - timedelta(days=days_ago), method="cash",
                                                  regular_dues_paid=True))

    batch = [collected(3, "1000.00", 1), collected(4, "2600.00", 1)]
    create_transfer(clerk, TransferInput([payment.id for payment in batch], "工行四平分行 0031-2026-118"))
    refunded = collected(5, "1000.00", 12)
    act(refunded, Action.SUBMIT, clerk)
    act(refunded, Action.REJECT, tiedong_reviewer, reason="重复登记：该党员同日已交纳一笔。")
    refund_payment(clerk, refunded, RefundInput(refunded_on=today, method="cash"))
    record_delivery(clerk, receipted, DeliveryInput(delivered_on=today, signed_by=receipted.member.name))
