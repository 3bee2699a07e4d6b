"""Who the speaker addresses: elder (您), peer (你) or junior (你), and whether it is a sibling.

"elder" means anyone addressed with 您 — older relatives and also superiors and professionals
(老师、领导、老板、医生、李总). Covers the 28 Tianji roles exactly, then falls back to the
longest known suffix (王老师 → 老师, 张总 → 总). A recipe may override the relation in its context.

>>> [relation_of(r) for r in ("爷爷", "邻居赵大妈", "表妹", "王老师", "张总", "小明")]
['elder', 'elder', 'junior', 'elder', 'elder', None]
>>> is_sibling("堂兄"), is_sibling("同学")
(True, False)
"""

from __future__ import annotations

from typing import Literal

Relation = Literal["elder", "peer", "junior"]

#: The 28 roles of Tianji's name_list (tianji_wishes_facts.json), each classified.
TIANJI_ROLES: dict[str, Relation] = {
    "赵老师": "elder", "大舅": "elder", "大伯": "elder", "李总": "elder", "邻居赵大妈": "elder",
    "母亲": "elder", "姐姐": "peer", "妹妹": "junior", "哥哥": "peer", "弟弟": "junior",
    "爷爷": "elder", "奶奶": "elder", "外公": "elder", "外婆": "elder", "伯母": "elder",
    "叔叔": "elder", "阿姨": "elder", "堂兄": "peer", "堂妹": "junior", "表哥": "peer",
    "表妹": "junior", "导师": "elder", "同学": "peer", "同事": "peer", "领导": "elder",
    "邻居": "peer", "老板": "elder", "医生": "elder",
}  # fmt: skip

#: Suffixes for roles outside the table; the longest matching suffix wins.
_SUFFIXES: dict[str, Relation] = {
    **{s: "elder" for s in (
        "老师", "教授", "导师", "校长", "院长", "主任", "经理", "总", "董", "领导", "老板", "上司", "医生",
        "大夫", "师傅", "师父", "爷爷", "奶奶", "外公", "外婆", "姥姥", "姥爷", "父亲", "母亲", "爸爸",
        "妈妈", "爸", "妈", "岳父", "岳母", "公公", "婆婆", "舅", "舅舅", "舅妈", "伯", "伯伯", "伯父",
        "伯母", "叔", "叔叔", "婶婶", "姑姑", "姑父", "姨", "阿姨", "姨妈", "姨父", "大妈", "大爷",
        "大娘", "长辈", "前辈", "客户",
    )},
    **{s: "peer" for s in (
        "哥", "哥哥", "姐", "姐姐", "兄", "兄弟", "姐妹", "堂兄", "堂姐", "表哥", "表姐", "同学", "同事", "朋友", "好友", "闺蜜", "室友",
        "邻居", "伙伴", "搭档", "老公", "老婆", "爱人", "对象", "男朋友", "女朋友", "同桌",
    )},
    **{s: "junior" for s in (
        "弟", "弟弟", "妹", "妹妹", "堂弟", "堂妹", "表弟", "表妹", "孩子", "儿子", "女儿", "学生", "侄子", "侄女", "外甥", "外甥女", "孙子", "孙女", "晚辈",
        "徒弟", "宝宝",
    )},
}  # fmt: skip

_SIBLING_SUFFIXES = ("哥", "姐", "弟", "妹", "兄", "兄弟", "姐妹")
_MAX_SUFFIX = max(map(len, _SUFFIXES))


def relation_of(role: str) -> Relation | None:
    """elder / peer / junior for `role`; None when the role is unknown (no honorific check)."""
    role = role.strip()
    if role in TIANJI_ROLES:
        return TIANJI_ROLES[role]
    for n in range(min(_MAX_SUFFIX, len(role)), 0, -1):
        relation = _SUFFIXES.get(role[-n:])
        if relation is not None:
            return relation
    return None


def is_sibling(role: str) -> bool:
    """True for brothers, sisters and cousins (哥哥、表妹、堂兄…), not for 同学 or 闺蜜."""
    role = role.strip()
    return role.endswith(_SIBLING_SUFFIXES) and role not in ("师兄", "师姐", "师弟", "师妹")
