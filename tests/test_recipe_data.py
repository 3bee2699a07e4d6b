"""Invariants of the recipes' data: the wulewule knowledge folder and the three recipe YAMLs.

These files are hand-written data; the recipe code trusts them. The tests pin what a user of a
recipe would notice (a missing role, a scene with a trailing space, a 小红书 example with three
emoji, a 尊敬的 in a message to one's brother) and compare the lists with the seed projects'
exact lists in shared/reference when that folder is present.

    .venv/bin/python -m pytest tests/test_recipe_data.py -q
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
REFERENCE = Path(__file__).parents[2] / "shared" / "reference"
KNOWLEDGE = ROOT / "knowledge" / "bases" / "wulewule"

SIBLINGS = {"姐姐", "妹妹", "哥哥", "弟弟", "堂兄", "堂妹", "表哥", "表妹"}
ASCII_PUNCT = set(string.punctuation)
PREAMBLES = ("以下是", "祝福语如下", "当前祝福语", "好的，", "当然，")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "recipes" / name / f"{name}.yaml").read_text(encoding="utf-8"))


def reference(rel: str) -> dict:
    path = REFERENCE / rel
    if not path.is_file():
        pytest.skip(f"seed reference not present: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def emoji_count(text: str) -> int:
    """Count pictographs; variation selectors and joiners are not counted.

    >>> emoji_count("生日快乐🎂 爱你✨")
    2
    """
    ranges = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF))
    return sum(any(lo <= ord(ch) <= hi for lo, hi in ranges) for ch in text)


def all_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from all_strings(key)
            yield from all_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_strings(value)


def test_emoji_count_counts_pictographs_only():
    assert emoji_count("生日快乐🎂 爱你✨") == 2
    assert emoji_count("新年快乐🧧！") == 1
    assert emoji_count("中秋节快乐，万事如意。") == 0


# --------------------------------------------------------------------------- wulewule knowledge


def knowledge_files() -> list[Path]:
    return sorted(KNOWLEDGE.glob("*.md"))


def test_wulewule_knowledge_folder_is_big_enough():
    files = knowledge_files()
    assert len(files) >= 12
    total = sum(len(p.read_text(encoding="utf-8")) for p in files)
    assert total >= 30_000, total


@pytest.mark.parametrize("path", knowledge_files(), ids=lambda p: p.name[:2])
def test_wulewule_file_has_title_and_sections(path: Path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "first line must be a '# 标题'"
    assert len(re.findall(r"^# ", text, flags=re.M)) == 1
    assert len(re.findall(r"^## ", text, flags=re.M)) >= 3
    assert re.match(r"^\d{2}_", path.name)
    assert "\r" not in text and "\ufeff" not in text


def test_wulewule_knowledge_states_the_key_facts():
    text = re.sub(r"\s+", "", "".join(p.read_text(encoding="utf-8") for p in knowledge_files()))
    for fact in (
        "2024年8月20日", "游戏科学", "GameScience", "冯骥", "杨奇", "虚幻引擎5", "Steam", "WeGame",
        "PlayStation5", "天命人", "火照黑云", "风起黄昏", "夜生白露", "曲度紫鸳", "日落红尘", "未竟",
        "黑风山", "黄风岭", "小西天", "盘丝岭", "火焰山", "花果山", "广智", "黑熊精", "虎先锋",
        "黄风大圣", "亢金龙", "黄眉", "百眼魔君", "红孩儿", "二郎神", "劈棍", "立棍", "戳棍", "棍势",
        "定身法", "安身法", "聚形散气", "铜头铁臂", "精魄", "玉皇庙", "铁佛寺", "双林寺", "大足石刻",
        "云宫迅音", "陕北说书", "200万", "1000万", "最佳动作游戏",
    ):
        assert fact in text, fact


def test_wulewule_knowledge_is_not_copied_from_the_seed():
    """No 20-character run of the seed repo's own data appears in our files."""
    seed = REFERENCE / "wulewule"
    names = ("heishenghua_pretraining_first5.jsonl", "huixiangdou_conversations_first30.jsonl",
             "huixiangdou_conversations_multiturn10.jsonl")
    if not all((seed / n).is_file() for n in names):
        pytest.skip("seed reference not present")
    seed_text = ""
    for name in names:
        for line in (seed / name).read_text(encoding="utf-8").splitlines():
            for turn in json.loads(line)["conversation"]:
                seed_text += turn.get("output", "") + "\n"
    window = 20
    seed_grams = {seed_text[i:i + window] for i in range(len(seed_text) - window + 1)}
    for path in knowledge_files():
        text = path.read_text(encoding="utf-8")
        shared = [text[i:i + window] for i in range(len(text) - window + 1) if text[i:i + window] in seed_grams]
        assert not shared, f"{path.name}: {shared[:3]}"


# --------------------------------------------------------------------------- wulewule.yaml

ASPECTS_18 = [
    "游戏概述", "章节与故事情节", "主要角色", "人物剧情梳理", "游戏世界观", "建筑与环境", "战斗系统",
    "游戏玩法", "艺术与音乐", "文化内涵", "市场影响", "彩蛋、网络梗", "发售相关", "游戏背后的中国文化",
    "角色故事", "游戏攻略", "棍法类型", "天命人法术类型",
]


def test_wulewule_yaml_shape():
    cfg = load("wulewule")
    assert cfg["recipe"] == "wulewule"
    assert (ROOT / cfg["knowledge_folder"]).resolve() == KNOWLEDGE.resolve()
    assert cfg["extra_knowledge_folders"] == []
    assert cfg["aspects"] == ASPECTS_18
    assert cfg["questions_per_aspect"] == 5
    assert cfg["multi_turn"] == {"every": 2, "turns": [2, 4]}
    assert cfg["pretrain"] == {"chunk_size": 1024, "overlap": 50}
    assert "悟了悟了" in cfg["system_prompt"] and "《黑神话：悟空》" in cfg["system_prompt"]
    assert "xzyun2011" not in cfg["system_prompt"]


def test_wulewule_aspects_match_the_seed_code():
    facts = reference("wulewule/wulewule_facts.json")
    assert load("wulewule")["aspects"] == facts["aspects_code_data_huixiangdou_rag_QA_py"]


def test_wulewule_self_cognition():
    sc = load("wulewule")["self_cognition"]
    assert sc["name"] == "悟了悟了" and sc["author"] == "zaoshu 社区"
    assert len(sc["questions"]) >= 15 and len(set(sc["questions"])) == len(sc["questions"])
    assert len(sc["answers"]) >= 10 and len(set(sc["answers"])) == len(sc["answers"])
    for answer in sc["answers"]:
        assert placeholders(answer) == {"name", "author"}, answer
        filled = answer.format(name=sc["name"], author=sc["author"])
        assert "悟了悟了" in filled and "zaoshu 社区" in filled


# --------------------------------------------------------------------------- tianji.yaml


def role_in(text: str, names: list[str]) -> str:
    """The longest role name in `text` (邻居赵大妈 wins over 邻居)."""
    found = [n for n in names if n in text]
    assert found, text
    return max(found, key=len)


def test_tianji_roles():
    cfg = load("tianji")
    roles = cfg["roles"]
    assert len(roles) == 28
    assert len({r["name"] for r in roles}) == 28
    assert all(r["relation"] in {"elder", "peer", "junior"} for r in roles)
    assert {r["name"] for r in roles if r.get("sibling")} == SIBLINGS
    by_name = {r["name"]: r for r in roles}
    assert by_name["爷爷"]["relation"] == "elder" and by_name["母亲"]["relation"] == "elder"
    assert by_name["弟弟"]["relation"] == "junior" and by_name["同学"]["relation"] == "peer"


def test_tianji_roles_and_scenes_match_the_seed():
    facts = reference("tianji/tianji_wishes_facts.json")
    cfg = load("tianji")
    assert [r["name"] for r in cfg["roles"]] == facts["name_list"]
    expected = [s.strip() for s in facts["scenes_v2_active"]]
    assert cfg["scenes"] == expected


def test_tianji_scenes():
    scenes = load("tianji")["scenes"]
    assert len(scenes) == 13 and len(set(scenes)) == 13
    assert "工作升职" in scenes and "发财赚钱" in scenes and "发财" not in scenes
    assert not {"七夕节", "谈判顺利", "周年纪念", "新婚快乐", "比赛取得好成绩"} & set(scenes)


def test_tianji_no_string_has_outer_whitespace():
    for s in all_strings(load("tianji")):
        assert s == s.strip(), repr(s)


def test_tianji_exclusions_name_known_cells_with_a_reason():
    cfg = load("tianji")
    roles = {r["name"] for r in cfg["roles"]}
    scenes = set(cfg["scenes"])
    cells = [(e["role"], e["scene"]) for e in cfg["compat_exclusions"]]
    assert cells and len(set(cells)) == len(cells)
    for e in cfg["compat_exclusions"]:
        assert e["role"] in roles and e["scene"] in scenes, e
        assert len(e["reason"]) >= 5, e
    assert ("爷爷", "工作升职") in cells and ("医生", "康复") in cells
    assert len(cells) < 28 * 13 // 10  # "only where clearly odd"


def test_tianji_styles():
    styles = load("tianji")["styles"]
    assert list(styles) == ["正常", "小红书", "严肃"]
    assert styles["正常"]["suffix"] == ""
    assert styles["小红书"]["suffix"] == "，小红书风格" and styles["严肃"]["suffix"] == "，严肃风格"
    assert styles["小红书"]["emoji"] == [1, 2]
    assert styles["正常"]["emoji"] is None and styles["严肃"]["emoji"] is None
    for name, style in styles.items():
        assert 0 < style["min_chars"] < style["max_chars"], name
        assert style["instruction"], name
        assert len(style["few_shot"]) == 3, name


def few_shots():
    cfg = load("tianji")
    names = [r["name"] for r in cfg["roles"]]
    for style_name, style in cfg["styles"].items():
        for shot in style["few_shot"]:
            yield style_name, style, shot, role_in(shot["input"], names)


STYLE_IDS = {"正常": "normal", "小红书": "xiaohongshu", "严肃": "formal"}
SHOTS = list(few_shots())


@pytest.mark.parametrize("style_name, style, shot, role", SHOTS,
                         ids=[f"{STYLE_IDS.get(s[0], s[0])}-{i % 3}" for i, s in enumerate(SHOTS)])
def test_tianji_few_shot_example(style_name, style, shot, role):
    cfg = load("tianji")
    relation = {r["name"]: r for r in cfg["roles"]}[role]
    text, prompt = shot["output"], shot["input"]
    # the input reads like a user's request in that style
    assert any(s in prompt for s in cfg["scenes"]), prompt
    if style["suffix"]:
        assert prompt.endswith(style["suffix"]), prompt
    else:
        assert "风格" not in prompt, prompt
    # length, emoji and punctuation
    assert style["min_chars"] <= len(text) <= style["max_chars"], (len(text), text)
    lo, hi = style["emoji"] or (0, 0)
    assert lo <= emoji_count(text) <= hi, text
    assert not ASCII_PUNCT & set(text), text
    assert not ASCII_PUNCT & set(prompt), prompt
    assert text[0] not in "，。！？；：、…~～", text
    assert not text.startswith(PREAMBLES) and "“" not in text[:1], text
    # honorifics
    if relation["relation"] == "elder":
        assert "您" in text, text
    else:
        assert "您" not in text, text
    if relation.get("sibling"):
        assert "尊敬的" not in text, text


def test_tianji_few_shots_cover_elders_and_siblings():
    shots = SHOTS
    roles = {r["name"]: r for r in load("tianji")["roles"]}
    assert any(roles[role]["relation"] == "elder" for *_, role in shots)
    siblings = [style for style, *_, role in shots if roles[role].get("sibling")]
    assert set(siblings) == {"正常", "小红书", "严肃"}


def test_tianji_input_templates_and_constraints():
    cfg = load("tianji")
    templates = cfg["input_templates"]
    assert len(templates) >= 5 and len(set(templates)) == len(templates)
    for t in templates:
        assert placeholders(t) == {"role", "scene"}, t
        assert "到了" not in t  # must read naturally for 康复 and 工作升职 too
        assert not ASCII_PUNCT & set(t.replace("{", "").replace("}", "")), t
    assert templates[0].format(role="爷爷", scene="春节") == "祝爷爷春节"
    constraints = cfg["random_constraints"]
    assert len(constraints) >= 8 and len(set(constraints)) == len(constraints)
    assert all(c and not placeholders(c) for c in constraints)
    assert "工作升职 " not in json.dumps(cfg, ensure_ascii=False)


# --------------------------------------------------------------------------- emollm.yaml

DIAGNOSES = ("抑郁症", "焦虑症", "强迫症", "双相", "病人", "患者")


def test_emollm_lists():
    cfg = load("emollm")
    assert len(cfg["areas"]) == 16 and len(set(cfg["areas"])) == 16
    emotions = cfg["emotions"]
    assert len(emotions) == 28
    assert len(set(emotions)) == 27
    assert emotions.count("同情") == 2 and [i for i, e in enumerate(emotions) if e == "同情"] == [12, 26]


def test_emollm_lists_match_the_seed():
    lists = reference("emollm/scene_lists.json")
    cfg = load("emollm")
    assert cfg["areas"] == lists["areas_of_life"]
    assert cfg["emotions"] == lists["emotions_list"]
    assert list(dict.fromkeys(cfg["emotions"])) == lists["emotions_unique"]


def test_emollm_prompts_and_few_shot():
    cfg = load("emollm")
    assert cfg["recipe"] == "emollm"
    assert cfg["turns"] == [3, 6]
    assert "咨询" in cfg["counsellor_system_prompt"] and "第一人称" in cfg["seeker_instruction"]
    assert not placeholders(cfg["counsellor_system_prompt"]) and not placeholders(cfg["seeker_instruction"])
    shots = cfg["counsellor_few_shot"]
    assert len(shots) == 3
    for shot in shots:
        assert set(shot) == {"seeker", "counsellor"}
        assert len(shot["seeker"]) >= 30 and len(shot["counsellor"]) >= 60
        assert "我" in shot["seeker"]
        assert not any(d in shot["seeker"] for d in DIAGNOSES), shot["seeker"]
        assert not any(d in shot["counsellor"] for d in DIAGNOSES), shot["counsellor"]
        assert not ASCII_PUNCT & set(shot["seeker"] + shot["counsellor"])
        assert shot["counsellor"].count("？") >= 1  # ends its turn by inviting the seeker on


def test_emollm_self_cognition():
    sc = load("emollm")["self_cognition"]
    assert sc["name"] and sc["author"] == "zaoshu 社区"
    assert len(sc["questions"]) >= 10 and len(set(sc["questions"])) == len(sc["questions"])
    assert len(sc["answers"]) >= 8 and len(set(sc["answers"])) == len(sc["answers"])
    for answer in sc["answers"]:
        assert placeholders(answer) == {"name", "author"}, answer
        assert "EmoLLM" not in answer
