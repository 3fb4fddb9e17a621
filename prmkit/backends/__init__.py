"""Generation backends behind one batch-first interface (see ``prmkit.backends.base``).

A registry of ``name -> "module:Class"`` strings, so that importing prmkit never imports torch.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prmkit.backends.base import Backend, Completion, SamplingParams, check_outputs
from prmkit.config import setting
from prmkit.errors import InputError
from prmkit.models import model_folder, tokenizer_folder
from prmkit.prompting import FORMATS
from prmkit.runner import EXECUTOR_FIELDS

BACKENDS = {
    "hf": "prmkit.backends.hf:HFBackend",
    "openai": "prmkit.backends.openai_compat:OpenAIBackend",
    "vllm": "prmkit.backends.vllm_offline:VLLMBackend",
}

__all__ = ["BACKENDS", "Backend", "BackendConfig", "BackendWorkerFactory", "Completion",
           "SamplingParams", "check_outputs", "load_backend", "stage_backend"]

# options that change only the speed, never the output (completions are seeded per prompt and
# sample): a resumed run may change them freely, and they stay out of a stage's config hash
SPEED_ONLY = ("workers", "threads", "batch_size", "concurrency", "timeout", "max_retries",
              "tensor_parallel", *EXECUTOR_FIELDS)


@dataclass(frozen=True)
class BackendConfig:
    """Where a generating stage's model runs: one set of flags for sample, annotate mc and
    annotate judge."""
    backend: str = setting("hf", "hf (a local model: folder or hub id), vllm (vLLM's offline "
                           "engine on GPUs, prefix caching on; the vllm extra) or openai (an "
                           "OpenAI-compatible server; API key from OPENAI_API_KEY).",
                           choices=tuple(BACKENDS))
    tensor_parallel: int = setting(1, "vllm: GPUs one model copy spans.", ge=1)
    device: str = setting("auto", "hf: auto (a GPU when there is one, else the CPU), cpu, cuda "
                          "or cuda:N.")
    dtype: str = setting("auto", "hf: auto (bfloat16 on a GPU, float32 on the CPU), float32, "
                         "bfloat16 or float16.",
                         choices=("auto", "float32", "bfloat16", "float16"))
    batch_size: int = setting(64, "hf: completions a forward batch.", ge=1)
    workers: int = setting(1, "hf: worker processes, each with its own model copy (2 on a "
                           "2-core CPU).", ge=1)
    threads: int | None = setting(None, "hf: torch threads a worker (default: the cores shared "
                                  "among the workers).", ge=1)
    base_url: str | None = setting(None, "openai: the server's base URL, e.g. "
                                   "http://host:8000/v1.")
    api: str = setting("chat", "openai: chat (the server applies the chat template; a "
                       "partial answer is continued with continue_final_message) or "
                       "completions (the text is sent as is: with --tokenizer for chat "
                       "prompts).", choices=("chat", "completions"))
    tokenizer: str | None = setting(None, "openai: the served model's tokenizer (a folder or "
                                    "hub id), so that its chat template is applied here and "
                                    "the prompt text is known exactly.")
    concurrency: int = setting(8, "openai: requests in flight.", ge=1)
    timeout: float = setting(120.0, "openai: seconds a request may take before it is "
                             "retried.", gt=0)
    max_retries: int = setting(3, "openai: retries of a failed request (exponential "
                               "backoff).", ge=0)
    executor: str = setting("local", "local (this machine) or ray (RAY_ADDRESS or a local "
                            "Ray).", choices=("local", "ray"))
    actors: int = setting(2, "ray: actors, each builds its backend once.", ge=1)
    actor_cpus: float = setting(1.0, "ray: CPUs each actor reserves.", ge=0)
    actor_gpus: float = setting(0.0, "ray: GPUs each actor reserves (1: one model copy on each "
                                "GPU, as many actors as GPUs).", ge=0)

    def options(self) -> dict:
        """The keyword arguments of the chosen backend."""
        if self.backend == "openai":
            return {"base_url": self.base_url, "api": self.api, "concurrency": self.concurrency,
                    "timeout": self.timeout, "max_retries": self.max_retries,
                    "tokenizer": self.tokenizer}
        if self.backend == "vllm":
            return {"dtype": self.dtype, "tensor_parallel": self.tensor_parallel}
        # a Ray actor is one worker: Ray spreads the shards over actors instead
        return {"batch_size": self.batch_size,
                "workers": 1 if self.executor == "ray" else self.workers,
                "threads": self.threads, "dtype": self.dtype, "device": self.device}

    def validate(self) -> "BackendConfig":
        if self.backend == "openai" and not self.base_url and not os.environ.get(
                "OPENAI_BASE_URL"):
            raise InputError("the openai backend needs a base_url (--base-url, or OPENAI_BASE_URL)",
                             field="base_url")
        return self

    def check_model(self, model: str) -> None:
        """A local model is a folder with a config.json or a hub id, checked (and fetched)
        before any work; a served model is one the server lists (``GET /models``), and the
        tokenizer that renders its prompts here a tokenizer folder or hub id."""
        if self.backend in ("hf", "vllm"):
            model_folder(model)
            return
        self.validate()
        if self.tokenizer:
            tokenizer_folder(self.tokenizer)
        # listing models is quick where a server works: a silent one is found in seconds
        served_models_include(self.base_url or os.environ["OPENAI_BASE_URL"], model,
                              timeout=min(self.timeout, 10.0))

    def check_prompt(self, prompt: str) -> None:
        """A plain-text prompt format continues raw text: through a chat API the server would
        wrap it as a user turn and the model would answer it anew (for Monte Carlo rollouts,
        a new answer instead of the given steps' continuation)."""
        plain = prompt.endswith(".txt") or FORMATS.get(prompt, ("plain",))[0] == "plain"
        if self.backend == "openai" and self.api == "chat" and plain:
            raise InputError(f"the {prompt!r} prompt is raw text: send it with --api "
                             "completions (a chat API would make it a user turn)", field="api")

    def output_relevant(self) -> dict:
        """What of this config can change the output (for a stage's config hash)."""
        return {"backend": self.backend, **{k: v for k, v in sorted(self.options().items())
                                            if k not in SPEED_ONLY}}


def served_models_include(base_url: str, model: str, timeout: float = 10.0) -> None:
    """The server answers ``GET /models`` and lists ``model`` (vLLM, SGLang, prmkit serve and
    OpenAI's API all do): a server that is down or serves another model is an error now, not
    after the stages before the one that needs it."""
    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url)
    if os.environ.get("OPENAI_API_KEY"):
        request.add_header("Authorization", f"Bearer {os.environ['OPENAI_API_KEY']}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            listed = [m.get("id") for m in json.loads(reply.read(1 << 22)).get("data", [])
                      if isinstance(m, dict)]
    except urllib.error.HTTPError as e:
        if e.code in (404, 405, 501):  # a server without the route cannot be asked: the
            return                     # stage will find out
        raise InputError(f"the server answered HTTP {e.code} to GET {url}: is it the "
                         "OpenAI-compatible server of this model?", field="base_url") from None
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as e:
        reason = getattr(e, "reason", None) or e
        raise InputError(f"cannot list the server's models at {url} ({reason}): is it "
                         "running?", field="base_url") from None
    if model not in listed:
        raise InputError(f"the server at {base_url} does not serve {model!r} (it serves: "
                         f"{', '.join(map(str, listed[:10])) or 'nothing'})", field="model")


def stage_backend(backend: BackendConfig | None, model: str | None,
                  prompt: str | None = None) -> BackendConfig:
    """The settings a generating stage runs with (the defaults where none are given), with its
    model (and prompt format, where it has one) checked before any work."""
    backend = backend or BackendConfig()
    if model is not None:
        backend.check_model(model)
    if prompt is not None:
        backend.check_prompt(prompt)
    return backend


def load_backend(name: str, model: str, **options) -> Backend:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown backend {name!r}{hint} (known: {sorted(BACKENDS)})",
                         field="backend")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


@dataclass(frozen=True)
class BackendWorkerFactory:
    """A stage's worker factory (``prmkit.runner``): ``worker(cfg, backend)`` with a backend of
    its own for ``cfg.model``, built once in this process or once in each Ray actor (one model
    copy each)."""
    worker: Callable[[Any, Backend], Any]
    cfg: Any
    backend: BackendConfig

    def __call__(self):
        return self.worker(self.cfg, load_backend(self.backend.backend, self.cfg.model,
                                                  **self.backend.options()))
