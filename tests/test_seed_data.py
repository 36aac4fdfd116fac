"""The shipped channel list: complete, unique and plausibly named."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from duesflow.identity import PROVINCE_CODES

CHANNELS_FILE = Path(__file__).resolve().parent.parent / "duesflow" / "seed" / "channels.json"

PROVINCIAL_UNITS = [
    "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "重庆",
    "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆",
]
CENTRAL_CHANNEL_MARKERS = [
    "中央和国家机关", "国有资产监督管理委员会", "中央金融工作委员会", "铁路", "民用航空", "军委",
]


@pytest.fixture(scope="module")
def seed() -> dict:
    return json.loads(CHANNELS_FILE.read_text(encoding="utf-8"))


def by_group(seed: dict, group: str) -> list[dict]:
    return [channel for channel in seed["channels"] if channel["group"] == group]


def test_the_file_names_its_source_and_central(seed):
    assert len(seed["source"]) > 200
    assert seed["central"]["name"] == "中共中央组织部"


def test_all_31_provincial_units_are_channels(seed):
    provinces = by_group(seed, "province")
    assert len(provinces) == 31
    for unit in PROVINCIAL_UNITS:
        assert sum(unit in channel["name"] for channel in provinces) == 1, unit


def test_province_region_codes_are_the_gb2260_ones(seed):
    codes = [channel["region_code"] for channel in by_group(seed, "province")]
    assert sorted(codes) == sorted(PROVINCE_CODES - {"71", "81", "82", "83"})


def test_the_corps_is_a_channel(seed):
    corps = by_group(seed, "corps")
    assert len(corps) == 1
    assert "新疆生产建设兵团" in corps[0]["name"]


def test_the_central_channels_are_there(seed):
    central = by_group(seed, "central")
    for marker in CENTRAL_CHANNEL_MARKERS:
        assert sum(marker in channel["name"] for channel in central) == 1, marker


def test_only_known_groups(seed):
    assert {channel["group"] for channel in seed["channels"]} == {"province", "corps", "central"}


def test_names_and_codes_are_unique(seed):
    names = [seed["central"]["name"]] + [channel["name"] for channel in seed["channels"]]
    codes = [seed["central"]["code"]] + [channel["code"] for channel in seed["channels"]]
    assert [name for name, count in Counter(names).items() if count > 1] == []
    assert [code for code, count in Counter(codes).items() if count > 1] == []


def test_codes_are_stable_ascii_slugs(seed):
    for channel in seed["channels"]:
        assert re.fullmatch(r"[a-z][a-z0-9_]{1,59}", channel["code"]), channel["code"]


def test_every_name_is_a_plausible_party_body(seed):
    endings = ("组织部", "工作委员会", "委员会", "工委", "党委", "党组", "政治工作部")
    for channel in seed["channels"]:
        name = channel["name"]
        assert name.endswith(endings), name
        assert len(name) <= 100, name  # fits Org.name
        assert name == name.strip() and " " not in name, name
    for channel in by_group(seed, "province") + by_group(seed, "corps"):
        assert channel["name"].startswith("中共") and channel["name"].endswith("组织部")


def test_autonomous_regions_use_the_full_committee_form(seed):
    regions = [c for c in by_group(seed, "province") if "自治区" in c["name"]]
    assert len(regions) == 5
    for channel in regions:
        assert channel["name"].endswith("自治区委员会组织部"), channel["name"]
