"""Fetch a model on first use: from Hugging Face (or the mirror in `HF_ENDPOINT`) or from ModelScope.

Every download starts with one short probe of the endpoint, so an unreachable hub costs a second or
two, not minutes of retries; the caller then falls back. A model already in the local cache is found
without any network.

>>> reachable("http://127.0.0.1:9", timeout=0.5)
False
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_DEFAULT_ENDPOINT = "https://www.modelscope.cn"


class FetchError(Exception):
    """str(exc) says why the model could not be fetched, in one line."""


def reachable(url: str, *, timeout: float) -> bool:
    """True when `url` answers anything at all (any HTTP status) within `timeout` seconds."""
    import httpx

    try:
        httpx.head(url, timeout=timeout, follow_redirects=False)
    except (httpx.HTTPError, OSError) as exc:
        log.debug("%s unreachable: %s", url, exc)
        return False
    return True


def cached_hub_path(repo: str, cache_dir: str | Path | None = None) -> str | None:
    """The local snapshot of a Hugging Face repo if it is already downloaded, else None (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo, local_files_only=True, cache_dir=_str(cache_dir))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError) as exc:
        log.debug("model %s not in the local cache: %s", repo, exc)
        return None


def from_hub(repo: str, *, endpoint: str = HF_DEFAULT_ENDPOINT, cache_dir: str | Path | None = None,
             timeout: float = 5.0) -> str:
    """Download `repo` from `endpoint` (huggingface.co or a mirror such as https://hf-mirror.com) into the
    Hugging Face cache, with huggingface_hub's progress bars; return the local folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    endpoint = endpoint.rstrip("/")
    if not reachable(endpoint, timeout=timeout):
        raise FetchError(f"{endpoint} is unreachable (set HF_ENDPOINT to a mirror, e.g. https://hf-mirror.com, "
                         f"or ZAOSHU_MODEL_SOURCE=modelscope)")
    log.info("downloading %s from %s", repo, endpoint)
    try:
        return snapshot_download(repo, endpoint=endpoint, cache_dir=_str(cache_dir), etag_timeout=timeout)
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ValueError) as exc:
        raise FetchError(f"downloading {repo} from {endpoint} failed: {_first_line(exc)}") from exc


def from_modelscope(repo: str, *, endpoint: str = MODELSCOPE_DEFAULT_ENDPOINT, cache_dir: str | Path | None = None,
                    timeout: float = 5.0) -> str:
    """Download `repo` with the `modelscope` package (pip install 'zaoshu[modelscope]'); return the folder."""
    try:
        from modelscope import snapshot_download
    except ImportError as exc:
        raise FetchError("ZAOSHU_MODEL_SOURCE=modelscope needs the modelscope package: "
                         "pip install 'zaoshu[modelscope]'") from exc
    endpoint = endpoint.rstrip("/")
    if not reachable(endpoint, timeout=timeout):
        raise FetchError(f"{endpoint} is unreachable")
    log.info("downloading %s from ModelScope (%s)", repo, endpoint)
    try:
        return str(snapshot_download(repo, cache_dir=_str(cache_dir)))
    except Exception as exc:  # modelscope raises its own, undocumented exception types; we fall back on any
        raise FetchError(f"downloading {repo} from ModelScope failed: {_first_line(exc)}") from exc


def _str(path: str | Path | None) -> str | None:
    return str(Path(path).expanduser()) if path else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
