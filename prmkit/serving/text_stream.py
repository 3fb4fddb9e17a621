"""The text of completions as it grows, token by token, in pieces safe to stream.

Decoding a token alone is wrong for byte-level vocabularies (a character may span tokens) and
decoding everything after each token costs the square of the length; as vLLM and TGI do, each
step decodes a short window (the tokens since the last clean cut) twice and keeps what the
newest token added, once it is not half a character.

Text is held back while it may still become a stop string: the server cuts completions before
their stop string, as vLLM does, and a streamed piece cannot be taken back. What is held back,
and anything the windowed decoding saw differently, is sent at the end from the completion's
final text, so that the pieces add up to exactly the text a request without streaming gets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from prmkit.backends.base import Completion

log = logging.getLogger("prmkit.serve")
INCOMPLETE = "\ufffd"  # what a decoder makes of half a UTF-8 character


@dataclass
class _Choice:
    tokens: list[int] = field(default_factory=list)
    text: str = ""          # decoded so far
    sent: int = 0           # characters of text streamed
    prefix_offset: int = 0  # the decoding window: tokens[prefix_offset:] ...
    read_offset: int = 0    # ... of which tokens[prefix_offset:read_offset] are in text already


class TextStreams:
    def __init__(self, tokenizer, n: int, stop: Sequence[str]):
        self.tokenizer, self.stop = tokenizer, tuple(stop)
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.choices = [_Choice() for _ in range(n)]

    def add(self, tokens: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
        """(choice index, new text) for each (choice index, token id) just generated."""
        pieces = []
        for index, token in tokens:
            choice = self.choices[index]
            choice.tokens.append(token)
            self._decode_newest(choice)
            piece = self._sendable(choice)
            if piece:
                pieces.append((index, piece))
        return pieces

    def finish(self, completions: Sequence[Completion]) -> list[tuple[int, str]]:
        """The rest of each choice's text, from its final completion."""
        pieces = []
        for index, (choice, done) in enumerate(zip(self.choices, completions)):
            streamed = choice.text[:choice.sent]
            if not done.text.startswith(streamed):  # a decoder that rewrites earlier text
                log.warning("streamed text of choice %d differs from its final text", index)
                continue
            if len(done.text) > len(streamed):
                pieces.append((index, done.text[len(streamed):]))
        return pieces

    def _decode_newest(self, choice: _Choice) -> None:
        decode = self.tokenizer.decode
        before = decode(choice.tokens[choice.prefix_offset:choice.read_offset],
                        skip_special_tokens=True)
        after = decode(choice.tokens[choice.prefix_offset:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith(INCOMPLETE):
            choice.text += after[len(before):]
            choice.prefix_offset, choice.read_offset = choice.read_offset, len(choice.tokens)

    def _sendable(self, choice: _Choice) -> str:
        end = len(choice.text) - self.hold
        if self.stop:  # never past a stop string: the completion ends before it
            start = max(0, choice.sent - self.hold)
            found = [i for s in self.stop if (i := choice.text.find(s, start)) >= 0]
            end = min([end, *found])
        if end <= choice.sent:
            return ""
        piece, choice.sent = choice.text[choice.sent:end], end
        return piece
