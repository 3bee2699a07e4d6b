"""What can go wrong when calling an LLM endpoint, split by what the caller should do about it.

Fatal errors (`LLMFatalError`) stop a run at once: retrying cannot help. Transient errors are
retried inside the client with back-off; when the retries run out they surface as `LLMError`.
"""

from __future__ import annotations

from agents.errors import ZaoshuError


class LLMError(ZaoshuError):
    """A call failed after its retries. The item fails; the run goes on."""


class LLMFatalError(LLMError):
    """Retrying cannot help: stop the run cleanly, keep what is saved."""


class LLMAuthError(LLMFatalError):
    """401/403: the key is missing, wrong or lacks access. Never retried."""


class LLMUnreachable(LLMFatalError):
    """The endpoint refused or could not be connected to, even after retries."""


class LLMNotFound(LLMFatalError):
    """404: the base URL or the model name is wrong."""


class FormatRejected(LLMError):
    """400 (422, or llama-cpp-python's 500) naming `response_format`: the server does not accept this JSON
    mode (the client then falls back once to prompt-only instructions)."""


class LLMTimeout(LLMError):
    """Every attempt ran past the timeout."""


class LLMServerError(LLMError):
    """5xx (or a 429 / malformed body) on every attempt."""


class Transient(Exception):
    """Internal: one attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, *, retry_after: float | None = None, kind: str = "server"):
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind  # "rate_limit" | "server" | "timeout" | "connect" | "dropped" | "malformed"


def final_error(exc: Transient, where: str, attempts: int) -> LLMError:
    """Turn the last transient failure into the error a user reads."""
    text = f"{where}: {exc} (after {attempts} attempts)"
    if exc.kind == "connect":
        return LLMUnreachable(f"endpoint unreachable — {text}; is the server running and the base URL right?")
    if exc.kind == "timeout":
        return LLMTimeout(f"timed out — {text}; raise ZAOSHU_TIMEOUT or lower the concurrency")
    return LLMServerError(text)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds ('2', '0.5'); HTTP dates are rare on LLM APIs and read as unknown."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
