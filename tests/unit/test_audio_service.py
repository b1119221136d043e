"""services/audio.py's speech path without sockets: fal's WAV pieces in, the client's format out
through `AudioStreamResponse`, with fal's file and the encoder let go however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fal_openai_proxy.fal.errors import FalBrokenError, FalStatusError
from fal_openai_proxy.serve.context import Usage
from fal_openai_proxy.services.audio import AudioStreamResponse, encoded, start_encoding
from fal_openai_proxy.translate.audio import announced_seconds, audio_seconds

from ..support.media import decoded_seconds, make_wav

WAV = make_wav(seconds=3.0, rate=24000)


class Upstream:
    """fal's file as an async iterator of pieces; `fail_at` raises there, `delay` paces it."""

    def __init__(self, data: bytes, size: int = 4096, fail_at: int | None = None) -> None:
        self.pieces = [data[i : i + size] for i in range(0, len(data), size)]
        self.fail_at = fail_at
        self.delay = 0.0
        self.read = 0
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for index, piece in enumerate(self.pieces):
                if index == self.fail_at:
                    raise FalBrokenError("fal's file broke off")
                await asyncio.sleep(self.delay)
                self.read += 1
                yield piece
        finally:
            self.closed = True


async def serve(
    response: AudioStreamResponse, disconnect_after: float | None = None
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after or 0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)
    return sent


async def start(upstream: Upstream, target: str, usage: Usage | None = None) -> AudioStreamResponse:
    chunks = upstream.chunks()
    encoding, first = await start_encoding(chunks, target)
    return AudioStreamResponse(first, encoded(chunks, encoding, usage), "audio/test")


async def test_the_audio_goes_out_piece_by_piece_and_complete() -> None:
    upstream = Upstream(WAV)
    usage = Usage()
    sent = await serve(await start(upstream, "mp3", usage))
    assert usage.audio_seconds_out == pytest.approx(3.0)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) > len(upstream.pieces) // 2  # sent as encoded, not gathered
    assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    audio = b"".join(m["body"] for m in bodies)
    assert decoded_seconds(audio, "mp3") == pytest.approx(3.0, abs=0.1)
    assert upstream.closed


async def test_a_failure_after_the_first_byte_leaves_the_answer_unfinished() -> None:
    upstream = Upstream(WAV, fail_at=10)
    sent = await serve(await start(upstream, "aac"))
    assert sent[0]["status"] == 200
    assert all(m.get("more_body") for m in sent[1:])  # never a complete-looking answer
    assert upstream.closed


async def test_a_client_that_leaves_stops_the_reading() -> None:
    upstream = Upstream(WAV)
    upstream.delay = 0.02  # 37 pieces: 0.7 s
    usage = Usage()
    await serve(await start(upstream, "opus", usage), disconnect_after=0.1)
    assert upstream.closed
    assert upstream.read < len(upstream.pieces)
    assert 0 < (usage.audio_seconds_out or 0) < 3.0  # what went out, not what fal made


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"", "ended before its samples"), (b"<html>oops</html>" * 10, "not a RIFF WAVE")],
)
async def test_audio_that_is_no_wav_fails_before_the_status(data: bytes, why: str) -> None:
    upstream = Upstream(data)
    with pytest.raises(FalStatusError, match=why) as info:
        await start(upstream, "flac")
    assert info.value.status == 502
    assert upstream.closed


def test_the_seconds_of_audio_for_usage() -> None:
    assert announced_seconds(WAV[:100]) == pytest.approx(3.0)  # from the header alone
    assert announced_seconds(b"ID3\x04" + bytes(60)) is None
    output = {"text": "a b", "chunks": [{"timestamp": [0, 1.5], "text": "a"}]}
    assert audio_seconds(output, 2.0) == 2.0  # the WAV header's, when the input is a WAV
    assert audio_seconds(output, None) == 1.5  # else where fal's last chunk ends
    assert audio_seconds({"text": "a"}, None) is None
