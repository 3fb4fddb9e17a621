"""OpenAI's completions and chat completions: what a request may hold, and what a reply is.

Every field is checked with OpenAI's own bounds (and the server's limits on ``n`` and
``max_tokens``) before any work is queued; a request that breaks one gets a 400 naming the field
(``param``), never a silent repair: ``n: 2.7`` is not two completions, ``max_tokens: 0`` is not
"the default". Parameters OpenAI has and this server does not implement are accepted at their
neutral value (clients often send defaults explicitly) and refused otherwise; unknown ones are
refused, as OpenAI does.

Beyond OpenAI, as vLLM and SGLang: ``top_k`` on both APIs (an integer; -1 or 0: off, k: the
k most likely tokens), and ``add_generation_prompt`` and ``continue_final_message`` on the chat
API (a partial assistant message continued where it stops). Text content parts
(``[{"type": "text", "text": ...}]``) are joined with newlines, as vLLM joins them; other parts
(images, audio, files) are refused: the model reads text only.

A request without ``seed`` uses seed 0, so that equal requests get equal answers (OpenAI draws a
random one); prmkit's clients always send theirs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prmkit.backends.base import Completion, SamplingParams
from prmkit.serving.http import ApiError, json_type, short

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_STRINGS = 4            # OpenAI's limit
SEED_RANGE = (-2**63, 2**63 - 1)

COMMON_FIELDS = {"model", "n", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop",
                 "stream", "stream_options", "user"}
TOP_K_MAX = 2**31 - 1           # any k past the vocabulary keeps every token
COMPLETION_FIELDS = COMMON_FIELDS | {"prompt"}
CHAT_FIELDS = COMMON_FIELDS | {"messages", "max_completion_tokens", "add_generation_prompt",
                               "continue_final_message"}
# OpenAI parameters not implemented here, with the values that ask for nothing (null always does)
NEUTRAL = {"frequency_penalty": (0,), "presence_penalty": (0,), "logprobs": (False, 0),
           "top_logprobs": (0,), "echo": (False,), "best_of": (1,), "logit_bias": ({},),
           "suffix": ("",), "tools": ([],), "tool_choice": ("none",),
           "parallel_tool_calls": (True, False), "response_format": ({"type": "text"},)}


@dataclass(frozen=True)
class Bounds:
    """The server's limits on what one request may ask for (--max-n, --max-tokens)."""
    max_n: int = 16
    max_tokens: int = 2048
    default_tokens: int = 512  # what a request without max_tokens gets (at most max_tokens)


@dataclass(frozen=True)
class GenerationRequest:
    """A checked request: the text to continue (a prompt, or messages to template) and how."""
    chat: bool
    params: SamplingParams
    prompt: str | None = None                    # completions
    messages: tuple[dict, ...] = ()              # chat: {"role", "content": str}
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    stream: bool = False
    include_usage: bool = False                  # stream_options.include_usage

    @property
    def api(self) -> str:
        return "chat" if self.chat else "completions"


def completion_request(body: dict, *, served: str, bounds: Bounds) -> GenerationRequest:
    _check_fields(body, COMPLETION_FIELDS)
    _check_model(body, served)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise _invalid("prompt", f"must be a string, not {json_type(prompt)}")
    stream, usage = _streaming(body)
    return GenerationRequest(chat=False, params=_sampling(body, bounds, "max_tokens"),
                             prompt=prompt, stream=stream, include_usage=usage)


def chat_request(body: dict, *, served: str, bounds: Bounds) -> GenerationRequest:
    _check_fields(body, CHAT_FIELDS)
    _check_model(body, served)
    messages = _messages(body.get("messages"))
    go_on = _boolean(body, "continue_final_message", False)
    open_turn = _boolean(body, "add_generation_prompt", not go_on)
    if go_on and open_turn:
        raise _invalid("add_generation_prompt", "cannot be true with continue_final_message: "
                       "the final message is continued, no new turn is opened")
    if go_on and messages[-1]["role"] != "assistant":
        raise _invalid("continue_final_message", "needs an assistant message last, to continue")
    limit_field = "max_completion_tokens" if body.get("max_completion_tokens") is not None \
        else "max_tokens"
    stream, usage = _streaming(body)
    return GenerationRequest(chat=True, params=_sampling(body, bounds, limit_field),
                             messages=messages, add_generation_prompt=open_turn,
                             continue_final_message=go_on, stream=stream, include_usage=usage)


# -- replies ------------------------------------------------------------------------------------

def reply(request: GenerationRequest, completions: Sequence[Completion], *, model: str,
          prompt_tokens: int) -> dict:
    """The whole answer of a request that does not stream."""
    choices = []
    for i, c in enumerate(completions):
        if request.chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": c.text},
                            "logprobs": None, "finish_reason": c.finish_reason})
        else:
            choices.append({"index": i, "text": c.text, "logprobs": None,
                            "finish_reason": c.finish_reason})
    return {"id": _new_id(request), "object": "chat.completion" if request.chat
            else "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": _usage(prompt_tokens, completions)}


class StreamReply:
    """The server-sent events of a streamed answer, in OpenAI's chunk shapes: (chat) a first
    chunk opening each choice's assistant message, then text as it comes, then each choice's
    finish reason, the usage when asked for, and ``[DONE]``."""

    def __init__(self, request: GenerationRequest, *, model: str, prompt_tokens: int):
        self.request, self.model, self.prompt_tokens = request, model, prompt_tokens
        self.id, self.created = _new_id(request), int(time.time())

    def opening(self) -> str:
        if not self.request.chat:
            return ""
        return "".join(self._event([self._choice(i, {"role": "assistant", "content": ""})])
                       for i in range(self.request.params.n))

    def text(self, index: int, text: str) -> str:
        delta = {"content": text} if self.request.chat else text
        return self._event([self._choice(index, delta)])

    def closing(self, completions: Sequence[Completion]) -> str:
        events = [self._event([self._choice(i, {} if self.request.chat else "", c.finish_reason)])
                  for i, c in enumerate(completions)]
        if self.request.include_usage:
            events.append(self._event([], usage=_usage(self.prompt_tokens, completions)))
        return "".join(events) + "data: [DONE]\n\n"

    def error(self, error: ApiError) -> str:
        """What a stream ends with when its request fails after the reply began (the status
        line is sent already): the error as an event, as vLLM sends it, then ``[DONE]``."""
        return f"data: {json.dumps(error.payload())}\n\ndata: [DONE]\n\n"

    def _choice(self, index: int, delta, finish: str | None = None) -> dict:
        key = "delta" if self.request.chat else "text"
        return {"index": index, key: delta, "logprobs": None, "finish_reason": finish}

    def _event(self, choices: list[dict], **extra) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk" if self.request.chat
                 else "text_completion", "created": self.created, "model": self.model,
                 "choices": choices, **extra}
        if self.request.include_usage and "usage" not in chunk:
            chunk["usage"] = None  # OpenAI's shape: every chunk but the last has a null usage
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def _new_id(request: GenerationRequest) -> str:
    return f"{'chatcmpl' if request.chat else 'cmpl'}-{uuid.uuid4().hex}"


def _usage(prompt_tokens: int, completions: Sequence[Completion]) -> dict:
    used = sum(c.num_tokens for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": used,
            "total_tokens": prompt_tokens + used}


# -- fields -------------------------------------------------------------------------------------

def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, f"'{param}' {message}", param=param)


def _check_fields(body: dict, known: set[str]) -> None:
    for key, value in body.items():
        if key in known:
            continue
        if key not in NEUTRAL:
            raise ApiError(400, f"unrecognized request argument: {short(key)}",
                           param=short(key))
        if value is not None and not _neutral(value, NEUTRAL[key]):
            raise _invalid(key, f"is not supported by this server (only {NEUTRAL[key][0]!r})")


def _neutral(value, neutral: tuple) -> bool:
    # 0 and 0.0 are the same penalty, but false is not the integer 0
    return any(value == ok and isinstance(value, bool) == isinstance(ok, bool) for ok in neutral)


def _check_model(body: dict, served: str) -> None:
    model = body.get("model")
    if model is None:  # no name: the one model served
        return
    if not isinstance(model, str):
        raise _invalid("model", f"must be a string, not {json_type(model)}")
    if model != served:
        raise ApiError(404, f"the model {short(model)!r} does not exist; this server serves "
                       f"{served!r}", param="model", code="model_not_found")


def _sampling(body: dict, bounds: Bounds, limit_field: str) -> SamplingParams:
    return SamplingParams(
        n=_integer(body, "n", 1, bounds.max_n, default=1, limit="--max-n"),
        max_new_tokens=_integer(body, limit_field, 1, bounds.max_tokens,
                                default=min(bounds.default_tokens, bounds.max_tokens),
                                limit="--max-tokens"),
        temperature=_number(body, "temperature", 0, 2, default=1.0),
        top_p=_number(body, "top_p", 0, 1, default=1.0, above_low=True),
        # vLLM's meaning: -1 or 0 is off (every token), k >= 1 the k most likely
        top_k=max(0, _integer(body, "top_k", -1, TOP_K_MAX, default=0)),
        seed=_integer(body, "seed", *SEED_RANGE, default=0),
        stop=_stop(body.get("stop")))


def _integer(body: dict, field: str, low: int, high: int, *, default: int,
             limit: str = "") -> int:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):  # true is not 1, 2.7 is not 2
        raise _invalid(field, f"must be an integer, not {json_type(value)} {short(value)}")
    if not low <= value <= high:
        why = f" (this server's {limit})" if limit else ""
        raise _invalid(field, f"must be from {low} to {high}{why}, not {short(value)}")
    return value


def _number(body: dict, field: str, low: float, high: float, *, default: float,
            above_low: bool = False) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(field, f"must be a number, not {json_type(value)}")
    if not (low < value if above_low else low <= value) or not value <= high:
        span = f"{'above' if above_low else 'from'} {low} {'and at most' if above_low else 'to'}"
        raise _invalid(field, f"must be {span} {high}, not {short(value)}")
    return float(value)


def _boolean(body: dict, field: str, default: bool) -> bool:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(field, f"must be true or false, not {json_type(value)}")
    return value


def _stop(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list):
        raise _invalid("stop", f"must be a string or a list of strings, not {json_type(value)}")
    if len(stops) > MAX_STOP_STRINGS:
        raise _invalid("stop", f"holds at most {MAX_STOP_STRINGS} strings, not {len(stops)}")
    for s in stops:
        if not isinstance(s, str) or not s:  # "" would stop every completion before it starts
            raise _invalid("stop", f"must hold non-empty strings, not {json_type(s)} {short(s)}")
    return tuple(stops)


def _streaming(body: dict) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = _boolean(body, "stream", False)
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise _invalid("stream_options", "is only allowed when stream is true")
    if not isinstance(options, dict):
        raise _invalid("stream_options", f"must be an object, not {json_type(options)}")
    for key in options:
        if key != "include_usage":
            raise _invalid("stream_options", f"has no option {short(key)!r} (include_usage)")
    return stream, _boolean(options, "include_usage", False)


def _messages(value) -> tuple[dict, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages", f"must be a non-empty list, not {json_type(value)}"
                       if not isinstance(value, list) else "must not be empty")
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(value))


def _message(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(where, f"must be an object with role and content, not {json_type(value)}")
    for key in value:
        if key not in ("role", "content", "name"):
            raise _invalid(f"{where}.{short(key)}", "is not supported by this server")
    role = value.get("role")
    if role not in ROLES:
        raise _invalid(f"{where}.role", f"must be one of {', '.join(ROLES)}, not "
                       f"{short(role) if isinstance(role, str) else json_type(role)}")
    if not isinstance(value.get("name", ""), str):
        raise _invalid(f"{where}.name", "must be a string")
    return {"role": role, "content": _content(value.get("content"), f"{where}.content")}


def _content(value, where: str) -> str:
    """A message's text: a string, or the text parts of a list joined with newlines."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _invalid(where, f"must be a string or a list of content parts, not "
                       f"{json_type(value)}")
    texts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict):
            raise _invalid(f"{where}[{i}]", f"must be a content part object, not "
                           f"{json_type(part)}")
        kind = part.get("type")
        if kind != "text":
            named = short(kind) if isinstance(kind, str) else json_type(kind)
            raise _invalid(f"{where}[{i}].type", f"must be 'text' (this server's model reads "
                           f"text only), not {named}")
        if not isinstance(part.get("text"), str):
            raise _invalid(f"{where}[{i}].text", f"must be a string, not "
                           f"{json_type(part.get('text'))}")
        texts.append(part["text"])
    return "\n".join(texts)
