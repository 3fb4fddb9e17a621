"""The HTTP pieces every prmkit server shares (Starlette on uvicorn, as vLLM is built).

- ``ApiError``: a refused request as its status and JSON error, in OpenAI's shape
  ``{"error": {"message", "type", "param", "code"}}``; ``make_app`` answers every one of them
  (and unknown routes, wrong methods, and bugs) in that shape, never with a dropped connection.
- ``read_json_object``: a body of at most ``limit`` bytes, counted as it arrives (a declared
  Content-Length is not trusted, nor allocated), parsed as one JSON object; deep nesting, bad
  UTF-8, NaN and the like are a 400.
- ``result_unless_gone`` / ``cancel_if_unfinished``: a request waits for its job while watching
  its connection; a client that disconnects cancels its job, queued or running.
- ``RequestLog``: one log line a request (client, method, path, status, time), never a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from prmkit.serving.work import Cancelled, Job, QueueFull, WorkQueue

log = logging.getLogger("prmkit.serve")

ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error",
               405: "invalid_request_error", 408: "invalid_request_error",
               413: "invalid_request_error", 500: "server_error", 503: "service_unavailable"}
# a client that sent too much is drained this far (and discarded), so that it reads its 413
# rather than a reset while it is still sending; beyond, the connection is closed
DRAIN_BYTES = 16 * 2**20
# the rest of a refused body is never read, so its connection cannot carry another request:
# closed after the reply, rather than held until the keep-alive timeout
UNREAD_BODY = {"Connection": "close"}
CLIENT_GONE = 499  # nginx's status for "the client closed the connection": only in the log


class ApiError(Exception):
    """A request the server refuses: the status and the JSON error the client gets."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def payload(self) -> dict:
        return {"error": {"message": self.message,
                          "type": ERROR_TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.payload(), status_code=self.status, headers=self.headers)


class ClientGone(Exception):
    """The client disconnected before its answer: there is nobody left to answer."""


def overloaded(queue: WorkQueue) -> ApiError:
    return ApiError(503, f"the server is busy: {queue.capacity} requests are waiting already; "
                    "retry later", headers={"Retry-After": "1"})


def short(value, width: int = 60) -> str:
    """A value as an error message may quote it: never more than ``width`` characters, so that
    a reply never echoes a large piece of what a client sent."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[:width] + "..."


def json_type(value) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- bodies -------------------------------------------------------------------------------------

async def read_json_object(request: Request, *, limit: int, timeout: float) -> dict:
    """The body as a JSON object; at most ``limit`` bytes are kept (413 beyond), and the whole
    body must arrive within ``timeout`` seconds (408), so that a slow client holds nothing."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():  # h11 refuses most such already
        raise ApiError(400, "Content-Length is not a number")
    if declared is not None and (len(declared) > 12 or int(declared) > DRAIN_BYTES):
        raise _too_large(limit)  # not read at all: answered now, the connection then closed
    try:
        raw = await asyncio.wait_for(_read_at_most(request, limit), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout:g} s",
                       headers=UNREAD_BODY) from None
    return parse_json_object(raw)


async def _read_at_most(request: Request, limit: int) -> bytes:
    body, seen = bytearray(), 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen <= limit:
            body += chunk
        elif seen > DRAIN_BYTES:
            break
    if seen > limit:
        raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the body is larger than this server's limit of {limit} bytes",
                    headers=UNREAD_BODY)


def parse_json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        raise ApiError(400, "the body is not a request: its JSON nests too deeply") from None
    except ValueError as e:  # bad JSON or UTF-8, NaN, an integer of thousands of digits
        raise ApiError(400, f"the body is not valid JSON ({short(str(e), 120)})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not {json_type(body)}")
    return body


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


# -- waiting for work ---------------------------------------------------------------------------

def submit(queue: WorkQueue, job: Job) -> None:
    try:
        queue.submit(job)
    except QueueFull:
        raise overloaded(queue) from None


async def result_unless_gone(request: Request, queue: WorkQueue, job: Job):
    """The job's result once its worker has it. If the client disconnects first, its job is
    cancelled (dropped from the queue, or stopped at its next step) and ``ClientGone`` raised;
    the job's own failure is raised as the ``ApiError`` the client gets."""
    outcome = asyncio.ensure_future(job.outcome())
    gone = asyncio.ensure_future(_disconnected(request))
    with cancel_if_unfinished(queue, job):
        try:
            done, _ = await asyncio.wait({outcome, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not outcome.done():
                outcome.cancel()
        if outcome not in done:
            raise ClientGone()
        try:
            return outcome.result()
        except Exception as e:
            raise job_error(e) from None


@contextlib.contextmanager
def cancel_if_unfinished(queue: WorkQueue, job: Job) -> Iterator[None]:
    """Whatever ends a response before its job (the client gone, the server stopping)
    cancels the job, so that no work runs for nobody."""
    try:
        yield
    finally:
        if not job.settled:
            queue.cancel(job)


async def _disconnected(request: Request) -> None:
    # once the body is read, the server's next message for this request is the disconnect
    while (await request.receive())["type"] != "http.disconnect":
        pass


def job_error(error: BaseException) -> ApiError:
    """What the client hears of a job that failed."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, Cancelled):  # not the client's doing: the server is stopping
        return ApiError(503, "the server is shutting down")
    return ApiError(500, "internal error (the server's log has the details)")


# -- the application ----------------------------------------------------------------------------

def make_app(routes: list[Route]) -> Starlette:
    """A Starlette app whose every error reply is JSON, with one log line a request."""
    handlers = {ApiError: _api_error, HTTPException: _http_error,
                ClientGone: _client_gone, ClientDisconnect: _client_gone}
    return Starlette(routes=routes, exception_handlers=handlers,
                     middleware=[Middleware(RequestLog)])


async def _api_error(request: Request, error: ApiError) -> Response:
    return error.response()


async def _http_error(request: Request, error: HTTPException) -> Response:
    # the router's own refusals: no such route (404), a wrong method (405)
    message = {404: f"no route {short(request.url.path)}",
               405: f"{request.method} is not allowed on {short(request.url.path)}"}
    return ApiError(error.status_code, message.get(error.status_code, str(error.detail)),
                    headers=dict(error.headers or {})).response()


async def _client_gone(request: Request, error: Exception) -> Response:
    return Response(status_code=CLIENT_GONE)  # never sent: the connection is closed


class RequestLog:
    """ASGI middleware: one line a request in the log, never its body; a bug in a handler is
    logged with its traceback and answered with a JSON 500 rather than a dropped connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def noting_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], _printable(scope["path"]))
            if status is None:
                await job_error(RuntimeError()).response()(scope, receive, noting_status)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s:%s %s %s %s %.0f ms", client[0], client[1], scope["method"],
                     _printable(scope["path"]), status or CLIENT_GONE,
                     1000 * (time.perf_counter() - started))


def _printable(path: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in short(path, 200))
