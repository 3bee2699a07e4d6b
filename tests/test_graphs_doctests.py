"""The docstring examples in the agents, graphs and finetune modules (and docqa's) are real and stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["agents.errors", "agents.rules.base", "agents.asker", "agents.questions", "agents.docqa", "agents.answerer", "agents.responder", "agents.critic", "agents.judge", "agents.critic_rules", "agents.context",
           "agents.schemas", "agents.structured", "agents.llm_wire", "agents.usage", "graphs.state", "graphs.qa", "graphs.persona",
           "graphs.dialogue", "graphs.registry", "graphs.rundir", "graphs.shards", "graphs.execute", "graphs.ray_dedup", "graphs.config",
           "finetune.data", "finetune.formats", "finetune.config_gen", "finetune.spec", "finetune.validate",
           "finetune.card", "finetune.preference", "finetune.presets",
           "recipes.docqa.corpus", "recipes.docqa.tags", "recipes.docqa.items"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
