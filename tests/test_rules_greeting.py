"""Greeting fit: the scene's lexicon (every scene of the tianji recipe and of the seed's lists),
who the text addresses, and honorifics by relation. ≥5 flagged and ≥5 clean each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agents.rules import RuleContext, check_text
from agents.rules.scenes import SCENE_MARKERS, SCENE_WORDS, scene_of
from agents.schemas import ReasonCode

ROOT = Path(__file__).resolve().parents[1]


def codes(rule: str, text: str, **kw) -> list[ReasonCode]:
    return [h.code for h in check_text(text, RuleContext(kind="greeting", enabled=frozenset({rule}), **kw))]


def test_every_recipe_scene_has_a_lexicon():
    recipe = yaml.safe_load((ROOT / "recipes" / "tianji" / "tianji.yaml").read_text(encoding="utf-8"))
    scenes = {s.strip() for s in recipe["scenes"]}
    reference = ROOT.parent.parent / "shared" / "reference" / "tianji" / "tianji_wishes_facts.json"
    if reference.exists():  # the seed's v1 and v2 lists, 发财 as v2 renamed it
        facts = json.loads(reference.read_text(encoding="utf-8"))
        scenes |= {s.strip() for s in facts["scenes_v1"] + facts["scenes_v2_active"]}
    missing = sorted(s for s in scenes if scene_of(s) is None)
    assert missing == []
    for scene in scenes:
        key = scene_of(scene)
        assert SCENE_MARKERS[key] and set(SCENE_MARKERS[key]) <= set(SCENE_WORDS[key]), scene


SCENE_WRONG = [
    ("奶奶，中秋节快乐！月圆人团圆，愿您身体健康。", "生日"),
    ("爷爷，新年快乐！祝您新春大吉，身体健康。", "重阳节"),
    ("哥，端午安康！粽子记得多吃几个。", "春节"),
    ("同事，生日快乐！祝你新的一岁心想事成。", "工作升职"),
    ("外婆，祝您早日康复，身体棒棒！", "腊八节"),
    ("李总，生日快乐！今年的月亮格外圆，月饼少吃甜的。", "生日"),  # own word in the opening, 中秋 in the body
    ("大伯，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。", "生日"),
    ("奶奶，国庆快乐！祝您身体健康。", "重阳节"),
]
SCENE_RIGHT = [
    ("妈，中秋节快乐！今年的月亮又大又圆，月饼留两个给我。", "中秋节"),
    ("奶奶，今年您的生日正好赶上中秋，蛋糕和月饼我都订好了，祝您生日快乐，中秋团圆。", "生日"),
    ("哥，除夕快乐！今年的年夜饭你掌勺，祝你新年顺利。", "除夕"),
    ("阿姨，您的小超市开业一周年啦！祝生意越来越红火，财源滚滚。", "发财赚钱"),
    ("叔叔，听说您手术很顺利，这段时间安心休养。", "康复"),
    ("妈，生日快乐！愿您平安喜乐。", "教师节"),  # a scene without a lexicon is not checked
    ("姐姐，愿你每天都开开心心的。", "生日"),  # no scene words at all: not a mismatch
]


@pytest.mark.parametrize(("text", "scene"), SCENE_WRONG)
def test_scene_mismatch(text, scene):
    assert codes("scene_mismatch", text, scene=scene) == [ReasonCode.SCENE_MISMATCH]


@pytest.mark.parametrize(("text", "scene"), SCENE_RIGHT)
def test_scene_fits(text, scene):
    assert codes("scene_mismatch", text, scene=scene) == []


ADDRESSEE_WRONG = [
    ("爷爷，生日快乐！愿您身体健康。", "奶奶"),
    ("姐，新年快乐！", "哥哥"),
    ("爸，中秋节快乐！", "母亲"),
    ("王总，生日快乐！祝您事业蒸蒸日上。", "李总"),
    ("李老师，生日快乐！", "赵老师"),
    ("祝姥爷重阳节快乐，福寿安康！", "外婆"),
    ("老师，恭喜您升职！", "医生"),
    ("奶奶，新年快乐！", "领导"),
]
ADDRESSEE_RIGHT = [
    ("老妈，生日快乐！", "母亲"),
    ("王叔叔，祝您早日康复！", "叔叔"),
    ("张总，新年快乐！", "老板"),
    ("王局，恭喜您高升！", "领导"),
    ("王阿姨，恭喜您乔迁新居！", "邻居"),
    ("亲爱的表哥，生日快乐！", "表哥"),
    ("妈妈总说：“你们平平安安就好。”妈，生日快乐！", "母亲"),
    ("恭喜你升职！", "同事"),
]


@pytest.mark.parametrize(("text", "role"), ADDRESSEE_WRONG)
def test_addressee_mismatch(text, role):
    assert codes("addressee_mismatch", text, role=role) == [ReasonCode.ADDRESSEE_MISMATCH]


@pytest.mark.parametrize(("text", "role"), ADDRESSEE_RIGHT)
def test_addressee_fits(text, role):
    assert codes("addressee_mismatch", text, role=role) == []


HONORIFIC_WRONG = [
    ("奶奶，生日快乐！祝你身体健康。", "奶奶"),  # 你 to an elder
    ("李总，生日快乐！祝你事业蒸蒸日上。", "李总"),  # 你 to a superior
    ("邻居赵大妈，元宵节快乐！祝你身体健康。", "邻居赵大妈"),
    ("妹妹，生日快乐！祝您学业进步。", "妹妹"),  # 您 to a younger sister
    ("尊敬的弟弟，生日快乐！", "弟弟"),
    ("宝宝，祝您生日快乐！", "宝宝"),  # 您 to a child
    ("尊敬的哥哥，新年快乐！", "哥哥"),  # 尊敬的 to any sibling
]
HONORIFIC_RIGHT = [
    ("王阿姨，恭喜您乔迁新居！有什么需要您尽管开口。", "邻居"),  # 您 to a neighbour is polite
    ("恭喜您升职！这几年您带着我们组熬过了好几个项目。", "同事"),
    ("老同学，生日快乐！真心谢谢您张罗聚会。", "同学"),
    ("奶奶，生日快乐！祝您身体健康。", "奶奶"),
    ("爷爷奶奶，祝你们身体健康！", "爷爷"),
    ("妈妈总说：“你们平平安安就好。”妈，生日快乐！", "母亲"),
    ("妹妹，生日快乐！祝你学业进步。", "妹妹"),
]


@pytest.mark.parametrize(("text", "role"), HONORIFIC_WRONG)
def test_honorific_defects(text, role):
    assert codes("honorific", text, role=role) == [ReasonCode.HONORIFIC]


@pytest.mark.parametrize(("text", "role"), HONORIFIC_RIGHT)
def test_honorific_fits(text, role):
    assert codes("honorific", text, role=role) == []
