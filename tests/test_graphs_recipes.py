"""The graphs with the real recipe YAML files (tianji, emollm, wulewule) and fake models."""

from pathlib import Path

import pytest
import yaml

from agents.schemas import ReasonCode
from agents.context import Context
from graphs.persona import build_persona_graph
from graphs.registry import calls_per_item, render_examples
from graphs.state import WorkItem
from tests.fakes import fake_clients, reply, total_calls, verdict

ROOT = Path(__file__).parents[1]


def recipe(name):
    path = ROOT / "recipes" / name / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "graph", "key"), [
    ("tianji", "persona", {"role": "奶奶", "scene": "中秋节", "style": "小红书", "variant": 0}),
    ("emollm", "dialogue", {"area": "学业", "emotion": "焦虑", "n": 0}),
    ("wulewule", "qa", {"aspect": "主要角色", "n": 0}),
])
def test_every_prompt_renders_with_the_real_recipe(name, graph, key):
    item = WorkItem.for_recipe(name, graph, key=key, payload=dict(key))
    ctx = Context(clients={}, recipe=recipe(name))
    examples = render_examples(item, ctx)
    assert examples and all("{" not in text for text in examples.values())
    assert sum(calls_per_item(item, ctx).values()) >= 2


async def test_tianji_excluded_cell_costs_nothing_and_a_good_greeting_is_accepted():
    config = recipe("tianji")
    excluded = config["compat_exclusions"][0]
    clients = fake_clients()
    item = WorkItem.for_recipe("tianji", "persona", key={"role": excluded["role"], "scene": excluded["scene"],
                                                         "style": "正常", "variant": 0})
    graph = build_persona_graph().compile()
    out = await graph.ainvoke({"item": item}, context=Context(clients=clients, recipe=config))
    assert out["reject_codes"] == [ReasonCode.ROLE_SCENE_MISMATCH] and total_calls(clients) == 0
    assert out["sample"] is None

    good = "奶奶，中秋节快乐！今年我一定回家陪您赏月，愿您身体硬朗，天天笑口常开。"
    clients = fake_clients(responder=[reply(good)], critic=[verdict("accept")])
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "奶奶", "scene": "中秋节", "style": "正常", "variant": 0})
    out = await graph.ainvoke({"item": item}, context=Context(clients=clients, recipe=config))
    assert out["status"] == "accepted" and out["sample"].turns[0].output == good
