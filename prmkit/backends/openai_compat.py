"""Generation through any OpenAI-compatible server (vLLM, SGLang, a hosted API).

    load_backend("openai", "Qwen/Qwen2.5-72B-Instruct", base_url="http://host:8000/v1")

``api="chat"`` (default) sends each prompt as the user turn of a chat request, so the server
applies the model's chat template; ``api="completions"`` sends it as raw text. One request a
prompt asks for all ``n`` samples, requests run ``concurrency`` at a time, results come back in
input order. The API key is read from the environment only (``OPENAI_API_KEY``, or the variable
named by ``api_key_env``), never from flags, so it stays out of shell history and run configs;
local servers that need no key get a placeholder.

Reproducibility is the server's: a request carries the seed of its first sample, which vLLM
honours; hosted APIs may not. ``top_k``, no OpenAI parameter, goes in the body where vLLM,
SGLang and ``prmkit serve`` read it, and only when set (a hosted API would refuse it).

Failures: each request waits at most ``timeout`` seconds and is retried ``max_retries`` times
with exponential backoff (the openai client's). A server that stays dead, answers with an
error status or with something that is not a completion ends the stage with one line naming
the server, what failed and how many attempts were made (an ``InputError``: exit 2, nothing
marked complete).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prmkit.backends.base import Completion, SamplingParams, check_outputs, prompt_texts
from prmkit.errors import InputError
from prmkit.models import load_tokenizer, tokenizer_folder

APIS = ("chat", "completions")


class OpenAIBackend:
    def __init__(self, model: str, *, base_url: str | None = None, api: str = "chat",
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 3,
                 tokenizer: str | None = None, api_key_env: str = "OPENAI_API_KEY"):
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
        if not timeout > 0 or max_retries < 0:
            raise InputError(f"timeout {timeout!r} must be positive and max_retries "
                             f"{max_retries!r} at least 0", field="timeout")
        self.model, self.api, self.concurrency = model, api, max(1, concurrency)
        self.base_url, self.attempts = base_url or os.environ["OPENAI_BASE_URL"], max_retries + 1
        # the policy's tokenizer, when given, renders chat prompts here: their exact text is
        # then known (and needed by the completions API); else the server renders them
        self.tokenizer = None
        if tokenizer:
            self.tokenizer = load_tokenizer(tokenizer_folder(tokenizer))
        self.client = OpenAI(base_url=self.base_url,
                             api_key=os.environ.get(api_key_env) or "not-needed",
                             timeout=timeout, max_retries=max_retries)

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        # The stage ends at the first failure: requests not yet sent are dropped rather than
        # each waiting out its own timeouts and retries against a server that is down.
        if self.api == "completions":
            prompt_texts(prompts)  # the completions API reads text: every prompt must have it
        failed = threading.Event()
        with ThreadPoolExecutor(self.concurrency) as pool:
            outputs = list(pool.map(lambda p: self._request(p, params, failed), prompts))
        return check_outputs(prompts, params, outputs)

    def _request(self, prompt: str, params: SamplingParams,
                 failed: threading.Event) -> list[Completion] | None:
        if failed.is_set():
            return None  # never read: map raises the earlier failure first
        try:
            return self._ask(prompt, params)
        except Exception as e:  # every client, HTTP and parsing failure: one line, no chain
            failed.set()
            attempts = self.attempts if _retried(e) else 1
            raise InputError(f"server failed after {attempts} attempt(s): {_what(e)}",
                             path=self.base_url, field="base_url") from None

    def _ask(self, prompt: str, params: SamplingParams) -> list[Completion]:
        common = {"model": self.model, "n": params.n, "temperature": params.temperature,
                  "top_p": params.top_p, "max_tokens": params.max_new_tokens,
                  "seed": params.row_seed(prompt, 0) % (2**31), "stop": list(params.stop) or None}
        # top_k is no OpenAI parameter: vLLM, SGLang and prmkit serve read it from the body;
        # sent only when asked for, so a request without it is what it always was
        extra = {"top_k": params.top_k} if params.top_k else {}
        if self.api == "chat":
            messages = list(getattr(prompt, "messages", ()))
            if not messages:  # raw text: the user's turn
                messages = [{"role": "user", "content": str(prompt)}]
            # a partial answer is continued where it stops, not answered in a new turn
            # (vLLM's and SGLang's continue_final_message; transformers' chat templates)
            if messages[-1]["role"] == "assistant":
                extra |= {"continue_final_message": True, "add_generation_prompt": False}
            response = self.client.chat.completions.create(messages=messages,
                                                           extra_body=extra or None, **common)
            texts = {c.index: (c.message.content or "", c.finish_reason)
                     for c in response.choices}
        else:
            response = self.client.completions.create(prompt=str(prompt),
                                                      extra_body=extra or None, **common)
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


def _what(error: Exception) -> str:
    """What failed, in words: the HTTP status and the server's message, a timeout, a refused
    connection, or a reply that is not a completion."""
    import openai
    if isinstance(error, openai.APITimeoutError):
        return "no answer within the timeout (--timeout)"
    if isinstance(error, openai.APIConnectionError):
        return "cannot connect (is the server running at this URL?)"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {str(error.message)[:200]}"
    return f"the reply is not a completion ({type(error).__name__}: {str(error)[:200]})"


def _retried(error: Exception) -> bool:
    """Whether the client retried this failure (connections, timeouts, 408/409/429/5xx); a
    reply it could not read, or a 4xx, is not retried."""
    import openai
    if isinstance(error, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(error, openai.APIStatusError) and (
        error.status_code in (408, 409, 429) or error.status_code >= 500)
