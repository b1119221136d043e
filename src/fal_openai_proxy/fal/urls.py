"""Which URLs fal's queue may send us to, and onto which host they go.

After a submit, fal_client follows the `status_url`, `response_url` and `cancel_url` that fal
returns rather than building its own (fal-ai/fal `projects/fal_client/src/fal_client/
client.py`, `submit`; docs/fal-protocol.md §1). We do the same, with two rules of our own:

- When `FAL_QUEUE_URL` is not fal's default (a relay, or fal's backup queue host), every
  queue URL is moved onto its scheme, host and path prefix, so that all calls go there.
- Otherwise the URL must be https on one of fal's own hosts (`fal.run`, `fal.ai` and their
  subdomains; fal answers with `https://queue.fal.run/...`) or on a configured host; plain
  http is accepted only if the configured URL is http. Anything else is refused before the
  key is sent.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from .errors import FalUnsafeURL

_FAL_DOMAINS = ("fal.run", "fal.ai")
# The form of the URLs fal's queue answers with: a scheme, a host name or IPv4 address and
# maybe a port, a path, maybe a query; no user, fragment, space or IPv6 literal. For these
# `urlsplit` gives exactly the four groups (and the host is the netloc without its port).
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.-]+(?::[0-9]{1,5})?)(/[^?#\s]*)(?:\?([^#\s]*))?")
_MAX_CHECKED = 64


def is_fal_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in _FAL_DOMAINS)


class QueueURLs:
    """Checks and rewrites the URLs named by fal's queue answers."""

    __slots__ = ("_allow_http", "_checked", "_hosts", "_prefix", "_rewrite_to")

    def __init__(self, *, queue_url: str, run_url: str, default_queue_url: str) -> None:
        queue = urlsplit(queue_url)
        self._hosts = frozenset(
            (u.hostname or "").lower() for u in (queue, urlsplit(run_url)) if u.hostname
        )
        self._allow_http = queue.scheme == "http"
        self._prefix = queue.path.rstrip("/")
        self._rewrite_to: tuple[str, str] | None = (
            None if queue_url.rstrip("/") == default_queue_url else (queue.scheme, queue.netloc)
        )
        self._checked: set[tuple[str, str]] = set()  # (scheme, netloc) already allowed

    def follow(self, url: str) -> str:
        """The URL to call for a queue URL that fal returned; FalUnsafeURL if refused.

        Three per request: a URL of the plain form fal sends is taken apart by one regular
        expression, and each origin checked once (`_checked`); any other by `urlsplit`."""
        plain = _PLAIN_URL.fullmatch(url)
        if plain is None:
            return self._follow_parsed(url)
        scheme, netloc, path, query = plain.groups()
        if self._rewrite_to is not None:
            new_scheme, new_netloc = self._rewrite_to
            if self._prefix and not path.startswith(self._prefix + "/"):
                path = self._prefix + path
            tail = f"{path}?{query}" if query else path  # as urlunsplit drops an empty "?"
            return f"{new_scheme}://{new_netloc}{tail}"
        if (scheme, netloc) not in self._checked:
            self._follow_parsed(url)  # raises if refused
            if len(self._checked) < _MAX_CHECKED:  # a bound: the origins come from fal
                self._checked.add((scheme, netloc))
        return url

    def _follow_parsed(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (parsed here: a bad port raises)
        except ValueError:
            raise FalUnsafeURL("fal's queue answer names a URL that cannot be parsed") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FalUnsafeURL("fal's queue answer names a URL that is not http(s)")
        if self._rewrite_to is not None:
            scheme, netloc = self._rewrite_to
            path = parts.path
            if self._prefix and not path.startswith(self._prefix + "/"):
                path = self._prefix + path
            return urlunsplit((scheme, netloc, path, parts.query, ""))
        if parts.scheme == "http" and not self._allow_http:
            raise FalUnsafeURL("fal's queue answer names a plain http URL; refused")
        host = parts.hostname.lower()
        if not (is_fal_host(host) or host in self._hosts):
            raise FalUnsafeURL("fal's queue answer names a host that is not fal's; refused")
        return url
