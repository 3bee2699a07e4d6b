"""Errors a user can act on. The CLI prints each as one red line and exits 1 (no traceback)."""


class ZaoshuError(Exception):
    """Base for every error whose message alone tells the user what went wrong and what to do."""


class ConfigError(ZaoshuError):
    """Settings are missing or invalid (e.g. no LLM endpoint configured)."""


class InputError(ZaoshuError):
    """A file, folder or argument the user gave cannot be used."""


class ServiceError(ZaoshuError):
    """An outside service (web search, HuixiangDou) failed for one item: that item is recorded as
    failed and retried on resume; the run goes on. `fatal` ones (a refused key) stop the run."""

    fatal = False


class ServiceAuthError(ServiceError):
    """The service refused the key or the configuration: retrying cannot help."""

    fatal = True
