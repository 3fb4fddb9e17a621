"""A small OpenAI-compatible server for a local Hugging Face causal LM (``prmkit serve``).

What vLLM or SGLang serve on a GPU, in miniature, for the CPU: tests, laptops, and the
real-data recipe run with tiny stand-ins. It follows their conventions where prmkit relies on
them:

    POST /v1/completions        ``prompt`` (text) is the model's input as is
    POST /v1/chat/completions   ``messages`` go through the model's own chat template
                                (``add_generation_prompt``, default true); with
                                ``continue_final_message`` the last (assistant) message is
                                continued where it stops, as transformers renders it
    GET  /v1/models

Both take ``n``, ``max_tokens``, ``temperature``, ``top_p``, ``seed`` and ``stop``.
Generation is prmkit's own hf backend (one model, requests one at a time). With ``record``
every text the model is given is appended to a JSON-lines file: what a test compares with
what the client meant to send.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prmkit.backends.base import SamplingParams
from prmkit.backends.hf import HFBackend
from prmkit.errors import InputError


class ModelServer:
    """The server's state: the backend, a lock (one generation at a time) and the record."""

    def __init__(self, model: str, *, name: str | None = None, record: str | Path | None = None,
                 device: str = "auto", dtype: str = "auto", max_new_tokens: int = 512):
        self.backend = HFBackend(model, device=device, dtype=dtype)
        self.tokenizer = self.backend.tokenizer
        self.name = name or Path(model).name
        self.record = Path(record) if record else None
        self.max_new_tokens = max_new_tokens
        self.lock = threading.Lock()

    def prompt_of(self, body: dict, chat: bool) -> str:
        if not chat:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise InputError("'prompt' must be one string", field="prompt")
            return prompt
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InputError("'messages' must be a non-empty list", field="messages")
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError("the model's tokenizer has no chat template", field="messages")
        go_on = bool(body.get("continue_final_message", False))
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, continue_final_message=go_on,
            add_generation_prompt=bool(body.get("add_generation_prompt", not go_on)))

    def complete(self, body: dict, chat: bool) -> dict:
        prompt = self.prompt_of(body, chat)
        stop = body.get("stop") or ()
        params = SamplingParams(n=int(body.get("n") or 1),
                                temperature=float(body.get("temperature", 1.0)),
                                top_p=float(body.get("top_p", 1.0)),
                                max_new_tokens=int(body.get("max_tokens") or self.max_new_tokens),
                                stop=(stop,) if isinstance(stop, str) else tuple(stop),
                                seed=int(body.get("seed") or 0))
        with self.lock:
            if self.record is not None:
                with self.record.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"api": "chat" if chat else "completions",
                                        "prompt": prompt}, ensure_ascii=False) + "\n")
            [completions] = self.backend.generate([prompt], params)
        prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        used = sum(c.num_tokens for c in completions)
        choices = []
        for i, c in enumerate(completions):
            choice = {"index": i, "finish_reason": c.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": c.text}
            else:
                choice.update(text=c.text, logprobs=None)
            choices.append(choice)
        return {"id": f"prmkit-{time.monotonic_ns()}", "created": int(time.time()),
                "object": "chat.completion" if chat else "text_completion",
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used,
                          "total_tokens": prompt_tokens + used}}


def make_server(state: ModelServer, host: str = "127.0.0.1", port: int = 8000
                ) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": state.name, "object": "model", "owned_by": "prmkit"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            route = self.path.rstrip("/")
            if not route.endswith(("/chat/completions", "/completions")):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            try:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = state.complete(body, chat=route.endswith("/chat/completions"))
            except (InputError, ValueError, TypeError, json.JSONDecodeError) as e:
                return self._send(400, {"error": {"message": str(e), "type": "invalid_request"}})
            self._send(200, reply)

        def log_message(self, *args):  # no line a request on stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_background(model: str, **options) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a free local port in a thread; returns it and its base URL (tests,
    recipes with stand-in models)."""
    port = options.pop("port", 0)
    server = make_server(ModelServer(model, **options), port=port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/v1"
