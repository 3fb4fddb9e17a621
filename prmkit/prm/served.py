"""A PRM served elsewhere, as a scorer (``prmkit score --base-url URL``): vLLM serving a PRM as
a pooling model (``vllm serve Qwen/Qwen2.5-Math-PRM-72B``), or ``prmkit serve --prm``.

The solutions are laid out here, exactly as a local PRM of the same format lays them out
(``prmkit.prm.score.encode``, with the PRM's tokenizer: ``--tokenizer``, or the model folder),
and sent as token ids to ``POST /pooling``: the server runs the model on exactly those tokens,
and answers ``[negative, positive]`` at every separator token; a step's score is the positive
probability, the same number a local PRM gives. Steps past ``max_length`` (default: the
context in the PRM's config.json, where the tokenizer folder has one) are never sent and score
null, as ``prmkit score`` has them.

Only formats whose separator is a token of its own can be served so (``qwen2.5-math-prm``,
``step-token``: vLLM's step pooling reads every occurrence of that token); the answer must have
one pair a sent step, or the scoring stops with an error (a server with another model, or
another separator). Requests go ``batch_size`` solutions at a time, ``concurrency`` of them at
once (a server batches what arrives together), retried on connection errors and 5xx answers.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from prmkit.errors import InputError
from prmkit.models import load_tokenizer, tokenizer_folder
from prmkit.prm.folder import json_object, prm_json, recorded_format
from prmkit.prm.formats import get_format, separator_id
from prmkit.prm.layout import encode
from prmkit.steps import StepTokens

RETRIES = 8  # a busy server's 503s: about two minutes of retries at most


@dataclass(frozen=True)
class ServedPRM:
    """Where the PRM is served and how its solutions are laid out."""
    base_url: str               # the server's root or its /v1 URL
    model: str                  # the served model's name
    tokenizer: str              # the PRM's tokenizer: a folder or hub id
    model_format: str | None = None
    max_length: int | None = None
    timeout: float = 600.0

    def layout(self):
        """What ``encode`` needs of a PRM: its format, tokenizer, separator and context (made
        once a process: a search asks at every step)."""
        return _layout(self.tokenizer, self.model_format, self.max_length)

    @property
    def pooling_url(self) -> str:
        root = self.base_url.rstrip("/")
        return (root[:-3] if root.endswith("/v1") else root) + "/pooling"


@functools.cache
def _layout(tokenizer: str, model_format: str | None, max_length: int | None):
    folder = tokenizer_folder(tokenizer)
    fmt = get_format(model_format or _recorded(folder))
    if fmt.in_text or fmt.per_prefix or fmt.score_from == "lm-tokens":
        raise InputError(f"the {fmt.name} format cannot be scored through a pooling server: "
                         "its steps end in no token of their own", field="model_format")
    loaded = load_tokenizer(folder, padding_side="right")
    context = max_length or _context(folder)
    return SimpleNamespace(format=fmt, tokenizer=loaded,
                           separator_id=separator_id(fmt, loaded),
                           module=SimpleNamespace(config=SimpleNamespace(
                               max_position_embeddings=context)))


def _recorded(folder: Path) -> str:
    config = folder / "config.json"
    recorded = recorded_format(prm_json(folder), json_object(config)) if config.exists() \
        else None
    if recorded is None:
        raise InputError("the served PRM's format is not recorded beside its tokenizer: pass "
                         "--model-format (qwen2.5-math-prm for Qwen2.5-Math-PRM)",
                         path=folder, field="model_format")
    return recorded


def _context(folder: Path) -> int | None:
    config = folder / "config.json"
    return json_object(config).get("max_position_embeddings") if config.exists() else None


def score_served(served: ServedPRM, problems: list[str], steps: list[list[str]], *,
                 batch_size: int = 16, concurrency: int = 4) -> list[list[float | None]]:
    """Every step's score from the server, laid out here; null past ``max_length``."""
    layout = served.layout()
    encoded = [encode(layout, p, s) for p, s in zip(problems, steps, strict=True)]
    asked = [i for i, e in enumerate(encoded) if e.positions]
    chunks = [asked[i:i + batch_size] for i in range(0, len(asked), batch_size)]
    out: list[list[float]] = [[] for _ in encoded]
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        for chunk, pairs in zip(chunks, pool.map(
                lambda c: _pooled(served, [encoded[i] for i in c]), chunks)):
            for i, pair_lists in zip(chunk, pairs):
                out[i] = [positive for _, positive in pair_lists]
    return [s + [None] * e.dropped for s, e in zip(out, encoded)]


def _pooled(served: ServedPRM, encoded: list[StepTokens]) -> list[list[list[float]]]:
    """The server's [negative, positive] pairs for each text, checked against its steps."""
    body = {"model": served.model, "input": [e.input_ids for e in encoded]}
    reply = _post(served.pooling_url, body, served.timeout)
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, list) or len(data) != len(encoded) or not all(
            isinstance(item, dict) for item in data) or sorted(
            item.get("index", -1) for item in data) != list(range(len(encoded))):
        raise InputError(f"the server's answer is not one result an input (index 0 to "
                         f"{len(encoded) - 1}): not a pooling server of a PRM?",
                         path=served.pooling_url, field="base_url")
    pairs = [item.get("data") for item in sorted(data, key=lambda d: d["index"])]
    for e, p in zip(encoded, pairs):
        if not isinstance(p, list) or len(p) != len(e.positions) or not all(
                isinstance(x, list) and len(x) == 2 for x in p):
            raise InputError(f"the server gave {len(p) if isinstance(p, list) else 'no'} "
                             f"step results for a solution of {len(e.positions)} steps: it "
                             "serves another model or another step separator",
                             path=served.pooling_url, field="base_url")
    return pairs


def _post(url: str, body: dict, timeout: float) -> dict:
    """The server's JSON answer; a busy server (503, as its Retry-After says), a 5xx or a
    dropped connection is asked again (scoring changes nothing on the server), up to
    ``RETRIES`` times; a 4xx is the request's own error."""
    data = json.dumps(body).encode()
    for attempt in range(RETRIES):
        request = urllib.request.Request(url, data=data,
                                         headers={"Content-Type": "application/json"})
        wait = min(2 ** attempt, 30)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as e:
            detail = e.read(2000).decode("utf-8", "replace")
            if e.code < 500 or attempt == RETRIES - 1:
                raise InputError(f"the server answered HTTP {e.code}: {detail[:300]}",
                                 path=url, field="base_url") from None
            after = e.headers.get("Retry-After", "")
            wait = min(float(after), 60.0) if after.replace(".", "", 1).isdigit() else wait
        except (urllib.error.URLError, OSError, ValueError) as e:
            if attempt == RETRIES - 1:
                raise InputError(f"cannot reach the served PRM ({getattr(e, 'reason', e)})",
                                 path=url, field="base_url") from None
        time.sleep(wait)
    raise AssertionError("unreachable")
