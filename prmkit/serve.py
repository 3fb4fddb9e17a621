"""prmkit's servers: ``prmkit serve --model M``, and the same in a thread for tests and recipes.

What vLLM or SGLang serve on a GPU, in miniature, for the CPU: tests, laptops, and the
real-data recipe run with tiny stand-ins. The policy server speaks OpenAI's completions and chat
APIs (with vLLM's ``continue_final_message``), streaming included; see
``prmkit/serving/policy.py`` for what a request goes through, and ``prmkit/serving/`` for the
pieces every server shares (request limits, the bounded work queue, JSON errors, startup
checks, request logs).
"""

from __future__ import annotations

from prmkit.serving.policy import ModelServer, serve, serve_in_background

__all__ = ["ModelServer", "serve", "serve_in_background"]
