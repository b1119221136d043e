"""The proxy served by granian instead of uvicorn, for `python -m bench.cpu --server granian` only.

`python bench/granian_app.py --host H --port P`, with the proxy's settings in the
environment as for `python -m fal_openai_proxy`. One granian worker process (granian's
default process model: a supervisor and its worker) runs our app under ASGI on uvloop, with
the protections granian has that match ours (see docs/benchmarks.md, "uvicorn or granian"):

- MAX_HEADER_BYTES: hyper's read buffer (`HTTP1Settings.max_buffer_size`) bounds a request
  head; granian's floor is 8 KiB and its unit the buffer, not the head.
- HEADER_TIMEOUT: hyper's `header_read_timeout`.
- MAX_CONNECTIONS: none (granian's `backpressure` caps requests in flight, not connections;
  a connection over it waits instead of getting a 503).
- the drop of a stream client that stops reading (`openai/sse.py` ABORT_KEY): none, so the
  stream ends at its write timeout but the socket stays until the client goes.
- `serve/connection.py`'s body limits in the protocol layer (BODY_TIMEOUT whether or not the
  app reads the body, the lingering close after an early answer, the trailer cap): none; the
  middleware's own 408 and 413 remain, for bodies the app reads.
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl
from granian.http import HTTP1Settings
from granian.server import Server

from fal_openai_proxy.base.logs import configure_logging
from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.serve.app import create_app
from fal_openai_proxy.serve.server import raise_file_limit

# Below this granian refuses the buffer size (its CLI's minimum).
MIN_BUFFER = 8192


def build() -> Any:
    """The app, in the worker: as `fal_openai_proxy` builds it, with gc.freeze() once the
    lifespan has started (uvicorn's DrainingServer does the same)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, worker=True)
    raise_file_limit(settings.max_connections)
    app = create_app(settings)

    async def frozen_after_startup(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_then_freeze(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                gc.freeze()

        await app(scope, receive, send_then_freeze)

    return frozen_after_startup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--task-impl", choices=[t.value for t in TaskImpl], default="asyncio")
    parser.add_argument("--runtime-mode", choices=[m.value for m in RuntimeModes], default="auto")
    args = parser.parse_args(argv)
    settings = Settings()
    server = Server(
        "bench.granian_app:build",  # a name for logs; the loader below builds the app
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        task_impl=TaskImpl(args.task_impl),
        runtime_mode=RuntimeModes(args.runtime_mode),
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,  # uvicorn's
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, int(settings.header_timeout * 1000)),
            keep_alive=True,
            max_buffer_size=max(MIN_BUFFER, settings.max_header_bytes),
        ),
        log_enabled=False,
        log_access=False,
    )
    server.serve(target_loader=lambda *_: build(), wrap_loader=False)


if __name__ == "__main__":
    main()
