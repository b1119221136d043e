"""The one guard for every URL the proxy fetches (or uploads to) because fal's answer named it:
images for `b64_json`, speech audio, storage upload URLs, video content.

Whoever owns a fal app writes its output, and any `owner/app` image id is passed through
(services/media.py), so a URL in fal's answer may point anywhere: at the proxy's own network
(SSRF), at a cloud metadata service, or at an endless file. Every such URL goes through
`MediaFetcher` (reads) or `MediaPolicy.check` (upload URLs), with these rules:

1. **Where**: https on one of fal's media hosts (DEFAULT_MEDIA_HOSTS, extended by the
   MEDIA_HOSTS setting), or the scheme, host and port of a configured `FAL_*_URL` (so the
   simulator, plain http on loopback, works). No user:password in the URL.
2. **Addresses**: every address the host resolves to must be public (not loopback, private,
   link-local, the metadata address 169.254.169.254, shared, reserved or multicast), except
   for the configured hosts. The connection is made to the addresses checked (no second
   lookup: DNS rebinding cannot slip in between); through an outbound proxy, which resolves
   names itself, the check is the proxy's own lookup of the same name.
3. **Redirects**: followed (at most MAX_REDIRECTS) only to URLs that pass 1 and 2.
4. **Size and time**: each file at most MAX_MEDIA_BYTES, a request's files together at most
   MEDIA_BYTES_PER_REQUEST (`MediaBudget`), all within the request's own deadline
   (REQUEST_TIMEOUT from when it began, not a fresh one per file), and MEDIA_FETCH_TIMEOUT
   between bytes.
5. **No key**: fal's key is never sent to these URLs.

Services make one `MediaBudget` per request (`fetcher.budget()`) and pass it to every fetch.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import FalResponseTooLarge, FalStatusError, FalUnsafeURL
from .timeouts import deadline
from .transport import StreamingResponse, Transport

# fal's CDN (`https://v3.fal.media/files/...`, `fal.media`, `v2.fal.media`, `v3b.fal.media`:
# fal-js `types/endpoints.ts` defaults), its API hosts, and the storage bucket its older
# outputs live in (`storage.googleapis.com/falserverless/...`); docs/fal-protocol.md §10.
DEFAULT_MEDIA_HOSTS = (
    "fal.media",
    "*.fal.media",
    "fal.run",
    "*.fal.run",
    "fal.ai",
    "*.fal.ai",
    "storage.googleapis.com/falserverless/",
)
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FileTooLarge(FalResponseTooLarge):
    """A file fal linked to is larger than MAX_MEDIA_BYTES, or a request's files together
    are larger than MEDIA_BYTES_PER_REQUEST."""

    @property
    def kind(self) -> str:
        return "media_too_large"


class MediaPolicy:
    """Which URLs and addresses media may come from (rules 1 and 2 above)."""

    __slots__ = ("_configured", "_configured_hosts", "_exact", "_prefixed", "_suffixes")

    def __init__(self, hosts: Iterable[str], configured_urls: Iterable[str]) -> None:
        """`hosts`: `name`, `*.name` (its subdomains) or `name/path/prefix`.
        `configured_urls`: the FAL_*_URL settings, trusted as they are."""
        exact: set[str] = set()
        suffixes: list[str] = []
        prefixed: dict[str, list[str]] = {}
        for raw in hosts:
            entry = raw.strip().lower()
            if not entry:
                continue
            name, slash, path = entry.partition("/")
            name = name.rstrip(".")
            if slash:
                prefixed.setdefault(name, []).append("/" + path)
            elif name.startswith("*."):
                suffixes.append(name[1:])  # ".fal.media"
            else:
                exact.add(name)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        self._prefixed = {name: tuple(paths) for name, paths in prefixed.items()}
        origins = set()
        for url in configured_urls:
            origin = _origin(url)
            if origin is not None:
                origins.add(origin)
        self._configured = frozenset(origins)
        self._configured_hosts = frozenset(host for _, host, _ in origins)

    def check(self, url: str) -> None:
        """FalUnsafeURL unless `url` may be fetched (rule 1; addresses are checked on
        connecting, by `allow_address`)."""
        if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
            raise FalUnsafeURL("fal named a file URL with spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise FalUnsafeURL("fal named a file URL that cannot be parsed") from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        if scheme not in ("http", "https") or not host:
            raise FalUnsafeURL("fal named a file URL that is not http(s)")
        if "@" in parts.netloc:
            raise FalUnsafeURL("fal named a file URL with credentials in it")
        default = 443 if scheme == "https" else 80
        if (scheme, host, port or default) in self._configured:
            return
        if scheme != "https":
            raise FalUnsafeURL("fal named a plain http file URL outside the configured hosts")
        if not self._host_allowed(host, parts.path):
            raise FalUnsafeURL("fal named a file URL outside fal's media hosts (see MEDIA_HOSTS)")

    def _host_allowed(self, host: str, path: str) -> bool:
        if host in self._exact or host.endswith(self._suffixes):
            return True
        prefixes = self._prefixed.get(host)
        return prefixes is not None and path.startswith(prefixes)

    def allow_address(self, host: str, address: str) -> bool:
        """Rule 2: may a connection for `host` be made to `address`?"""
        if host.lower().rstrip(".") in self._configured_hosts:
            return True
        return is_public_address(address)


def is_public_address(address: str) -> bool:
    """A globally reachable unicast address (IPv4-mapped IPv6 judged as the IPv4 inside)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


@dataclass(slots=True)
class MediaBudget:
    """What one request may still fetch: bytes, and time until its deadline (loop time)."""

    bytes_left: int
    total_bytes: int
    deadline: float
    seconds: float  # REQUEST_TIMEOUT, for the timeout's message

    def take(self, size: int) -> None:
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise FileTooLarge(
                f"fal's files for this request are over {self.total_bytes} bytes in all"
            )


class MediaFetcher:
    """Reads the files fal's answers name, under the rules above. `http` must be a client
    built with `allow_address=policy.allow_address` (`HttpClient.guarded`)."""

    def __init__(
        self,
        http: Transport,
        policy: MediaPolicy,
        *,
        max_file_bytes: int,
        bytes_per_request: int,
        idle_timeout: float,
        request_timeout: float,
    ) -> None:
        self.http = http
        self.policy = policy
        self.max_file_bytes = max_file_bytes
        self._bytes_per_request = bytes_per_request
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout

    def budget(self) -> MediaBudget:
        """A new request's budget: call it when the request begins."""
        at = asyncio.get_running_loop().time() + self._request_timeout
        return MediaBudget(
            self._bytes_per_request, self._bytes_per_request, at, self._request_timeout
        )

    async def fetch(self, url: str, budget: MediaBudget) -> tuple[bytes, str]:
        """The whole file and its content type."""
        response = await self.open(url, budget)
        parts = [chunk async for chunk in self.chunks(response, budget)]
        return b"".join(parts), response.headers.get("content-type", "")

    async def open(self, url: str, budget: MediaBudget) -> StreamingResponse:
        """GET the file (following allowed redirects); its body is then read with `chunks`."""
        for _ in range(MAX_REDIRECTS + 1):
            self.policy.check(url)
            async with deadline(self._idle_timeout, "first_event", budget.deadline, budget.seconds):
                response = await self.http.open("GET", url, {"Accept": "*/*"})
            if response.status in _REDIRECTS:
                location = response.headers.get("location")
                response.close()
                if not location:
                    raise FalStatusError(502, "fal's file URL redirects nowhere")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                response.close()
                # fal's own answer was fine; its file is not: a failure of fal (502), not ours.
                raise FalStatusError(502, f"fal's file URL answered HTTP {response.status}")
            length = response.headers.get("content-length")
            if length is not None and length.isdigit():
                size = int(length)
                if size > self.max_file_bytes:
                    response.close()
                    raise FileTooLarge(f"fal's file is larger than {self.max_file_bytes} bytes")
                if size > budget.bytes_left:
                    response.close()
                    budget.take(size)  # raises: over the request's budget
            return response
        raise FalUnsafeURL(f"fal's file URL redirects more than {MAX_REDIRECTS} times")

    async def chunks(
        self, response: StreamingResponse, budget: MediaBudget
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, within the file's and the request's limits."""
        seen = 0
        try:
            while True:
                async with deadline(self._idle_timeout, "idle", budget.deadline, budget.seconds):
                    chunk = await response.read_chunk()
                if not chunk:
                    return
                seen += len(chunk)
                if seen > self.max_file_bytes:
                    raise FileTooLarge(f"fal's file is larger than {self.max_file_bytes} bytes")
                budget.take(len(chunk))
                yield chunk
        finally:
            response.close()
