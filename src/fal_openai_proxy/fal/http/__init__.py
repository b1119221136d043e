"""The one place that knows how bytes reach fal: a small HTTP/1.1 client on asyncio.

Parsing is httptools' (the parser uvicorn uses). It replaced aiohttp after measurement: per
request it costs a fraction of aiohttp's CPU, and per open stream about 7 KB instead of 16 KB
(docs/benchmarks.md). Split as httpcore is:

- `parser.py`: one response, httptools' callbacks, and the limits on what an upstream may
  send (head bytes and lines, trailers);
- `connection.py`: one TCP or TLS connection (TLS on ssl.MemoryBIO), writing requests with
  back-pressure;
- `response.py`: `Reply` and `OpenResponse`, what callers hold (`read_body` is bounded);
- `pool.py`: `HttpClient`, the keep-alive pool, the cap on connections, dialling;
- `request.py`, `dial.py`, `proxies.py`: the request head, sockets (happy eyeballs, CONNECT
  tunnels, CAs), and the outbound proxy from the environment.

Everything above this package sees `HttpClient`, `Reply`, `OpenResponse` and the errors in
`fal/errors.py`.
"""

from .parser import MAX_HEAD_BYTES, MAX_HEADER_LINES
from .pool import DEFAULT_MAX_BODY_BYTES, AddressCheck, HttpClient, default_max_connections
from .response import OpenResponse, Reply

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_HEADER_LINES",
    "MAX_HEAD_BYTES",
    "AddressCheck",
    "HttpClient",
    "OpenResponse",
    "Reply",
    "default_max_connections",
]
