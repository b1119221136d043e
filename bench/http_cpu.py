"""``python -m bench.http_cpu``: CPU of fal/http/ alone, per request, on pooled connections.

A raw upstream in a child process answers every request at once (a 200 with a length, or
10 chunks); this process runs only `HttpClient` on uvloop, so its CPU time per request is
the client's cost (rounds interleaved, best round kept: the box is shared).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time

import uvloop

from fal_openai_proxy.fal.http import HttpClient

CONCURRENCY = 8
REQUESTS = 4000
ROUNDS = 5
BODY = b'{"output":"' + b"x" * 200 + b'"}'
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
CHUNKED += b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in [b"data: {}\n\n"] * 10) + b"0\r\n\r\n"


class _Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(CHUNKED if head.startswith(b"POST /stream") else PLAIN)


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Upstream, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


async def _round(client: HttpClient, url: str, stream: bool, requests: int = REQUESTS) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            response = await client.open("POST", url, {"Authorization": "Key k"}, b"{}")
            if stream:
                while await response.read_chunk():
                    pass
            else:
                await response.read_body()
            response.release()

    start = time.process_time()
    await asyncio.gather(*(worker(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - start) / requests * 1e6


async def _measure(port: int) -> dict[str, float]:
    client = HttpClient(connect_timeout=5, max_idle_per_host=64, user_agent="bench")
    # No idle connections kept: every request opens (and closes) its own.
    unpooled = HttpClient(connect_timeout=5, max_idle_per_host=0, user_agent="bench")
    best = {"non-stream": float("inf"), "stream (10 chunks)": float("inf")}
    best["non-stream, new connection each"] = float("inf")
    base = f"http://127.0.0.1:{port}"
    for _ in range(ROUNDS):
        for name, stream in (("non-stream", False), ("stream (10 chunks)", True)):
            url = f"{base}/stream" if stream else f"{base}/run"
            best[name] = min(best[name], await _round(client, url, stream))
        micros = await _round(unpooled, f"{base}/run", False, REQUESTS // 4)
        best["non-stream, new connection each"] = min(
            best["non-stream, new connection each"], micros
        )
    await client.close()
    await unpooled.close()
    return best


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    child = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    child.start()
    try:
        results = uvloop.run(_measure(sock.getsockname()[1]))
    finally:
        child.terminate()
    for name, micros in results.items():
        print(f"HttpClient CPU per request, {name}: {micros:.1f} us")


if __name__ == "__main__":
    main()
