"""NO_PROXY matching and proxy URLs, as curl and requests read them."""

from __future__ import annotations

import pytest

from fal_openai_proxy.fal.http.proxies import Proxy, bypassed, parse_proxy_url, proxy_for


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        ("*", "fal.run", 443, True),
        ("fal.run", "fal.run", 443, True),
        ("fal.run", "queue.fal.run", 443, True),
        (".fal.run", "queue.fal.run", 443, True),
        ("*.fal.run", "queue.fal.run", 443, True),
        ("FAL.RUN", "queue.fal.run.", 443, True),
        ("fal.run", "notfal.run", 443, False),
        ("run", "fal.run", 443, True),
        ("fal.run:443", "fal.run", 443, True),
        ("fal.run:80", "fal.run", 443, False),
        ("10.0.0.1", "10.0.0.1", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("::1", "::1", 443, True),
        ("[::1]:443", "::1", 443, True),
        ("fd00::/8", "fd00::5", 443, True),
        ("0.0.1", "10.0.0.1", 443, False),  # a suffix never matches an IP address
        (" , example.com ,, fal.run", "fal.run", 443, True),
        ("", "fal.run", 443, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, expected: bool) -> None:
    assert bypassed(no_proxy, host, port) is expected


def test_proxy_urls() -> None:
    assert parse_proxy_url("http://proxy:3128") == Proxy("proxy", 3128)
    assert parse_proxy_url("proxy.corp") == Proxy("proxy.corp", 80)
    with_auth = parse_proxy_url("http://us%3Aer:p%40ss@proxy:3128")
    assert with_auth.authorization == "Basic dXM6ZXI6cEBzcw=="  # "us:er:p@ss"
    assert "p@ss" not in repr(with_auth) and "cEBzcw" not in repr(with_auth)
    for bad in ("https://proxy:3128", "socks5://proxy:1080", "http://:3128"):
        with pytest.raises(ValueError, match="proxy"):
            parse_proxy_url(bad)


def test_scheme_then_all_proxy_then_none() -> None:
    proxies = {"https": "http://a:1", "all": "http://b:2", "no": "fal.run"}
    assert proxy_for(proxies, "https", "x.ai", 443) == Proxy("a", 1)
    assert proxy_for(proxies, "http", "x.ai", 80) == Proxy("b", 2)
    assert proxy_for(proxies, "https", "queue.fal.run", 443) is None
    assert proxy_for({}, "https", "x.ai", 443) is None
