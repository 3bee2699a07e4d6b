"""Greeting fit: the scene's own words, and who the text addresses.

Every scene of the tianji recipe (and the seed's v1 scenes) has a lexicon: `SCENE_WORDS` are the
words that show a wish belongs to the scene (春节 → 新年, 春节, 新春, 过年 …), `SCENE_MARKERS` the
unmistakable ones used to notice another scene (月饼 is 中秋, 粽子 is 端午). A greeting gets
SCENE_MISMATCH when it has none of its own scene's words but another scene's markers, or fewer of
its own words than markers of one other scene (a birthday wish about 月亮 and 月饼), or its own
scene only in the opening line and another scene's markers in the body.

>>> from agents.rules.base import RuleContext, TextView
>>> scene_mismatch(TextView("奶奶，中秋节快乐！月圆人团圆。"), RuleContext(kind="greeting", scene="生日")).code.value
'SCENE_MISMATCH'
>>> scene_mismatch(TextView("妈，中秋快乐！今年的月亮格外圆。"), RuleContext(kind="greeting", scene="中秋节")) is None
True
>>> addressee_mismatch(TextView("爷爷，生日快乐！"), RuleContext(kind="greeting", role="奶奶")).code.value
'ADDRESSEE_MISMATCH'
"""

from __future__ import annotations

import re

from agents.rules.base import RuleContext, RuleHit, TextView, hit, rule
from agents.schemas import ReasonCode

_ZODIAC = tuple(f"{a}年" for a in "鼠牛虎兔龙蛇马羊猴鸡狗猪")

#: Unmistakable words of each scene (used to notice that a wish talks about another scene).
SCENE_MARKERS: dict[str, tuple[str, ...]] = {
    "生日": ("生日", "生辰", "寿辰", "大寿", "诞辰", "蛋糕", "长一岁", "大一岁", "新的一岁", "祝寿"),
    "春节": ("春节", "新年", "新春", "过年", "拜年", "压岁钱", "春联", "新岁", "贺岁", *_ZODIAC),
    "元宵节": ("元宵", "汤圆", "花灯", "灯谜", "灯会", "正月十五"),
    "端午节": ("端午", "粽子", "粽香", "龙舟", "艾草", "香囊"),
    "中秋节": ("中秋", "月饼", "赏月", "月圆", "月亮", "嫦娥", "玉兔"),
    "重阳节": ("重阳", "登高", "茱萸", "九九"),
    "除夕": ("除夕", "守岁", "年夜饭", "大年三十", "年三十"),
    "腊八节": ("腊八",),
    "七夕节": ("七夕", "鹊桥", "牛郎", "织女"),
    "乔迁新居": ("乔迁", "新居", "新家", "搬家", "入伙", "暖房"),
    "工作升职": ("升职", "晋升", "恭喜高升", "荣升", "升迁", "提拔", "新岗位"),  # 步步高升 is any new year's wish
    "康复": ("康复", "痊愈", "出院", "病愈"),
    "新婚快乐": ("新婚", "百年好合", "喜结连理", "白头偕老", "新娘", "新郎", "婚礼"),
    "谈判顺利": ("谈判", "签约"),
    "周年纪念": ("周年", "纪念日"),
    "比赛取得好成绩": ("比赛", "夺冠", "冠军", "金牌", "赛场"),
    "发财赚钱": ("发财", "赚钱", "招财"),  # 财源广进、生意兴隆 are any festival's wishes
    "家庭和睦": ("家和万事兴", "和睦"),
    # Occasions no recipe scene covers: a wish about them fits none of the scenes above.
    "其他节日": ("国庆", "元旦", "劳动节", "五一", "清明", "教师节", "母亲节", "父亲节", "儿童节", "六一", "圣诞", "妇女节",
              "三八节", "感恩节", "冬至", "小年", "开学", "毕业", "情人节", "万圣节", "平安夜"),
}
#: Every word that shows a wish belongs to its scene: the markers and the words it shares with others.
SCENE_WORDS: dict[str, tuple[str, ...]] = {
    scene: markers + extra for scene, (markers, extra) in {
        "生日": (SCENE_MARKERS["生日"], ("寿", "岁生日", "周岁", "一岁", "出生")),
        "春节": (SCENE_MARKERS["春节"], ("除夕", "年夜", "守岁", "团圆", "新的一年", "辞旧", "迎新", "开年", "元宵", "小年",
                                       "发财", "红包")),
        "元宵节": (SCENE_MARKERS["元宵节"], ("团圆", "上元", "闹元宵", "月圆")),
        "端午节": (SCENE_MARKERS["端午节"], ("粽", "五月初五", "屈原")),
        "中秋节": (SCENE_MARKERS["中秋节"], ("团圆", "月", "桂花", "八月十五")),
        "重阳节": (SCENE_MARKERS["重阳节"], ("敬老", "长寿", "寿", "老人节", "菊")),
        "除夕": (SCENE_MARKERS["除夕"], ("春节", "新年", "过年", "跨年", "辞旧", "团圆", "新春", "拜年", "年夜", "发财",
                                       "红包", "压岁钱")),
        "腊八节": (SCENE_MARKERS["腊八节"], ("腊月", "粥")),
        "七夕节": (SCENE_MARKERS["七夕节"], ("情人节", "爱情", "甜蜜", "有情人")),
        "乔迁新居": (SCENE_MARKERS["乔迁新居"], ("新房", "安家", "住进", "新窝", "入住", "乔迁之喜", "新宅")),
        "工作升职": (SCENE_MARKERS["工作升职"], ("升", "岗位", "职位", "晋级", "offer", "新公司", "入职", "重用", "高升")),
        "康复": (SCENE_MARKERS["康复"], ("恢复", "养病", "休养", "病", "手术", "住院", "健康", "安康")),
        "新婚快乐": (SCENE_MARKERS["新婚快乐"], ("结婚", "新人", "婚", "喜", "爱人", "伴侣")),
        "谈判顺利": (SCENE_MARKERS["谈判顺利"], ("顺利", "合作", "合同", "谈成", "拿下", "甲方", "客户")),
        "周年纪念": (SCENE_MARKERS["周年纪念"], ("纪念", "一路走来", "这些年")),
        "比赛取得好成绩": (SCENE_MARKERS["比赛取得好成绩"], ("成绩", "加油", "发挥", "考", "上岸", "获奖", "第一名", "赛")),
        "发财赚钱": (SCENE_MARKERS["发财赚钱"], ("财", "钱", "生意", "富", "红火", "进宝", "兴隆", "融资", "滚滚", "财源")),
        "家庭和睦": (SCENE_MARKERS["家庭和睦"], ("家", "和美", "和和", "阖家", "团圆", "和气")),
        "其他节日": (SCENE_MARKERS["其他节日"], ()),
    }.items()
}
_MARKER_SCENES: dict[str, list[str]] = {}
for _scene, _markers in SCENE_MARKERS.items():
    for _w in _markers:
        _MARKER_SCENES.setdefault(_w, []).append(_scene)
_ANY_MARKER = re.compile("|".join(sorted(map(re.escape, _MARKER_SCENES), key=len, reverse=True)))
_OWN = {scene: re.compile("|".join(sorted(map(re.escape, words), key=len, reverse=True)))
        for scene, words in SCENE_WORDS.items()}
#: Scenes bound to a date: a wish for one of them that talks about another in its body is off. Other
#: occasions (升职, 康复, 乔迁 …) may be wished for inside any festival greeting.
CALENDAR = frozenset({"生日", "春节", "元宵节", "端午节", "中秋节", "重阳节", "除夕", "腊八节", "七夕节", "其他节日"})
_ALIASES = {"中秋": "中秋节", "元宵": "元宵节", "端午": "端午节", "重阳": "重阳节", "腊八": "腊八节", "七夕": "七夕节",
            "发财": "发财赚钱", "升职": "工作升职", "乔迁": "乔迁新居", "新婚": "新婚快乐", "过年": "春节", "新年": "春节"}


def scene_of(scene: str | None) -> str | None:
    """The lexicon key for a recipe's scene name (None when the scene has no lexicon).

    >>> scene_of("工作升职 "), scene_of("中秋"), scene_of("教师节")
    ('工作升职', '中秋节', None)
    """
    if not scene:
        return None
    scene = scene.strip()
    return scene if scene in SCENE_WORDS else _ALIASES.get(scene)


_FIRST_SENTENCE = re.compile(r"^[^。！？!?\n]{0,20}[。！？!?\n]")


@rule("scene_mismatch", ReasonCode.SCENE_MISMATCH, "祝福没有本场景的词，却有别的场景的词（生日祝福写成了中秋）")
def scene_mismatch(view: TextView, ctx: RuleContext) -> RuleHit | None:
    scene = scene_of(ctx.scene) if ctx.kind == "greeting" else None
    if scene is None:
        return None
    text = view.text.lower()
    markers = set(_ANY_MARKER.findall(text))
    own_words = SCENE_WORDS[scene]
    foreign = [w for w in markers if w not in own_words]
    if not foreign:  # fast path: nothing of another scene
        return None
    own = sum(1 for w in own_words if w in text)
    body = _FIRST_SENTENCE.sub("", text, count=1)  # 「李总，生日快乐！」 then a body about 中秋
    own_in_body = _OWN[scene].search(body) is not None
    for other in SCENE_MARKERS:
        if other == scene:
            continue
        found = [w for w in foreign if other in _MARKER_SCENES[w]]
        if found and (own == 0 or own < len(found)
                      or (other in CALENDAR and not own_in_body and any(w in body for w in found))):
            return hit("scene_mismatch", f"场景是「{ctx.scene}」，祝福却写成了「{other}」（{'、'.join(found[:3])}），"
                                         f"请写切合「{ctx.scene}」的内容。")  # fmt: skip
    return None


# ---- addressee -------------------------------------------------------------------------------

#: Kin and title terms, grouped by the person they name; a text that opens with a term of another
#: group addresses someone else.
_GROUPS: dict[str, tuple[str, ...]] = {
    "爷爷": ("爷爷", "爷", "祖父", "老爷子"), "奶奶": ("奶奶", "奶", "祖母"),
    "外公": ("外公", "姥爷", "外祖父"), "外婆": ("外婆", "姥姥", "外祖母"),
    "父亲": ("爸爸", "爸", "老爸", "父亲", "爹"), "母亲": ("妈妈", "妈", "老妈", "母亲", "娘", "妈咪"),
    "舅舅": ("舅舅", "舅", "大舅", "二舅", "小舅"), "伯伯": ("大伯", "伯伯", "伯父", "伯"), "伯母": ("伯母", "大娘"),
    "叔叔": ("叔叔", "叔"), "阿姨": ("阿姨", "姨"),
    "哥哥": ("哥哥", "哥", "堂兄", "堂哥", "表哥", "老哥", "兄"), "姐姐": ("姐姐", "姐", "老姐", "表姐", "堂姐"),
    "弟弟": ("弟弟", "弟", "老弟", "表弟", "堂弟"), "妹妹": ("妹妹", "妹", "小妹", "老妹", "表妹", "堂妹"),
    "老师": ("老师", "导师", "教授"), "医生": ("医生", "大夫"), "总": ("总", "董"),
}  # fmt: skip
_TERM_GROUP = {term: group for group, terms in _GROUPS.items() for term in terms}
_TERMS = sorted(_TERM_GROUP, key=len, reverse=True)
# Roles addressed by name or any title (neighbours, classmates, colleagues): no check. Superiors
# may be called 王总, 李局, 张主任: only kin terms or 老师/医生 are wrong for them.
_SUPERIORS = ("领导", "老板", "上司")
_IGNORED_PREFIX = set("老小大二三亲好")
_OPENING = re.compile(r"^(?:亲爱的|敬爱的|尊敬的|最爱的|我的|致)?([\u4e00-\u9fff]{1,5}?)(?:[，,！!：:、\s]|您好|你好)")
_WISH_OPENING = re.compile(r"^(?:祝|恭祝|祝福|愿|敬祝)(?:亲爱的|敬爱的|尊敬的|我的)?([\u4e00-\u9fff]{0,1}?)("
                           + "|".join(_TERMS) + ")")


def _split(name: str) -> tuple[str, str] | None:
    """(prefix, group) for a name ending in a kin/title term: 赵老师 → ('赵', '老师')."""
    for term in _TERMS:
        if name.endswith(term):
            return name[: -len(term)], _TERM_GROUP[term]
    return None


def _vocative(text: str) -> str | None:
    m = _OPENING.match(text)
    if m is not None and _split(m.group(1)) is not None:
        return m.group(1)
    m = _WISH_OPENING.match(text)
    return m.group(1) + m.group(2) if m is not None else None


@rule("addressee_mismatch", ReasonCode.ADDRESSEE_MISMATCH, "称呼的对象不是这次的对象（对象是奶奶，开头却是“爷爷，”）")
def addressee_mismatch(view: TextView, ctx: RuleContext) -> RuleHit | None:
    role = (ctx.role or "").strip()
    if ctx.kind != "greeting" or not role:
        return None
    said = _vocative(view.text)
    if said is None or said == role:
        return None
    spoken = _split(said)
    if role in _SUPERIORS:
        wrong = spoken is not None and spoken[1] not in ("总",)
    else:
        wanted = _split(role)
        if wanted is None or spoken is None:
            return None
        (want_prefix, want_group), (said_prefix, said_group) = wanted, spoken
        wrong = want_group != said_group or bool(
            want_prefix and said_prefix and want_prefix != said_prefix
            and not ({want_prefix[-1], said_prefix[-1]} & _IGNORED_PREFIX))
    if not wrong:
        return None
    return hit("addressee_mismatch", f"这条祝福是写给「{role}」的，开头却称呼「{said}」，请改成对「{role}」说的话。", (0, len(said)))
