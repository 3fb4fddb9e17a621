"""The reward server: one PRM over HTTP (``prmkit serve --prm PRM``), for search and RL loops
that run elsewhere.

    POST /v1/step_scores   ``{"problem": str, "steps": [str]}``, or ``{"solutions": [...]}``
                           of those: laid out in the PRM's own format by prmkit (as ``prmkit
                           score`` lays them out) -> ``{"step_scores": [...]}`` (a list of
                           them for ``solutions``); a step past the PRM's context is null
    POST /pooling          vLLM's pooling API as ``vllm serve`` answers it for
                           Qwen2.5-Math-PRM (step pooling): ``input``, a text or a list of
                           texts laid out by the client (for Qwen2.5-Math-PRM, the chat
                           template with ``<extra_0>`` after each step), or ``messages`` that
                           the PRM's chat template renders -> for each input, the
                           ``[negative, positive]`` probabilities at every separator token
    GET  /v1/models, GET /health

**Dynamic batching.** Requests wait in one bounded queue for the thread that owns the PRM; the
thread takes every request waiting (up to ``max_batch``) and scores all their solutions in
forward passes grouped by length, as ``prmkit score`` does. Requests that arrive together share
passes; a lone request is scored at once. A request is laid out and tokenized on a side thread
before it queues, so the PRM's thread only runs the model. ``/health`` reports the batches
formed (``batches``, ``mean_batch_requests``).

**Limits.** A body of at most ``max_body_bytes`` (413 beyond), at most ``max_solutions`` a
request (413), every field checked (400, naming it), at most ``max_queue`` requests waiting (503
beyond, at once), a client that disconnects leaves the queue; one log line a request, never its
body (``prmkit.serving.http``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from prmkit.errors import InputError
from prmkit.prm.checks import check_prm
from prmkit.prm.model import load_prm
from prmkit.prm.score import encode, encode_prefixes, score_encoded
from prmkit.serving.http import (
    ApiError,
    json_type,
    make_app,
    overloaded,
    read_json_object,
    result_unless_gone,
    short,
    submit,
)
from prmkit.serving.startup import (
    BackgroundServer,
    check_device,
    check_dtype,
    run_in_background,
    run_until_interrupted,
)
from prmkit.serving.work import Job, WorkQueue
from prmkit.steps import StepTokens

MAX_BODY_BYTES = 8 * 2**20      # 256 solutions of a long MATH problem's steps
MAX_SOLUTIONS = 256             # a request's solutions (or pooling inputs)
BODY_TIMEOUT_S = 30


@dataclass
class Unit:
    """One solution (or pooling input) of a request, tokenized, and how its answer is made:

    steps     one text, read at every kept step's separator; the steps past the context null
    prefixes  an outcome model's: one text a step prefix, each read at its end
    pooling   one text laid out by the client: [negative, positive] at every separator
    """
    kind: str
    encoded: list[StepTokens]
    steps: int

    def answer(self, scores: list[list[float]]):
        if self.kind == "pooling":
            return [[1.0 - p, p] for p in scores[0]]
        row = scores[0] if self.kind == "steps" else [s[0] for s in scores]
        return row + [None] * (self.steps - len(row))


class RewardServer:
    """The server's state: the PRM (loaded now: a folder that cannot load fails at startup),
    the queue in front of it, and what batches it formed."""

    def __init__(self, prm: str, *, name: str | None = None, model_format: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 max_tokens: int = 32768, max_batch: int = 64, max_queue: int = 256,
                 max_solutions: int = MAX_SOLUTIONS, max_body_bytes: int = MAX_BODY_BYTES):
        for option, value in (("batch_size", batch_size), ("max_tokens", max_tokens),
                              ("max_batch", max_batch), ("max_queue", max_queue),
                              ("max_solutions", max_solutions),
                              ("max_body_bytes", max_body_bytes)):
            if value < 1:
                raise InputError(f"{value}: must be at least 1", field=option)
        check_device(device)
        check_dtype(dtype)
        check_prm(prm, model_format)
        self.prm = load_prm(prm, fmt=model_format, dtype=dtype, device=device)
        self.name = name or Path(prm).name
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.max_solutions, self.max_body_bytes = max_solutions, max_body_bytes
        self.context = getattr(self.prm.module.config, "max_position_embeddings", None)
        # requests are laid out and tokenized beside the PRM's thread, with a tokenizer of
        # their own: one tokenizer object is not safe to share between threads
        self._layout = copy.copy(self.prm)
        self._layout.tokenizer = copy.deepcopy(self.prm.tokenizer)
        self._layout_thread = ThreadPoolExecutor(1, thread_name_prefix="prmkit-layout")
        self.batches = self.batched_requests = 0
        self.queue = WorkQueue(self._score, capacity=max_queue, batch=max_batch,
                               name="prmkit-prm")
        self.queue.start()

    def close(self) -> None:
        self.queue.stop()
        self._layout_thread.shutdown(wait=False, cancel_futures=True)

    def app(self):
        return make_app([
            Route("/v1/step_scores", self._step_scores, methods=["POST"]),
            Route("/pooling", self._pooling, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
        ])

    # -- routes (the event loop) -------------------------------------------------------------

    async def _models(self, request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": self.name, "object": "model", "created": 0, "owned_by": "prmkit"}]})

    async def _health(self, request: Request):
        mean = self.batched_requests / self.batches if self.batches else None
        return JSONResponse({"waiting": self.queue.waiting, "running": self.queue.running,
                             "batches": self.batches, "mean_batch_requests": mean})

    async def _step_scores(self, request: Request):
        body = await read_json_object(request, limit=self.max_body_bytes, timeout=BODY_TIMEOUT_S)
        many = "solutions" in body
        solutions = step_scores_request(body, self.max_solutions)
        del body
        units = await self._prepared(self._solution_units, solutions)
        scores = await self._scored(request, units)
        return JSONResponse({"model": self.name,
                             "step_scores": scores if many else scores[0]})

    async def _pooling(self, request: Request):
        body = await read_json_object(request, limit=self.max_body_bytes, timeout=BODY_TIMEOUT_S)
        if self.prm.format.per_prefix:
            raise ApiError(400, "an outcome model reads every step prefix on its own: ask "
                           "/v1/step_scores", param="input")
        if getattr(self.prm.module, "readout", None) == "likelihood":
            # it reads each step's own tokens, which a text laid out elsewhere does not mark
            raise ApiError(400, "this PRM reads the likelihood of each step's tokens: ask "
                           "/v1/step_scores, which lays the steps out itself", param="input")
        texts, rendered_chat = pooling_request(body, self.name, self.max_solutions)
        special = body.get("add_special_tokens", True) is not False
        del body
        units = await self._prepared(self._pooling_units, texts, rendered_chat, special)
        data = await self._scored(request, units)
        tokens = sum(len(u.encoded[0].input_ids) for u in units)
        return JSONResponse({
            "id": f"pool-{time.time_ns():x}", "object": "list", "created": int(time.time()),
            "model": self.name,
            "data": [{"index": i, "object": "pooling", "data": d} for i, d in enumerate(data)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                      "completion_tokens": 0}})

    async def _prepared(self, lay_out, *args) -> list[Unit]:
        if self.queue.full:  # refused at once, not after the requests waiting to be laid out
            raise overloaded(self.queue)
        return await asyncio.get_running_loop().run_in_executor(
            self._layout_thread, lay_out, *args)

    async def _scored(self, request: Request, units: list[Unit]) -> list:
        job = Job(units)
        submit(self.queue, job)
        return await result_unless_gone(request, self.queue, job)

    # -- layout (the layout thread) ----------------------------------------------------------

    def _solution_units(self, solutions: list[tuple[str, list[str]]]) -> list[Unit]:
        prm, units = self._layout, []
        for problem, steps in solutions:
            try:
                if prm.format.per_prefix:
                    units.append(Unit("prefixes", encode_prefixes(prm, problem, steps),
                                      len(steps)))
                else:
                    units.append(Unit("steps", [encode(prm, problem, steps)], len(steps)))
            except InputError as e:  # the format's own refusal (no chat template, ...)
                raise ApiError(400, e.message, param="steps") from None
        return units

    def _pooling_units(self, texts: list, rendered_chat: bool, special: bool) -> list[Unit]:
        tokenizer, separator = self._layout.tokenizer, self._layout.separator_id
        units = []
        for i, text in enumerate(texts):
            if rendered_chat:
                text = self._render(text)
            ids = text if isinstance(text, list) else \
                tokenizer(text, add_special_tokens=special)["input_ids"]
            if not ids:
                raise ApiError(400, f"input {i} is empty", param="input")
            if self.context is not None and len(ids) > self.context:
                raise ApiError(400, f"input {i} has {len(ids)} tokens; the PRM's context is "
                               f"{self.context}", param="input")
            if any(not 0 <= t < len(tokenizer) for t in ids):
                raise ApiError(400, f"input {i} holds a token id outside the vocabulary "
                               f"(0 to {len(tokenizer) - 1})", param="input")
            positions = [p for p, t in enumerate(ids) if t == separator]
            units.append(Unit("pooling", [StepTokens(list(ids), positions, 0)],
                              len(positions)))
        return units

    def _render(self, messages: list[dict]) -> str:
        tokenizer = self._layout.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ApiError(400, "the PRM's tokenizer has no chat template: send input",
                           param="messages")
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=False)
        except (TemplateError, ValueError) as e:
            raise ApiError(400, f"the chat template refused these messages: "
                           f"{str(e).splitlines()[0][:200]}", param="messages") from None

    # -- scoring (the PRM's thread) ----------------------------------------------------------

    def _score(self, jobs: list[Job]) -> None:
        """Every waiting request's solutions in one go: forward passes grouped by length."""
        live = []
        for job in jobs:
            try:
                job.check()
                live.append(job)
            except Exception as e:  # gone: its client left while it waited
                job.fail(e)
        if not live:
            return
        self.batches += 1
        self.batched_requests += len(live)
        try:
            self._score_together(live)
        except Exception:
            if len(live) == 1:
                raise
            # one request's failure (memory, a broken input) is its own: the others are
            # scored again, each alone
            for job in live:
                try:
                    self._score_together([job])
                except Exception as e:
                    job.fail(e)

    def _score_together(self, jobs: list[Job]) -> None:
        flat = [e for job in jobs for unit in job.payload for e in unit.encoded]
        scored = iter(score_encoded(self.prm, flat, batch_size=self.batch_size,
                                    max_tokens=self.max_tokens))
        answers = [[unit.answer([next(scored) for _ in unit.encoded]) for unit in job.payload]
                   for job in jobs]
        for job, answer in zip(jobs, answers):
            job.succeed(answer)


# --- requests: every field checked, a 400 naming it otherwise ------------------------------------

def _text(value, param: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"'{param}' must be a string, not {json_type(value)}", param=param)
    return value


def _solution(value, param: str) -> tuple[str, list[str]]:
    if not isinstance(value, dict):
        raise ApiError(400, f"'{param}' must be an object with problem and steps, not "
                       f"{json_type(value)}", param=param)
    unknown = set(value) - {"problem", "steps", "id"}
    if unknown:
        raise ApiError(400, f"unknown field {short(sorted(unknown)[0])!r} in '{param}'",
                       param=param)
    problem = _text(value.get("problem"), f"{param}.problem")
    steps = value.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ApiError(400, f"'{param}.steps' must be a non-empty list of strings",
                       param=f"{param}.steps")
    return problem, [_text(s, f"{param}.steps[{i}]") for i, s in enumerate(steps)]


def step_scores_request(body: dict, max_solutions: int) -> list[tuple[str, list[str]]]:
    """(problem, steps) of each solution a step-scores request asks about."""
    if "solutions" not in body:
        return [_solution(body, "body")]
    unknown = set(body) - {"solutions", "model"}
    if unknown:
        raise ApiError(400, f"unknown field {short(sorted(unknown)[0])!r} beside 'solutions'",
                       param=sorted(unknown)[0])
    solutions = body["solutions"]
    if not isinstance(solutions, list) or not solutions:
        raise ApiError(400, "'solutions' must be a non-empty list", param="solutions")
    if len(solutions) > max_solutions:
        raise ApiError(413, f"{len(solutions)} solutions; at most {max_solutions} a request",
                       param="solutions")
    return [_solution(s, f"solutions[{i}]") for i, s in enumerate(solutions)]


# what vLLM's pooling request holds; those that change nothing here are accepted and ignored
POOLING_FIELDS = {"model", "input", "messages", "encoding_format", "user", "truncate_prompt_tokens",
                  "use_activation", "softmax", "priority", "add_special_tokens", "request_id",
                  "task", "dimensions", "normalize", "mm_processor_kwargs"}


def pooling_request(body: dict, served: str, max_inputs: int) -> tuple[list, bool]:
    """The inputs of a pooling request (texts or token-id lists; or messages, to render), and
    whether they are messages. What vLLM accepts and this server cannot honour is refused."""
    unknown = set(body) - POOLING_FIELDS
    if unknown:
        raise ApiError(400, f"unknown field {short(sorted(unknown)[0])!r}",
                       param=sorted(unknown)[0])
    model = body.get("model", served)
    if model != served:
        raise ApiError(404, f"the model {short(model)!r} is not served here (this server "
                       f"serves {served!r})", param="model", code="model_not_found")
    if body.get("encoding_format", "float") != "float":
        raise ApiError(400, "only encoding_format 'float' is served", param="encoding_format")
    if body.get("truncate_prompt_tokens") is not None:
        raise ApiError(400, "truncation would cut steps off: send what fits",
                       param="truncate_prompt_tokens")
    if body.get("use_activation", body.get("softmax")) not in (None, True):
        raise ApiError(400, "this server answers probabilities only", param="use_activation")
    if ("input" in body) == ("messages" in body):
        raise ApiError(400, "give exactly one of 'input' and 'messages'", param="input")
    if "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str) for m in messages):
            raise ApiError(400, "'messages' must be a non-empty list of {role, content} "
                           "strings", param="messages")
        return [messages], True
    value = body["input"]
    inputs = value if isinstance(value, list) and value and not _is_ids(value) else [value]
    if len(inputs) > max_inputs:
        raise ApiError(413, f"{len(inputs)} inputs; at most {max_inputs} a request",
                       param="input")
    for i, item in enumerate(inputs):
        if not (isinstance(item, str) or _is_ids(item)):
            raise ApiError(400, f"input {i} must be a string or a list of token ids, not "
                           f"{json_type(item)}", param="input")
    return inputs, False


def _is_ids(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value)


# --- running it ----------------------------------------------------------------------------------

def serve_prm_in_background(prm: str, *, host: str = "127.0.0.1", port: int = 0,
                            **options) -> tuple[BackgroundServer, str]:
    """Start a reward server in a thread (port 0: a free one); returns it and its base URL
    (``.../v1``). ``options`` are ``RewardServer``'s."""
    return run_in_background(lambda: RewardServer(prm, **options), host, port,
                             connections_per_request=2)  # see serve_prm


def serve_prm(prm: str, *, host: str = "127.0.0.1", port: int = 8000, announce=print,
              **options) -> None:
    """Serve until interrupted (Ctrl-C), one log line a request on stderr."""
    def where(state, at: int) -> None:
        announce(f"serving the PRM {prm} as {state.name!r} at http://{host}:{at} "
                 "(POST /v1/step_scores, POST /pooling; Ctrl-C stops)")
    # a waiting request holds a parsed body of up to max_body_bytes: fewer connections
    run_until_interrupted(lambda: RewardServer(prm, **options), host, port, announce=where,
                          connections_per_request=2)
