"""Multipart uploads: bounded in flight (upload_gate.py), and refused whole when cut short."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import httpx
import pytest

from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.serve.upload_gate import UploadGate

from ..support.asserts import wait_for
from ..support.chat import Records, sim
from ..support.media import make_wav
from ..support.servers import RunningProxy

WAV = make_wav()


def transcribe(running: RunningProxy, prompt: str = "", timeout: float = 10) -> httpx.Response:
    return httpx.post(
        running.v1 + "/audio/transcriptions",
        data={"model": "whisper-1", "prompt": prompt},
        files={"file": ("talk.wav", WAV, "audio/wav")},
        timeout=timeout,
    )


def test_uploads_beyond_the_bytes_in_flight_wait_then_get_503(
    proxy_factory: Callable[..., RunningProxy], sim_log: Records
) -> None:
    """20 parallel 16 MiB uploads peaked at 835 MiB: now a process holds at most
    MAX_UPLOAD_BYTES_IN_FLIGHT of them; one more waits, then gets 503 with Retry-After."""
    running = proxy_factory(max_upload_bytes_in_flight=len(WAV) * 3 // 2, body_timeout=1.0)

    def hold() -> None:  # fal never answers: this upload keeps its room
        with pytest.raises(httpx.ReadTimeout):
            transcribe(running, sim({"hang": True}), timeout=3)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        wait_for(lambda: sim_log("submit"), within=5, what="the first upload's submit")
        refused = transcribe(running)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "too_many_uploads"
        assert refused.headers["retry-after"] == "1"
    finally:
        holder.join()
    # The room is given back when the request ends.
    assert transcribe(running).status_code == 200


def test_a_multipart_body_without_its_closing_boundary_is_a_400(proxy: RunningProxy) -> None:
    """Its last part may be cut short: the `language` field here would be lost silently."""
    parts = (
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="talk.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + WAV + b"\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="language"\r\n\r\nde'
    )
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    url = proxy.v1 + "/audio/transcriptions"
    response = httpx.post(url, content=parts, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_body"
    assert "closing boundary" in error["message"]
    whole = httpx.post(url, content=parts + b"\r\n--XyZ--\r\n", headers=headers)
    assert whole.status_code == 200, whole.text


async def test_the_gate_serves_in_order_and_gives_back_what_a_leaver_held() -> None:
    gate = UploadGate(100)
    first = await gate.acquire(60, 1)
    waiting = asyncio.ensure_future(gate.acquire(60, 1))
    small = asyncio.ensure_future(gate.acquire(10, 1))  # fits, but waits its turn
    await asyncio.sleep(0)
    assert not waiting.done() and not small.done()
    waiting.cancel()  # the one ahead leaves: the next in line is served at once
    assert await asyncio.wait_for(small, 0.5) == 10
    assert gate.used == 70
    gate.release(first)
    big = asyncio.ensure_future(gate.acquire(500, 1))  # more than the whole: runs alone
    await asyncio.sleep(0)
    assert not big.done()
    gate.release(small.result())
    assert await asyncio.wait_for(big, 0.5) == 100
    assert gate.used == 100
    with pytest.raises(ProxyError) as info:
        await gate.acquire(50, 0.05)
    assert info.value.status == 503
    gate.release(100)
    assert gate.used == 0
