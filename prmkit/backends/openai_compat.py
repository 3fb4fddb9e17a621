"""Generation through any OpenAI-compatible server (vLLM, SGLang, a hosted API).

    load_backend("openai", "Qwen/Qwen2.5-72B-Instruct", base_url="http://host:8000/v1")

``api="chat"`` (default) sends each prompt as the user turn of a chat request, so the server
applies the model's chat template; ``api="completions"`` sends it as raw text. One request a
prompt asks for all ``n`` samples, requests run ``concurrency`` at a time, results come back in
input order. The API key is read from the environment only (``OPENAI_API_KEY``, or the variable
named by ``api_key_env``), never from flags, so it stays out of shell history and run configs;
local servers that need no key get a placeholder.

Reproducibility is the server's: a request carries the seed of its first sample, which vLLM
honours; hosted APIs may not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prmkit.backends.base import Completion, SamplingParams, check_outputs
from prmkit.errors import InputError

APIS = ("chat", "completions")


class OpenAIBackend:
    def __init__(self, model: str, *, base_url: str | None = None, api: str = "chat",
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 3,
                 api_key_env: str = "OPENAI_API_KEY"):
        try:
            from openai import OpenAI
        except ImportError:
            raise InputError("the openai backend needs the openai package: pip install "
                             "'prmkit[openai]'", field="backend") from None
        if api not in APIS:
            raise InputError(f"{api!r}: choose one of {list(APIS)}", field="api")
        if not base_url and not os.environ.get("OPENAI_BASE_URL"):
            raise InputError("the openai backend needs --base-url (or OPENAI_BASE_URL)",
                             field="base_url")
        self.model, self.api, self.concurrency = model, api, max(1, concurrency)
        self.tokenizer = None  # the server owns the tokenizer and the chat template
        self.client = OpenAI(base_url=base_url or os.environ["OPENAI_BASE_URL"],
                             api_key=os.environ.get(api_key_env) or "not-needed",
                             timeout=timeout, max_retries=max_retries)

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            outputs = list(pool.map(lambda p: self._request(p, params), prompts))
        return check_outputs(prompts, params, outputs)

    def _request(self, prompt: str, params: SamplingParams) -> list[Completion]:
        common = {"model": self.model, "n": params.n, "temperature": params.temperature,
                  "top_p": params.top_p, "max_tokens": params.max_new_tokens,
                  "seed": params.row_seed(prompt, 0) % (2**31), "stop": list(params.stop) or None}
        if self.api == "chat":
            response = self.client.chat.completions.create(
                messages=[{"role": "user", "content": prompt}], **common)
            texts = {c.index: (c.message.content or "", c.finish_reason)
                     for c in response.choices}
        else:
            response = self.client.completions.create(prompt=prompt, **common)
            texts = {c.index: (c.text or "", c.finish_reason) for c in response.choices}
        usage = getattr(response, "usage", None)
        per_sample = (usage.completion_tokens // max(1, len(texts))) if usage else 0
        return [Completion(text=text, num_tokens=per_sample,
                           finish_reason="length" if reason == "length" else "stop")
                for _, (text, reason) in sorted(texts.items())]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
