"""Starting a server: every check before the first request, and uvicorn itself.

A bad option is an ``InputError`` (one line on stderr, exit code 2, from the CLI) before the
server accepts anything, never a server that starts and then fails every request: the address
(a port out of range, a host that does not resolve, a port in use), the device, the dtype, the
record file. The listening socket is made here, before the model loads, so that a port in use
fails at once rather than after minutes of loading; uvicorn then serves on that socket.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from prmkit.errors import InputError
from prmkit.models import DTYPES

# Connections the kernel holds while the server is busy: far more than the clients a test or a
# pipeline opens at once (the old server's 5 reset a third of 50 concurrent clients)
BACKLOG = 2048
STARTUP_TIMEOUT_S = 30


def listening_socket(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise InputError(f"{port} is not a port (0 to 65535; 0 picks a free one)", field="port")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, ValueError) as e:
        raise InputError(f"cannot resolve the host {host!r} ({e})", field="host") from None
    sock = socket.socket(family, kind, proto)
    try:
        # a restart may bind while the last run's connections linger (TIME_WAIT); a port another
        # server listens on still fails
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        in_use = e.errno == errno.EADDRINUSE
        raise InputError(f"cannot listen on {host}:{port}: "
                         f"{'the port is in use' if in_use else e.strerror}",
                         field="port" if in_use else "host") from None
    return sock


def check_device(device: str) -> None:
    """``auto``, ``cpu``, or a CUDA device this machine has (``cuda``, ``cuda:N``)."""
    if device in ("auto", "cpu"):
        return
    cuda = re.fullmatch(r"cuda(?::(\d+))?", device)
    if cuda is None:
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N",
                         field="device")
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise InputError(f"{device}: this machine has no CUDA device (torch "
                         f"{torch.__version__} sees none)", field="device")
    if int(cuda.group(1) or 0) >= count:
        raise InputError(f"{device}: this machine has {count} CUDA device(s)", field="device")


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}",
                         field="dtype")


def check_record_file(path: str | Path | None) -> Path | None:
    """A file the server can append to (made and removed again when it is new, so that a
    server that is sent nothing leaves nothing)."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder; the record is a JSON-lines file", path=path,
                         field="record")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as e:
        raise InputError(f"cannot write here ({e.strerror})", path=path, field="record") from None
    if not existed:
        path.unlink()
    return path


def log_requests_to_stderr() -> None:
    """The server's log (one line a request, warnings, errors) on stderr, timestamped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name, level in (("prmkit.serve", logging.INFO), ("uvicorn.error", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def uvicorn_server(app, *, max_connections: int) -> uvicorn.Server:
    """uvicorn for one process: HTTP/1.1 (h11), no websockets or lifespan, no access log
    (``RequestLog`` writes one without bodies); ``max_connections`` bounds the requests handled
    at once (uvicorn answers 503 beyond), so that memory stays bounded under a flood."""
    config = uvicorn.Config(app, http="h11", ws="none", lifespan="off", loop="asyncio",
                            log_config=None, log_level="warning", access_log=False,
                            backlog=BACKLOG, limit_concurrency=max_connections,
                            timeout_keep_alive=5, timeout_graceful_shutdown=5,
                            server_header=False)
    return uvicorn.Server(config)


class BackgroundServer:
    """A server running in a thread of this process (tests, recipes with stand-in models).
    ``shutdown`` stops it; ``server_close`` closes its socket (both, as ``http.server``'s)."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket,
                 on_stop: Callable[[], None] = lambda: None):
        self._server, self._sock, self._on_stop = server, sock, on_stop
        self.server_port = sock.getsockname()[1]
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name="prmkit-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def shutdown(self) -> None:
        self._on_stop()  # first: running work is cancelled, so its requests end at once
        self._server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT_S)

    def server_close(self) -> None:
        self._sock.close()


# --- one way to run any prmkit server ------------------------------------------------------------

def _start(make_state: Callable, host: str, port: int, connections_per_request: int = 4):
    """The port is taken first, then the model loaded (``make_state()``: the server's state,
    with ``app()``, ``close()`` and its ``queue``): a bad address fails before minutes of
    loading, and clients that connect while the model loads wait for it."""
    sock = listening_socket(host, port)
    try:
        state = make_state()
    except BaseException:
        sock.close()
        raise
    # room for every queued request, the clients refused with a 503, and idle keep-alives;
    # beyond, uvicorn answers 503 itself before reading anything
    max_connections = max(256, connections_per_request * state.queue.capacity)
    return state, sock, uvicorn_server(state.app(), max_connections=max_connections)


def run_in_background(make_state: Callable, host: str, port: int, *,
                      connections_per_request: int = 4) -> tuple[BackgroundServer, str]:
    """A server in a thread of this process (port 0: a free one), and its base URL.
    ``connections_per_request``: connections uvicorn holds for each request that may wait."""
    state, sock, server = _start(make_state, host, port, connections_per_request)
    try:
        running = BackgroundServer(server, sock, on_stop=state.close)
    except BaseException:
        state.close()
        sock.close()
        raise
    return running, f"http://{host}:{running.server_port}/v1"


def run_until_interrupted(make_state: Callable, host: str, port: int, *,
                          announce: Callable[[object, int], None],
                          connections_per_request: int = 4) -> None:
    """Serve until Ctrl-C, one log line a request on stderr; ``announce(state, port)`` says
    where, once the model is loaded."""
    log_requests_to_stderr()
    state, sock, server = _start(make_state, host, port, connections_per_request)
    try:
        announce(state, sock.getsockname()[1])
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it stopped on: the way to stop
        pass
    finally:
        state.close()
        sock.close()
