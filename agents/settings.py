"""One typed settings object. Precedence: CLI flag > environment / `.env` > recipe YAML > default.

>>> s = load_settings(yaml_data={"preset": "deepseek"}, env_file=None)
>>> s.for_role("critic").base_url
'https://api.deepseek.com/v1'

Secrets come only from the environment (`ZAOSHU_API_KEY`, or `OPENAI_API_KEY` when that is unset)
and are masked in every printout (`masked_dump`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.errors import ConfigError, pydantic_problem

Role = Literal["asker", "answerer", "responder", "critic"]
ROLES: tuple[Role, ...] = ("asker", "answerer", "responder", "critic")


class Preset(BaseModel):
    base_url: str
    model: str
    needs_key: bool = True
    key_hint: str = ""
    # Prices of `model` (per 1k tokens); they apply only while the role uses that model.
    price_input_per_1k: float = 0.0
    price_input_cached_per_1k: float | None = None  # None: a cache hit costs the full input price
    price_output_per_1k: float = 0.0
    currency: str = "¥"
    json_mode: str = "json_object"


# Base URLs and typical models as each provider documents its OpenAI-compatible API. Prices are list
# prices as we last read them (no web access when this was written: ASSUMPTIONS to check against the
# provider's price page; set ZAOSHU_PRICE_* to override):
# - deepseek-chat: ¥2 / M input (cache miss), ¥0.2 / M input on a cache hit (1/10, the ratio DeepSeek
#   documents for its disk context cache, automatic), ¥3 / M output.
# - qwen-plus (DashScope): ¥0.8 / M input, ¥2 / M output; implicit-cache hits billed at 20 % of the input
#   price (Alibaba Cloud Model Studio's context-cache page; its explicit cache is 10 %).
# - glm-4-flash (Zhipu) and Qwen2.5-7B-Instruct (SiliconFlow): free tiers, so cache hits cost nothing
#   either; neither provider's cache ratio is applied here (assumed 1.0 on their paid models).
# - gpt-4o-mini (OpenAI): $0.15 / M input, $0.075 / M cached (50 %, OpenAI's prompt caching, automatic
#   for prompts of 1,024 tokens or more), $0.60 / M output.
# - local servers (ollama, vllm, lmdeploy): no money; their prefix cache saves time, not cost.
PRESETS: dict[str, Preset] = {
    "deepseek": Preset(base_url="https://api.deepseek.com/v1", model="deepseek-chat",
                       key_hint="platform.deepseek.com → API keys", price_input_per_1k=0.002,
                       price_input_cached_per_1k=0.0002, price_output_per_1k=0.003),
    "siliconflow": Preset(base_url="https://api.siliconflow.cn/v1", model="Qwen/Qwen2.5-7B-Instruct",
                          key_hint="cloud.siliconflow.cn → API 密钥"),
    "dashscope": Preset(base_url="https://dashscope.aliyuncs.com/compatible-mode/v1", model="qwen-plus",
                        key_hint="阿里云百炼 → API-KEY", price_input_per_1k=0.0008,
                        price_input_cached_per_1k=0.00016, price_output_per_1k=0.002),
    "zhipu": Preset(base_url="https://open.bigmodel.cn/api/paas/v4", model="glm-4-flash",
                    key_hint="open.bigmodel.cn → API keys"),
    "ollama": Preset(base_url="http://localhost:11434/v1", model="qwen2.5:7b", needs_key=False),
    "vllm": Preset(base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct", needs_key=False),
    "lmdeploy": Preset(base_url="http://localhost:23333/v1", model="internlm2_5-7b-chat", needs_key=False),
    "openai": Preset(base_url="https://api.openai.com/v1", model="gpt-4o-mini", price_input_per_1k=0.00015,
                     price_input_cached_per_1k=0.000075, price_output_per_1k=0.0006, currency="$",
                     json_mode="json_schema"),
}

JsonMode = Literal["json_schema", "json_object", "prompt"]
#: A key; an empty one (`ZAOSHU_API_KEY=` as copied from .env.example) is no key.
Key = Annotated[SecretStr | None, BeforeValidator(lambda value: None if isinstance(value, str) and not value.strip()
                                                  else value)]
PRICE_FIELDS = ("price_input_per_1k", "price_input_cached_per_1k", "price_output_per_1k", "currency", "json_mode")


class LLMFields(BaseModel):
    """Endpoint fields; every one optional so a role override only names what differs."""

    preset: str | None = Field(default=None, description=f"Provider preset: {', '.join(PRESETS)}.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible base URL, e.g. https://api.deepseek.com/v1.")
    api_key: Key = Field(default=None, description="API key (environment only; never written to disk).")
    model: str | None = Field(default=None, description="Model name as the endpoint knows it.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds before one request times out.")
    max_retries: int | None = Field(default=None, ge=0, description="Retries on 429 / 5xx / timeouts / dropped connections.")
    rpm: int | None = Field(default=None, ge=0, description="Requests per minute cap (0 = none).")
    tpm: int | None = Field(default=None, ge=0, description="Tokens per minute cap (0 = none).")
    max_requests: int | None = Field(default=None, ge=1, description="Requests in flight at most, per endpoint and key.")
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens one reply may generate (per-role defaults).")
    price_input_per_1k: float | None = Field(default=None, ge=0, description="Price per 1k input tokens.")
    price_output_per_1k: float | None = Field(default=None, ge=0, description="Price per 1k output tokens.")
    price_input_cached_per_1k: float | None = Field(
        default=None, ge=0, description="Price per 1k input tokens served from the provider's prefix cache.")
    currency: str | None = Field(default=None, description="Currency symbol for cost estimates (¥ or $).")
    json_mode: JsonMode | None = Field(
        default=None, description="How structured replies are asked for: json_schema (strict) | json_object | "
                                  "prompt (instructions only, tolerant parsing).")


#: Default `max_tokens` per role: a reply longer than this is cut (and rejected as TRUNCATED), so a
#: model that never stops cannot run for minutes or cost money (a JSON-mode call to a small local model
#: generated until its 8k context was full). Override with ZAOSHU_<ROLE>__MAX_TOKENS or `llm.max_tokens`.
ROLE_MAX_TOKENS: dict[str, int] = {"asker": 512, "answerer": 1024, "responder": 768, "critic": 1024}


class LLMConfig(BaseModel):
    """The resolved endpoint of one role: what the client is built from."""

    role: str
    preset: str | None = None
    base_url: str | None = None
    api_key: Key = None
    model: str | None = None
    temperature: float = 0.7
    timeout: float = 60.0
    max_retries: int = 4
    rpm: int = 0
    tpm: int = 0
    max_requests: int = 16
    max_tokens: int = 1024
    price_input_per_1k: float = 0.0
    price_output_per_1k: float = 0.0
    price_input_cached_per_1k: float | None = None  # None: cache hits cost the full input price
    currency: str = "¥"
    json_mode: JsonMode = "json_object"

    def require_endpoint(self) -> LLMConfig:
        """Raise one clear ConfigError when this role cannot reach any endpoint."""
        if not self.base_url or not self.model:
            raise ConfigError(
                f"no LLM endpoint configured for role '{self.role}': set ZAOSHU_PRESET "
                f"({'|'.join(PRESETS)}) and ZAOSHU_API_KEY, or ZAOSHU_BASE_URL + ZAOSHU_MODEL (see .env.example)"
            )
        preset = PRESETS.get(self.preset or "")
        if self.api_key is None and (preset is None or preset.needs_key) and not _is_local(self.base_url):
            hint = f" ({preset.key_hint})" if preset and preset.key_hint else ""
            raise ConfigError(f"no API key for role '{self.role}' at {self.base_url}: set ZAOSHU_API_KEY{hint}")
        return self

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Money for one call; `cached_tokens` of the input are priced at `price_input_cached_per_1k`.

        >>> LLMConfig(role="x", price_input_per_1k=2, price_input_cached_per_1k=0.2).cost(1000, 0, 600)
        0.92
        """
        cached_price = self.price_input_per_1k if self.price_input_cached_per_1k is None \
            else self.price_input_cached_per_1k
        cached = min(cached_tokens, input_tokens)
        return round(((input_tokens - cached) * self.price_input_per_1k + cached * cached_price
                      + output_tokens * self.price_output_per_1k) / 1000, 12)


def unpriced_warning(settings: Settings, roles: Iterable[str] = ROLES) -> str | None:
    """One line when a role uses a preset's endpoint with another model than the preset's and no price of
    its own: the preset's prices are its default model's, so that role's calls would count as nothing in
    the cost, the summary and a money `--budget`.

    >>> s = load_settings(yaml_data={"preset": "deepseek", "critic": {"model": "deepseek-reasoner"}}, env_file=None)
    >>> print(unpriced_warning(s))
    warning: no price for the critic's model deepseek-reasoner (the deepseek preset's prices are deepseek-chat's): its calls count as ¥0 in the cost and a money --budget; set ZAOSHU_CRITIC__PRICE_INPUT_PER_1K, ZAOSHU_CRITIC__PRICE_OUTPUT_PER_1K (and ZAOSHU_CRITIC__PRICE_INPUT_CACHED_PER_1K).
    >>> unpriced_warning(s, ["responder"]) is None
    True
    """
    lines = []
    for role in roles:
        cfg = settings.for_role(role)
        preset = PRESETS.get(cfg.preset or "")
        if preset is None or not (preset.price_input_per_1k or preset.price_output_per_1k) or \
                cfg.model == preset.model or cfg.price_input_per_1k or cfg.price_output_per_1k:
            continue
        env = f"ZAOSHU_{role.upper()}__PRICE"
        lines.append(f"warning: no price for the {role}'s model {cfg.model} (the {cfg.preset} preset's prices are "
                     f"{preset.model}'s): its calls count as {cfg.currency}0 in the cost and a money --budget; set "
                     f"{env}_INPUT_PER_1K, {env}_OUTPUT_PER_1K (and {env}_INPUT_CACHED_PER_1K).")
    return "\n".join(lines) or None


def _is_local(url: str) -> bool:
    return any(host in url for host in ("://localhost", "://127.", "://[::1]", "://0.0.0.0"))


class Settings(BaseSettings, LLMFields):
    """All of zaoshu's settings. Env prefix `ZAOSHU_`; role overrides as `ZAOSHU_CRITIC__MODEL`."""

    model_config = SettingsConfigDict(
        env_prefix="ZAOSHU_", env_nested_delimiter="__", env_file=".env", extra="ignore",
    )

    asker: LLMFields = Field(default_factory=LLMFields, description="Overrides for the question asker.")
    answerer: LLMFields = Field(default_factory=LLMFields, description="Overrides for the RAG answerer.")
    responder: LLMFields = Field(default_factory=LLMFields, description="Overrides for the persona responder.")
    critic: LLMFields = Field(default_factory=LLMFields, description="Overrides for the critic's LLM judge.")
    structured_attempts: int = Field(default=3, ge=1, description="Attempts to get valid JSON before recording a failure.")
    concurrency: int = Field(default=8, ge=1, description="Work items in flight at once (ZAOSHU_CONCURRENCY, --concurrency).")
    # Services beside the LLM, read here so that `.env` works for them as for everything else.
    embed: str | None = Field(default=None, description="Embeddings: 'provider' opts in to the preset's embeddings.")
    embed_model: str | None = Field(default=None, description="Embedding model (a name, a local path or openai:<model>).")
    embed_base_url: str | None = Field(default=None, description="OpenAI-compatible /v1/embeddings base URL.")
    embed_api_key: Key = Field(default=None, description="Key for the embeddings endpoint.")
    model_source: str | None = Field(default=None, description="Where models download from: huggingface | modelscope.")
    serper_api_key: Key = Field(
        default=None, validation_alias=AliasChoices("serper_api_key", "SERPER_API_KEY", "ZAOSHU_SERPER_API_KEY"),
        description="Serper web-search key (SERPER_API_KEY).")
    serper_base_url: str | None = Field(default=None, description="Serper base URL (ZAOSHU_SERPER_BASE_URL).")
    huixiangdou_timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for one HuixiangDou answer "
                                       "(ZAOSHU_HUIXIANGDOU_TIMEOUT); a local LLM behind it may need minutes.")

    def for_role(self, role: str) -> LLMConfig:
        """Merge: role override > shared fields > preset > defaults."""
        shared = LLMFields.model_validate(self.model_dump(include=set(LLMFields.model_fields)))
        override: LLMFields = getattr(self, role)
        merged: dict[str, Any] = {}
        for name in LLMFields.model_fields:
            value = getattr(override, name)
            merged[name] = value if value is not None else getattr(shared, name)
        preset = PRESETS.get(merged["preset"] or "")
        if merged["preset"] and preset is None:
            raise ConfigError(f"unknown preset '{merged['preset']}': choose one of {', '.join(PRESETS)}")
        if preset is not None:
            merged["base_url"] = merged["base_url"] or preset.base_url
            merged["model"] = merged["model"] or preset.model
            if merged["model"] == preset.model:  # the preset's prices are its default model's
                for name in PRICE_FIELDS:
                    if merged[name] is None:
                        merged[name] = getattr(preset, name)
        merged["max_tokens"] = merged["max_tokens"] or ROLE_MAX_TOKENS.get(role)
        return LLMConfig(role=role, **{k: v for k, v in merged.items() if v is not None})

    def masked_dump(self) -> dict[str, Any]:
        """Settings as plain data with every key masked: safe to print and to save."""
        data = self.model_dump(mode="json")
        for section in [data, *(data[r] for r in ROLES)]:
            for secret in ("api_key", "embed_api_key", "serper_api_key"):
                if section.get(secret):
                    section[secret] = "***"
        data["resolved"] = {r: _masked_config(self.for_role(r)) for r in ROLES}
        return data


def mask(key: SecretStr | None) -> str | None:
    """A set key prints as `***`: shows that a key is set, never any part of it."""
    return None if key is None else "***"


def _masked_config(cfg: LLMConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    data["api_key"] = mask(cfg.api_key)
    return data


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def load_settings(
    yaml_data: Mapping[str, Any] | None = None,
    cli: Mapping[str, Any] | None = None,
    env_file: str | None = ".env",
) -> Settings:
    """Resolve settings: CLI flags > environment / .env > recipe YAML (its `llm:` block) > defaults.

    Keys are read from the environment only — an `api_key` in YAML or a CLI flag is refused, so a
    key can never end up in a committed file.
    """
    from dotenv import dotenv_values

    # .env is read here once (a line it cannot parse warns once); the environment wins over it
    dotenv = dotenv_values(env_file) if env_file and os.path.isfile(env_file) else {}
    environ = {**dotenv, **os.environ}
    yaml_data = dict(yaml_data or {})
    for source, name in ((yaml_data, "recipe YAML"), (cli or {}, "CLI")):
        if _has_key(source):
            raise ConfigError(f"api_key found in the {name}: keys come only from the environment (ZAOSHU_API_KEY)")
    _refuse_renamed(environ)
    with _dotenv_warned():  # pydantic-settings reads .env again in both calls below
        merged = _deep_merge(_deep_merge(yaml_data, _settings_from_env(env_file)), cli or {})
        if not merged.get("api_key") and environ.get("OPENAI_API_KEY"):
            merged["api_key"] = environ["OPENAI_API_KEY"]
        if not merged.get("base_url") and not merged.get("preset") and environ.get("OPENAI_BASE_URL"):
            merged["base_url"] = environ["OPENAI_BASE_URL"]
        try:
            return Settings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(invalid(exc, "setting {name}")) from None


@contextmanager
def _dotenv_warned() -> Iterator[None]:
    """python-dotenv's warnings off: `load_settings` read .env first and warned about a line it cannot
    parse then, once; pydantic-settings rereads the file for each Settings it builds."""
    log = logging.getLogger("dotenv.main")
    was, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = was


def invalid(exc: ValidationError, where: str) -> str:
    """One line for the first error: `where` (formatted with the setting's `name`), the value and why.

    >>> try:
    ...     LLMFields(temperature="hot")
    ... except ValidationError as exc:
    ...     print(invalid(exc, "ZAOSHU_{NAME}"))
    ZAOSHU_TEMPERATURE='hot': Input should be a valid number, unable to parse string as a number
    """
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"])
    place = where.format(name=name, NAME="__".join(str(part).upper() for part in error["loc"]))
    return f"{place}={error['input']!r}: {pydantic_problem(error)}"


def _has_key(data: Mapping[str, Any]) -> bool:
    return bool(data.get("api_key")) or any(
        isinstance(v, Mapping) and v.get("api_key") for v in data.values()
    )


#: Names that meant two different things before and are no longer read.
RENAMED = {"ZAOSHU_MAX_CONCURRENCY": "ZAOSHU_CONCURRENCY (work items in flight) or ZAOSHU_MAX_REQUESTS "
                                     "(requests in flight per endpoint)"}


def _refuse_renamed(environ: Mapping[str, str | None]) -> None:
    for old, new in RENAMED.items():
        if old in environ:
            raise ConfigError(f"{old} is no longer read (it meant two things): use {new}")


def _settings_from_env(env_file: str | None) -> dict[str, Any]:
    """Only what the environment (and .env) actually set, so YAML values below it survive."""
    try:
        from_env = Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(invalid(exc, "ZAOSHU_{NAME}") + " (in the environment or .env)") from None
    data = from_env.model_dump(exclude_unset=True)
    for secret in ("api_key", "embed_api_key", "serper_api_key"):
        if getattr(from_env, secret) is not None:
            data[secret] = getattr(from_env, secret).get_secret_value()
    for role in ROLES:
        key = getattr(from_env, role).api_key
        if key is not None:
            data[role]["api_key"] = key.get_secret_value()
    return data
