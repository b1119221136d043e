"""A request's head on the wire, and the origin a URL names."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import FalRequestInvalid, FalUnsafeURL
from .connection import Origin


def serialize(
    method: str,
    target: str,
    host: str,
    user_agent: str,
    headers: Mapping[str, str],
    length: int,
    extra: str = "",
) -> bytes:
    """The request line and headers. A CR or LF inside a value (a client's key, a URL from
    fal) would split the request: refused."""
    if " " in target or _has_line_break(target):
        raise FalUnsafeURL("a URL contains a space or a line break")
    if any(map(_has_line_break, (*headers, *headers.values()))):
        raise FalRequestInvalid("a header contains a line break")
    # identity: a compressed body could not be relayed piece by piece as it arrives.
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}{extra}",
        f"User-Agent: {user_agent}",
        "Accept-Encoding: identity",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    text = "\r\n".join(lines)
    try:
        return (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise FalRequestInvalid("a header is not Latin-1") from None


def _has_line_break(text: str) -> bool:
    return "\r" in text or "\n" in text


def split_url(url: str) -> tuple[Origin, str, str]:
    """URL -> ((scheme, host, port), request target, Host header)."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    origin, host = _origin(scheme.lower(), netloc)
    return origin, slash + path if slash else "/", host


@functools.lru_cache(maxsize=64)
def _origin(scheme: str, netloc: str) -> tuple[Origin, str]:
    """Parsed once per origin: fal's URLs share a handful of them."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        raise FalUnsafeURL("a URL has an unusable host or port") from None
    if scheme not in ("http", "https") or not parts.hostname:
        raise FalUnsafeURL(f"unsupported URL scheme or host: {scheme[:10]}")
    default = 443 if scheme == "https" else 80
    port = port or default
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
    host = name if port == default else f"{name}:{port}"
    return (scheme, parts.hostname, port), host
