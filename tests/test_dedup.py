"""Exact and near-duplicate detection: what a rerun, a resume and a big run need."""

from __future__ import annotations

import doctest
import threading

import pytest

from agents.dedup import Deduper, DupHit, normalize, sample_texts
from agents.schemas import Sample, Turn

WISH = "姐姐生日快乐！愿你被这个世界温柔以待，所有的努力都有回报，所有的期待都能如愿，永远十八岁，天天开心！"
ANSWER = (
    "敬酒时要先敬长辈和领导，再敬平辈。敬酒时双手持杯，杯口略低于对方的杯口，以示尊重；"
    "说一两句简短真诚的祝酒词即可，不要劝酒，对方不能喝时要体谅。"
)


@pytest.fixture
def d() -> Deduper:
    return Deduper()


def test_normalize_ignores_width_case_punctuation_and_spaces():
    assert normalize("Ｈｅｌｌｏ，世界！ 2024") == "hello世界2024"
    assert normalize(" 祝你 生日快乐!!🎂 ") == normalize("祝你生日快乐。") == "祝你生日快乐"


@pytest.mark.parametrize(
    "variant",
    [
        WISH,
        WISH.replace("，", ",").replace("！", "!"),
        " ".join(WISH),
        WISH + "🎂🎉",
        "「" + WISH.replace("！", "。") + "」",
    ],
)
def test_exact_duplicate_after_normalization(d, variant):
    assert d.check_and_add("s1", WISH, namespace="answer") is None
    assert d.check_and_add("s2", variant, namespace="answer") == DupHit("s1", "exact", 1.0)


@pytest.mark.parametrize(
    "variant",
    [
        ANSWER.replace("领导", "上级"),
        ANSWER.replace("不要劝酒", "千万不要劝酒"),
        ANSWER.replace("简短真诚", "简短而真诚"),
    ],
)
def test_near_duplicate_reports_earlier_id_and_similarity(d, variant):
    assert d.check_and_add("a1", ANSWER, namespace="answer") is None
    found = d.check_and_add("a2", variant, namespace="answer")
    assert found is not None and (found.earlier_id, found.kind) == ("a1", "near")
    assert 0.85 <= found.similarity < 1.0
    assert d.size("answer") == 1  # the duplicate was not kept


DISTINCT = [
    "爷爷，重阳节快乐！祝您身体健康，福寿安康，天天都有好心情。",
    "尊敬的领导，值此新春佳节，感谢您一年来的悉心指导，祝您阖家幸福，万事顺意！",
    "姐姐生日快乐🎂！愿你被世界温柔以待，永远闪闪发光呀～",
    "恭喜乔迁新居！祝你新家温馨，生活越来越好，常回来聚聚。",
    "表妹早日康复呀💪！等你好了我们一起去吃火锅，快快好起来哦～",
    "李总，祝您事业蒸蒸日上，财源广进，生意兴隆，合作愉快！",
    ANSWER,
    "天命人是《黑神话：悟空》中玩家操控的角色，他踏上寻找大圣六根的旅程。",
]


def test_distinct_texts_are_all_kept(d):
    assert [d.check_and_add(f"x{i}", t, namespace="answer") for i, t in enumerate(DISTINCT)] == [None] * len(DISTINCT)
    assert d.size("answer") == len(DISTINCT) and len(d) == len(DISTINCT)


def test_namespaces_are_separate(d):
    assert d.check_and_add("s1", "祝姐姐生日快乐,小红书风格", namespace="question") is None
    assert d.check_and_add("s1", "祝姐姐生日快乐,小红书风格", namespace="answer") is None
    assert d.check_and_add("s2", "祝姐姐生日快乐，小红书风格", namespace="question") == DupHit("s1", "exact", 1.0)
    assert (d.size("question"), d.size("answer"), d.size("other")) == (1, 1, 0)


def test_warm_load_from_an_earlier_run(d):
    kept = d.load([("old1", WISH), ("old2", ANSWER), ("old3", "！！"), ("old1", WISH)], namespace="answer")
    assert kept == 2  # punctuation-only text is not kept; the repeated id counts once
    assert d.check_and_add("new1", WISH + "。", namespace="answer") == DupHit("old1", "exact", 1.0)
    found = d.check_and_add("new2", ANSWER.replace("领导", "上级"), namespace="answer")
    assert found is not None and found.earlier_id == "old2" and found.kind == "near"
    assert d.check_and_add("new3", DISTINCT[0], namespace="answer") is None


def test_the_same_id_again_is_not_its_own_duplicate(d):
    assert d.check_and_add("s1", WISH) is None
    assert d.check_and_add("s1", WISH) is None  # a resumed run re-checks a finished sample
    assert d.check_and_add("s1", WISH.replace("温柔", "温暖")) is None
    assert d.size() == 1


def test_check_adds_nothing_and_add_keeps_even_duplicates(d):
    assert d.check(WISH) is None
    assert d.size() == 0
    d.add("s1", WISH)
    d.add("s2", WISH)
    assert d.size() == 2
    assert d.check(WISH + "!") == DupHit("s1", "exact", 1.0)


def test_punctuation_only_text_is_never_a_duplicate(d):
    assert d.check_and_add("p1", "！！！") is None
    assert d.check_and_add("p2", "。。。") is None
    assert d.size() == 0


def test_short_texts_shorter_than_the_ngram(d):
    assert d.check_and_add("s1", "好的") is None
    assert d.check_and_add("s2", "好的！") == DupHit("s1", "exact", 1.0)
    assert d.check_and_add("s3", "好") is None


def test_concurrent_check_and_add_accepts_one_copy():
    d = Deduper()
    results: list[DupHit | None] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        results.append(d.check_and_add(f"t{i}", WISH))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 1 and d.size() == 1


def test_index_grows_past_its_initial_capacity():
    d = Deduper()
    texts = [f"第{i}号样本：今天我们讨论的话题编号是{i * 7919 % 100003}，内容各不相同。" for i in range(3000)]
    dups = [d.check_and_add(f"k{i}", t) for i, t in enumerate(texts)]
    assert d.size() == 3000 - sum(x is not None for x in dups)
    assert d.check(texts[2500]) == DupHit("k2500", "exact", 1.0)


def test_sample_texts():
    s = Sample(id="x", recipe="emollm", kind="dialogue",
               turns=[Turn(input="我很焦虑", output="我理解你。"), Turn(input="怎么办", output="先深呼吸。")])  # fmt: skip
    assert sample_texts(s) == {"question": "我很焦虑", "answer": "我理解你。\n先深呼吸。"}


def test_bad_threshold():
    with pytest.raises(ValueError):
        Deduper(threshold=0)


def test_docstring_examples():
    import agents.dedup

    result = doctest.testmod(agents.dedup)
    assert result.failed == 0 and result.attempted >= 5
