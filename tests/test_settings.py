"""Settings: precedence (CLI > env > YAML > default), role overrides, presets, key masking."""

import json

import pytest

from agents.errors import ConfigError
from agents.settings import PRESETS, load_settings


def test_defaults_then_yaml_then_env_then_cli(monkeypatch):
    assert load_settings(env_file=None).for_role("asker").temperature == 0.7
    yaml_data = {"temperature": 0.2, "model": "from-yaml", "base_url": "http://127.0.0.1:9/v1"}
    assert load_settings(yaml_data, env_file=None).for_role("asker").temperature == 0.2
    monkeypatch.setenv("ZAOSHU_TEMPERATURE", "0.5")
    s = load_settings(yaml_data, env_file=None)
    assert s.for_role("asker").temperature == 0.5
    assert s.for_role("asker").model == "from-yaml"  # YAML survives where env is silent
    s = load_settings(yaml_data, cli={"temperature": 0.9}, env_file=None)
    assert s.for_role("asker").temperature == 0.9


def test_role_override_from_env_beats_shared(monkeypatch):
    monkeypatch.setenv("ZAOSHU_PRESET", "deepseek")
    monkeypatch.setenv("ZAOSHU_CRITIC__MODEL", "deepseek-reasoner")
    monkeypatch.setenv("ZAOSHU_CRITIC__TEMPERATURE", "0")
    s = load_settings(env_file=None)
    assert s.for_role("critic").model == "deepseek-reasoner"
    assert s.for_role("critic").temperature == 0.0
    assert s.for_role("asker").model == "deepseek-chat"
    assert s.for_role("critic").base_url == "https://api.deepseek.com/v1"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("ZAOSHU_PRESET=siliconflow\nZAOSHU_RPM=30\n")
    cfg = load_settings(env_file=".env").for_role("answerer")
    assert cfg.base_url == PRESETS["siliconflow"].base_url
    assert cfg.rpm == 30


def test_openai_variables_honoured_only_when_zaoshu_unset(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-fallback")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    cfg = load_settings(env_file=None).for_role("asker")
    assert cfg.api_key.get_secret_value() == "sk-openai-fallback"
    assert cfg.base_url == "http://127.0.0.1:1234/v1"
    monkeypatch.setenv("ZAOSHU_API_KEY", "sk-zaoshu-wins")
    monkeypatch.setenv("ZAOSHU_BASE_URL", "http://127.0.0.1:5678/v1")
    cfg = load_settings(env_file=None).for_role("asker")
    assert cfg.api_key.get_secret_value() == "sk-zaoshu-wins"
    assert cfg.base_url == "http://127.0.0.1:5678/v1"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_fills_url_and_model(name):
    cfg = load_settings({"preset": name}, env_file=None).for_role("asker")
    assert cfg.base_url.startswith("http") and cfg.base_url.endswith(("/v1", "/v4"))
    assert cfg.model


def test_unknown_preset_and_missing_endpoint_are_clear():
    with pytest.raises(ConfigError, match="unknown preset 'deepsek'"):
        load_settings({"preset": "deepsek"}, env_file=None).for_role("asker")
    with pytest.raises(ConfigError, match="no LLM endpoint configured for role 'asker'.*ZAOSHU_PRESET"):
        load_settings(env_file=None).for_role("asker").require_endpoint()
    with pytest.raises(ConfigError, match="no API key.*ZAOSHU_API_KEY"):
        load_settings({"preset": "deepseek"}, env_file=None).for_role("asker").require_endpoint()
    # local servers need no key
    load_settings({"preset": "ollama"}, env_file=None).for_role("asker").require_endpoint()


def test_key_in_yaml_or_cli_is_refused():
    with pytest.raises(ConfigError, match="keys come only from the environment"):
        load_settings({"critic": {"api_key": "sk-in-yaml"}}, env_file=None)
    with pytest.raises(ConfigError, match="keys come only from the environment"):
        load_settings(cli={"api_key": "sk-on-cli"}, env_file=None)


def test_masked_dump_never_contains_the_key(monkeypatch):
    monkeypatch.setenv("ZAOSHU_API_KEY", "sk-supersecret-1234567890")
    monkeypatch.setenv("ZAOSHU_CRITIC__API_KEY", "sk-criticsecret-0987654321")
    dumped = json.dumps(load_settings({"preset": "deepseek"}, env_file=None).masked_dump())
    assert "supersecret" not in dumped and "criticsecret" not in dumped
    assert '"api_key": "***"' in dumped
