"""fal's cumulative stream events -> OpenAI chunk frames (pure; one instance per stream).

fal sends the whole `output` (and `reasoning`) so far in every event; OpenAI clients want only
what is new. A value that does not extend the previous one is sent whole, as the original
proxy did. Stop sequences are applied here, holding back just enough text to see one that
straddles two events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..fal.errors import FalEventError, FalIncompleteStream
from .cost import reported_cost
from .response import DONE, FrameEncoder, map_usage

log = logging.getLogger(__name__)


class StreamTranslator:
    __slots__ = (
        "_holdback", "_output", "_partial", "_reasoning", "_sent", "_show_reasoning", "_stops",
        "encoder", "first_content_sent", "reported_cost", "stop_found", "stopped", "usage",
    )  # fmt: skip

    def __init__(
        self, encoder: FrameEncoder, *, stops: list[str], show_reasoning: bool = True
    ) -> None:
        self.encoder = encoder
        self._stops = stops
        self._holdback = max((len(s) for s in stops), default=1) - 1
        self._show_reasoning = show_reasoning
        self._output = ""  # the last cumulative output
        self._sent = 0  # characters of _output already sent
        self._reasoning = ""
        self.stopped = False  # a stop sequence was found: the answer is complete
        self.stop_found: str | None = None  # which one
        self.usage: dict[str, int] | None = None
        self.reported_cost: float | None = None  # OpenRouter's `usage.cost`, if fal passed it
        self.first_content_sent = False
        self._partial = False  # fal's last event said `partial: true`: more was to come

    def feed(self, event: Mapping[str, Any]) -> bytes:
        """Frames for one fal event (b"" when it adds nothing)."""
        error = event.get("error")
        if error:
            raise FalEventError(str(error))
        self._partial = event.get("partial") is True
        if (usage := map_usage(event.get("usage"))) is not None:
            self.usage = usage
            self.reported_cost = reported_cost(event.get("usage"))
        frames = b""
        reasoning = event.get("reasoning")
        if isinstance(reasoning, str) and reasoning != self._reasoning:
            new = self._advance_reasoning(reasoning)
            if new and self._show_reasoning:
                frames += self.encoder.reasoning(new)
        output = event.get("output")
        if isinstance(output, str) and output != self._output:
            frames += self._advance_output(output)
        return frames

    def finish(self) -> bytes:
        """The held-back tail, the finish chunk, the usage chunk if asked, and [DONE].

        Raises FalIncompleteStream if fal's stream ended while its last event still said
        `partial: true`: the answer was cut short, which a clean `stop` would hide.
        """
        frames = self.flush() + self.encoder.finish("stop")
        if self.encoder.include_usage:
            frames += self.encoder.usage(self.usage)
        return frames + DONE

    def flush(self) -> bytes:
        """The held-back tail at the end of fal's stream (FalIncompleteStream as above)."""
        if self._partial and not self.stopped:
            raise FalIncompleteStream("fal's stream ended before its final event")
        if not self.stopped and self._sent < len(self._output):
            return self._content(self._output[self._sent :])
        return b""

    def _advance_reasoning(self, reasoning: str) -> str:
        previous, self._reasoning = self._reasoning, reasoning
        if reasoning.startswith(previous):
            return reasoning[len(previous) :]
        log.warning("fal reasoning did not extend the previous event; sending it whole")
        return reasoning

    def _advance_output(self, output: str) -> bytes:
        if self.stopped:
            return b""
        if not output.startswith(self._output):
            log.warning("fal output did not extend the previous event; sending it whole")
            self._sent = 0
        self._output = output
        if not self._stops:
            new, self._sent = output[self._sent :], len(output)
            return self._content(new)
        return self._advance_with_stops(output)

    def _advance_with_stops(self, output: str) -> bytes:
        # No stop starts before _sent (checked earlier), so search from there.
        found = [i for stop in self._stops if (i := output.find(stop, self._sent)) >= 0]
        if found:
            cut = min(found)
            new, self._sent = output[self._sent : cut], cut
            self.stopped = True
            self.stop_found = next(s for s in self._stops if output.startswith(s, cut))
            return self._content(new)
        safe = max(self._sent, len(output) - self._holdback)
        new, self._sent = output[self._sent : safe], safe
        return self._content(new)

    def _content(self, text: str) -> bytes:
        if not text:
            return b""
        self.first_content_sent = True
        return self.encoder.content(text)
