"""``python -m fal_openai_proxy.simulator --tls-cert/--tls-key``: the simulator over HTTPS,
as the benchmarks run it (fal is only reached over HTTPS in production)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from fal_openai_proxy.simulator.__main__ import parse_args

ROUTER = "openrouter/router"


def _urls(out: Path, process: subprocess.Popen[bytes]) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        urls = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        if "FAL_QUEUE_URL" in urls and process.poll() is None:
            return urls
        time.sleep(0.05)
    raise RuntimeError("the simulator did not print its URLs")


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    folder = tmp_path_factory.mktemp("sim-tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    out = folder / "stdout"
    args = ["--port", "0", "--tls-cert", str(folder / "cert.pem")]
    args += ["--tls-key", str(folder / "key.pem")]
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "fal_openai_proxy.simulator", *args],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        yield _urls(out, process), folder / "ca.pem"
    finally:
        process.kill()
        process.wait(timeout=10)


def _post(url: str, context: ssl.SSLContext) -> dict[str, object]:
    body = json.dumps({"prompt": "Human: over tls", "model": "m"}).encode()
    headers = {"Authorization": "Key k", "Content-Type": "application/json"}
    request = urllib.request.Request(url, body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=10, context=context) as reply:
        result: dict[str, object] = json.loads(reply.read())
        return result


def test_serves_https_and_says_so(tls_sim: tuple[dict[str, str], Path]) -> None:
    urls, ca_file = tls_sim
    assert urls["FAL_RUN_URL"].startswith("https://127.0.0.1:")
    assert urls["FAL_QUEUE_URL"].startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(ca_file))
    answer = _post(f"{urls['FAL_RUN_URL']}/{ROUTER}", trusted)
    assert answer["output"] == "Simulated answer to: over tls"
    # The queue's per-request URLs keep the scheme, so a client follows them over TLS too.
    submitted = _post(f"{urls['FAL_QUEUE_URL']}/{ROUTER}", trusted)
    assert str(submitted["status_url"]).startswith("https://127.0.0.1:")


def test_an_untrusted_client_is_refused(tls_sim: tuple[dict[str, str], Path]) -> None:
    urls, _ = tls_sim
    with pytest.raises(urllib.error.URLError) as caught:
        _post(f"{urls['FAL_RUN_URL']}/{ROUTER}", ssl.create_default_context())
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-key"])
def test_cert_and_key_go_together(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([flag, "x.pem"])
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
