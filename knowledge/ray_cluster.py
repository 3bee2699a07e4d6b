"""Join (or start) the Ray cluster for `--ray`, with a clear line instead of a long hang.

    ray, started_here = join_cluster("ray://10.0.0.5:10001")   # … ray.shutdown() if started_here

`--ray-address` takes `auto` (the cluster this machine belongs to), `local` (a new one here),
`ray://HOST:PORT` (Ray Client, port 10001 by default) or `HOST:PORT` (the head's GCS, port 6379).
Anything else is refused at once; a HOST:PORT that does not answer within `PROBE_S`, or answers but
not as gRPC (HTTP/2) does — the dashboard's port, a web server — is refused before Ray tries (Ray
itself retries an unreachable GCS for minutes, and a port that is not one for ~13 minutes). Used by the Ray runner
(graphs/ray_runner.py) and `zaoshu kb build --ray` (knowledge/ray_build.py).

>>> parse_address("ray://head.example:10001")
('ray://', 'head.example', 10001)
>>> parse_address("[::1]:6379")
('', '::1', 6379)
>>> parse_address("head.example")
Traceback (most recent call last):
...
agents.errors.InputError: --ray-address 'head.example': write auto, local, ray://HOST:PORT (Ray Client, port 10001) or HOST:PORT (the head's GCS, port 6379)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.errors import InputError

PROBE_S = 5.0
#: HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (the GCS, Ray Client) answers with
#: its own SETTINGS frame (byte 3, the frame type, is 4); a web server, a database or the dashboard does not.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_ADDRESS = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def parse_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a `ray://HOST:PORT` or `HOST:PORT` address; InputError for anything else."""
    m = _ADDRESS.fullmatch(address.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise InputError(f"--ray-address {address!r}: write auto, local, ray://HOST:PORT (Ray Client, port 10001) "
                         "or HOST:PORT (the head's GCS, port 6379)")
    return m.group(1) or "", m.group(2).strip("[]"), int(m.group(3))


def check_address(address: str | None, timeout: float = PROBE_S) -> None:
    """Refuse, in one line, an address that is malformed or does not answer."""
    if address is None or address in ("auto", "local"):
        return
    scheme, host, port = parse_address(address)
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        why = exc.strerror or str(exc) or exc.__class__.__name__
        raise InputError(f"cannot reach the Ray cluster at {address}: {why} "
                         f"(is `ray start --head` running there, and the port open?)") from None
    with conn:
        why = None if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") else _not_grpc(conn)
    if why:
        raise InputError(f"{address} is not a Ray cluster: {why} (the head's GCS port is 6379 by default, "
                         "Ray Client's 10001; the dashboard's 8265 is neither)")
    if scheme and importlib.util.find_spec("grpc") is None:
        raise InputError(f"--ray-address {address} uses Ray Client: pip install 'ray[client]'")


def _not_grpc(conn: socket.socket) -> str | None:
    """Why the server on `conn` is not a gRPC server, or None when it answers HTTP/2's preface as one does
    (with TLS, `RAY_USE_TLS=1`, the caller does not ask)."""
    head = b""
    try:
        conn.sendall(H2_PREFACE)
        while len(head) < 9 and (part := conn.recv(9 - len(head))):
            head += part
    except TimeoutError:
        return f"no answer within {conn.gettimeout():g} s"
    except OSError as exc:
        return exc.strerror or str(exc) or exc.__class__.__name__
    return None if len(head) == 9 and head[3] == 4 else "it answers, but not as a Ray cluster's gRPC port does"


def join_cluster(address: str | None) -> tuple[Any, bool]:
    """`(ray, started_here)`: Ray initialised on `address` (None: a local cluster unless one is up in
    this process). The caller shuts Ray down when `started_here`, and has called `check_address`
    before any work of its own (the runner in graphs.execute, `kb build --ray` in knowledge.ray_build)."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'zaoshu[ray]'") from None
    if ray.is_initialized():
        return ray, False
    if address not in (None, "auto", "local") and not parse_address(address)[0]:  # a GCS named outright
        refuse_without_token(ray, address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    except ConnectionError as exc:  # `auto` with no cluster running, a cluster that went away meanwhile
        cause = exc.__cause__  # an AuthenticationError, or a RuntimeError carrying its traceback as text
        if isinstance(cause, getattr(ray.exceptions, "AuthenticationError", ())) or "InvalidAuthToken" in str(cause):
            raise InputError(token_refused(address)) from None
        if address == "auto" and "Could not find any running Ray instance" in str(exc):
            raise InputError("--ray-address auto: no Ray cluster is running on this machine: start one with "
                             "`ray start --head`, or leave out --ray-address for a local cluster") from None
        raise InputError(f"--ray-address {address}: {str(exc).splitlines()[0]}") from None
    return ray, True


def refuse_without_token(ray: Any, address: str) -> None:
    """Ask the GCS at `address` once, before `ray.init`, whether it takes this machine's auth token (or its
    lack of one): ray.init asks 20 times, a second apart, each refusal a warning line on stderr."""
    try:
        from ray._raylet import GcsClient
    except ImportError:  # another Ray: ray.init says it, slowly
        return
    try:
        with quiet_stderr():  # Ray's C++ client logs the refusal it also raises
            GcsClient(address=address)
    except getattr(ray.exceptions, "AuthenticationError", ()):
        raise InputError(token_refused(address)) from None
    except Exception:  # noqa: BLE001 — anything else is ray.init's to say
        return


def token_refused(address: str) -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # Ray sends a token to a named address only then
        return (f"the Ray cluster at {address} asks for its auth token: set RAY_AUTH_MODE=token, with the "
                "cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    return (f"the Ray cluster at {address} refused the auth token this machine sent: put the cluster's own "
            "(its head's ~/.ray/auth_token) in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the length of a `with` (what a C++ library writes there too)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
