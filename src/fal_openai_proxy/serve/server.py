"""Serving: uvicorn with a drain on SIGTERM, and the in-process simulator for --simulate."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import gc
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from starlette.types import ASGIApp

from ..base.metrics import MULTIPROC_DIR_ENV
from ..base.settings import Settings
from ..openai.sse import close_streams
from .connection import limited_protocol
from .state import ProxyState

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """On SIGTERM: /readyz and new requests get 503 at once, in-flight requests get up to
    DRAIN_TIMEOUT seconds to finish, then the process exits 0. A second signal ends it now.
    """

    def __init__(self, config: uvicorn.Config, state: ProxyState) -> None:
        super().__init__(config)
        self._state = state
        self._drain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        raise_file_limit(self._state.settings.max_connections)
        return_large_frees()
        await super().startup(sockets)
        # Everything alive now lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall requests for 15+ ms.
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would re-raise it and exit non-zero.
        if self._state.draining:
            self.should_exit = self.force_exit = True
            return
        self._state.draining = True
        log.info("draining: %d requests in flight", self._state.in_flight)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._state.settings.drain_timeout
        while self._state.in_flight > 0 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a poll: in_flight is a plain counter
        if self._state.in_flight:
            log.warning("drain timeout: closing %d requests", self._state.in_flight)
            if close_streams(self._state.open_streams):
                await asyncio.sleep(0.2)  # let the streams send their farewell
        self.should_exit = True


_in_simulator: contextvars.ContextVar[bool] = contextvars.ContextVar("in_simulator", default=False)


def _label_simulator_lines(record: logging.LogRecord) -> bool:
    """uvicorn's lines from the simulator: its start-up chatter ("Started server process", a
    second time) is dropped; anything else says it comes from the simulator."""
    if not _in_simulator.get():
        return True
    if record.levelno < logging.WARNING:
        return False
    record.msg = f"fal simulator: {record.msg}"
    return True


class QuietServer(uvicorn.Server):
    """A second server in the same process (the simulator): it leaves signals to the first,
    and keeps its uvicorn lines from being mistaken for the proxy's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        logger = logging.getLogger("uvicorn.error")
        if _label_simulator_lines not in logger.filters:
            logger.addFilter(_label_simulator_lines)
        _in_simulator.set(True)  # this task and the tasks it starts: the simulator's
        await super().serve(sockets)


def uvicorn_config(
    app: ASGIApp, host: str, port: int, log_level: str, settings: Settings | None = None
) -> uvicorn.Config:
    """`settings` gives the connection limits and the trusted proxies; without it (the
    in-process simulator) uvicorn's protocol runs, trusting no forwarded headers."""
    http: type[asyncio.Protocol] | str = "httptools"
    forwarded = ""
    if settings is not None:
        http = limited_protocol(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            max_connections=settings.max_connections,
            body_timeout=settings.body_timeout,
            max_body_bytes=settings.max_body_bytes,
        )
        forwarded = settings.forwarded_allow_ips.strip()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http,
        # uvicorn trusts X-Forwarded-For from loopback by default: behind a same-host proxy
        # that passes the header on, clients would choose their own address (and rate limit).
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or None,
        log_config=None,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=1,
        # The in-process simulator keeps idle connections as fal's nginx ingress does (75 s,
        # simulator/server.py KEEP_ALIVE_S); the proxy's own clients get uvicorn's 5 s.
        timeout_keep_alive=5 if settings is not None else 75,
        server_header=False,
        date_header=False,
    )


def raise_file_limit(max_connections: int) -> None:
    """Room for MAX_CONNECTIONS clients plus their fal connections, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max_connections + 256
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# glibc's mallopt parameter (malloc.h), and the size from which every allocation is its own
# mapping, returned to the system when freed.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1024 * 1024


def return_large_frees() -> None:
    """Give the memory of large buffers (uploads, big answers) back when they are freed.

    glibc raises its mmap threshold after each large free (up to 32 MiB), so later uploads
    come from the heap and stay in RSS: 20 parallel 16 MiB uploads kept ~170 MiB for good.
    A fixed 1 MiB threshold returns them (bench/uploads.py: +3 MiB kept); allocations that
    large are rare on the request path, so the extra mmap calls cost nothing measurable.
    Not glibc (musl, macOS): nothing to do."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def listen_socket(host: str, port: int) -> socket.socket:
    """The proxy's listening socket, bound before the banner is printed: a busy port fails
    with OSError before anything says the server is up. Inheritable, for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def log_listening(sock: socket.socket) -> None:
    """uvicorn's own start line, which it leaves out for a socket it is handed."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port
    )


def loopback_socket() -> socket.socket:
    """A socket on a free loopback port, bound before either server starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_workers(settings: Settings, sock: socket.socket) -> int:
    """Run WORKERS processes on one listening socket; on SIGTERM each drains, then exits.

    The workers share a fresh PROMETHEUS_MULTIPROC_DIR, removed at exit, so that /metrics
    reports the whole group. Returns the worst exit code of the workers.
    """
    metrics_dir = tempfile.mkdtemp(prefix="fal-openai-proxy-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # read by prometheus-client in each worker
    try:
        return _supervise(settings, sock)
    finally:
        del os.environ[MULTIPROC_DIR_ENV]
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(settings: Settings, sock: socket.socket) -> int:
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def spawn() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker_main, args=(settings, sock), daemon=False)
        process.start()
        return process

    workers = [spawn() for _ in range(settings.workers)]
    while not stop.wait(0.5):
        for index, process in enumerate(workers):
            if not process.is_alive():
                log.error("worker %d exited with %s; restarting it", process.pid, process.exitcode)
                # Its counters stay in the sums; its gauges leave them.
                mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                workers[index] = spawn()
    for process in workers:
        process.terminate()  # SIGTERM: the worker drains
    for process in workers:
        process.join()
        mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
    return max((_exit_status(p.exitcode) for p in workers), default=0)


def _exit_status(exitcode: int | None) -> int:
    """A worker that our SIGTERM ended before it installed its handlers (still starting) had
    served nothing: that is a clean stop. Once serving, SIGTERM makes it drain and exit 0."""
    if exitcode == -signal.SIGTERM:
        return 0
    return abs(exitcode or 0)


def _worker_main(settings: Settings, sock: socket.socket) -> None:
    from ..base.logs import configure_logging
    from .app import create_app

    configure_logging(settings.log_level, settings.log_format, worker=True)
    app = create_app(settings)
    app.state.proxy.upstream.metrics.start_sync()
    config = uvicorn_config(app, settings.host, settings.port, settings.log_level, settings)
    DrainingServer(config, app.state.proxy).run(sockets=[sock])


__all__ = [
    "DrainingServer",
    "QuietServer",
    "loopback_socket",
    "raise_file_limit",
    "serve_workers",
    "uvicorn_config",
]
