"""The one guard for URLs fal's answers name (fal/media_fetch.py), attacked as the owner of a
fal app would: the app's output (the simulator's `output` directive) names the proxy's own
network, a metadata address, a redirect elsewhere, or more and larger files than asked for.
Each attack must fail with a 502 and never reach the target."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import Records
from ..support.chat import sim as directive
from ..support.media import make_wav
from ..support.servers import RunningProxy

MiB = 1024 * 1024


class Secret:
    """A server on the proxy's own loopback that nothing may reach: counts connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 14\r\n\r\n"
                    b"\x89PNG\r\n\x1a\nSECRET"
                )

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/latest/meta-data"

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def secret() -> Iterator[Secret]:
    server = Secret()
    yield server
    server.close()


def app_output(output: dict[str, Any]) -> str:
    """A prompt that makes the simulated app answer `output`, as its owner could."""
    return "a cat " + directive({"output": output})


def images(*urls: str) -> dict[str, Any]:
    return {"images": [{"url": url} for url in urls]}


@pytest.fixture(scope="module")
def guarded(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    # `localhost` is a media host here: it passes the host rule, and must fail the address one.
    return proxy_factory(media_hosts="localhost,*.example.invalid")


def bad_url_error(call: Callable[[], object]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    assert info.value.status_code == 502
    assert info.value.code == "upstream_bad_url", info.value.message
    return info.value


@pytest.mark.parametrize(
    "target",
    [
        "loopback-http",  # the proxy's own network, plain http
        "loopback-https",  # https, but not a media host
        "media-host-resolving-to-loopback",  # a media host whose name resolves to 127.0.0.1
        "redirect-to-loopback",  # fal's own file host redirecting elsewhere
        "metadata",  # the cloud metadata service
        "userinfo",  # credentials in the URL
        "not-http",
    ],
)
def test_b64_json_never_fetches_a_url_outside_fals_media_hosts(
    guarded: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
    secret: Secret,
    target: str,
) -> None:
    url = {
        "loopback-http": secret.url(),
        "loopback-https": secret.url("https"),
        "media-host-resolving-to-loopback": secret.url("https", "localhost"),
        "redirect-to-loopback": f"{sim.base_url}/_sim/files/_redirect?to={quote(secret.url())}",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "userinfo": f"https://user:pw@v3.fal.media:{secret.port}/x.png",
        "not-http": "file:///etc/passwd",
    }[target]
    client = make_client(guarded)
    error = bad_url_error(
        lambda: client.images.generate(
            model="fal-ai/flux/schnell", prompt=app_output(images(url)), response_format="b64_json"
        )
    )
    assert "SECRET" not in error.message
    assert secret.connections == 0


def test_speech_audio_never_comes_from_outside_fals_media_hosts(
    guarded: RunningProxy, make_client: Callable[..., openai.OpenAI], secret: Secret
) -> None:
    output = {"audio": {"url": secret.url(), "content_type": "audio/wav"}}
    client = make_client(guarded)
    bad_url_error(
        lambda: client.audio.speech.create(model="tts-1", voice="nova", input=app_output(output))
    )
    assert secret.connections == 0


class Storage(BaseHTTPRequestHandler):
    """fal's storage API, as an attacker in the middle could answer it: the signed upload
    URL points at the proxy's own network."""

    upload_url = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {"upload_url": self.upload_url, "file_url": "https://v3.fal.media/files/x.wav"}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_storage_upload_url_outside_fals_media_hosts_gets_no_bytes(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    secret: Secret,
) -> None:
    Storage.upload_url = secret.url()
    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    try:
        running = proxy_factory(
            fal_rest_url=f"http://127.0.0.1:{storage.server_address[1]}", inline_file_bytes=1024
        )
        client = make_client(running)
        bad_url_error(
            lambda: client.audio.transcriptions.create(
                model="whisper-1", file=("talk.wav", make_wav(), "audio/wav")
            )
        )
    finally:
        storage.shutdown()
        storage.server_close()
    assert secret.connections == 0


# -- item 2: no more files than asked for, and a byte budget per request ---------------------


def test_an_app_answering_40_images_gives_the_n_asked_for(
    proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim: SimulatorThread,
    sim_log: Records,
) -> None:  # fmt: skip
    big = f"{sim.base_url}/_sim/files/_size/{8 * MiB}.png"
    result = make_client(proxy).images.generate(
        model="fal-ai/flux/dev", n=2, prompt=app_output(images(*[big] * 40)),
        response_format="b64_json",
    )  # fmt: skip
    assert len(result.data) == 2
    assert len(sim_log("file_get")) == 2  # the 38 others are never read


def test_a_requests_files_share_one_byte_budget(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
) -> None:
    # Each file is under MAX_MEDIA_BYTES (32 MiB); together they are over the budget.
    running = proxy_factory(media_bytes_per_request=12 * MiB)
    big = f"{sim.base_url}/_sim/files/_size/{8 * MiB}.png"
    with pytest.raises(openai.APIStatusError) as info:
        make_client(running).images.generate(
            model="fal-ai/flux/dev", n=2, prompt=app_output(images(big, big)),
            response_format="b64_json",
        )  # fmt: skip
    assert info.value.status_code == 502
    assert info.value.code == "media_too_large"


def test_media_fetches_run_under_the_requests_deadline(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim: SimulatorThread,
) -> None:
    """fal takes most of REQUEST_TIMEOUT, then its file never answers: the request's own
    deadline ends it (a total timeout), not a fresh MEDIA_FETCH_TIMEOUT for the file."""
    running = proxy_factory(request_timeout=2.0, media_fetch_timeout=30)
    hang = f"{sim.base_url}/_sim/files/_hang"
    prompt = app_output(images(hang)) + directive({"latency_ms": 1000})
    with pytest.raises(openai.APIStatusError) as info:
        make_client(running).images.generate(
            model="fal-ai/flux/dev", prompt=prompt, response_format="b64_json"
        )
    assert info.value.status_code == 504
    assert "total timeout, 2 s" in info.value.message
