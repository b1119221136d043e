"""Which outbound proxy, if any, a connection to a fal host goes through.

The standard variables, as curl, requests and urllib read them: HTTPS_PROXY, HTTP_PROXY,
ALL_PROXY and NO_PROXY, upper or lower case (lower wins), read through
`urllib.request.getproxies()`. NO_PROXY takes `*`, host names (a suffix match: `fal.run`
covers `queue.fal.run`, a leading `.` or `*.` is ignored), `host:port`, IP addresses and
CIDR ranges. Only http:// proxies are supported (CONNECT for https targets).
"""

from __future__ import annotations

import base64
import ipaddress
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    # A `Proxy-Authorization` value from the URL's user:password; kept out of repr and logs.
    authorization: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port, for logs (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def environment_proxies() -> dict[str, str]:
    """scheme -> proxy URL, plus "no" -> NO_PROXY, from the environment."""
    return {key: value for key, value in urllib.request.getproxies().items() if value}


def proxy_for(proxies: Mapping[str, str], scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy for a connection to scheme://host:port, or None to connect directly."""
    url = proxies.get(scheme) or proxies.get("all")
    if not url or bypassed(proxies.get("no", ""), host, port):
        return None
    return parse_proxy_url(url)


def parse_proxy_url(url: str) -> Proxy:
    """http://user:pass@host:port (the scheme may be left out, as curl allows)."""
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        raise ValueError(
            "the proxy URL cannot be parsed"
        ) from None  # no URL: it may hold a password
    if parts.scheme.lower() != "http":
        raise ValueError(f"proxy scheme {parts.scheme!r} is not supported (only http://)")
    if not parts.hostname:
        raise ValueError("the proxy URL has no host")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def bypassed(no_proxy: str, host: str, port: int) -> bool:
    """Whether NO_PROXY says to connect to host:port directly."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """'host:443' -> ('host', 443); '[::1]:443' -> ('::1', 443); a bare IPv6 keeps its colons."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        if port.isdigit():
            return name, int(port)
    return entry, None
