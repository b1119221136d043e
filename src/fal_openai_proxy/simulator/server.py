"""Running the simulator under uvicorn: in the foreground (CLI) or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from .app import SimulatorApp, create_simulator_app
from .config import SimulatorConfig
from .state import SimulatorState

# Hanging requests only end when their client leaves; do not let them block shutdown forever.
_GRACEFUL_SHUTDOWN_S = 1
# Idle keep-alive connections are closed after this long, as fal's ingress does: it is nginx
# (fal_client retries 502/503/504 whose body says `nginx`: docs/fal-protocol.md §5), and
# nginx's default keepalive_timeout is 75 s. uvicorn's own default (5 s) sits
# below the proxy's 30 s idle expiry, which made the benchmarks race the simulator's closes.
KEEP_ALIVE_S = 75


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so that port 0 yields a known free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(
    app: SimulatorApp,
    log_level: str = "warning",
    loop: str = "uvloop",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> uvicorn.Server:
    """``tls_cert``/``tls_key`` (PEM files): serve HTTPS, as fal does (benchmarks over TLS)."""
    config = uvicorn.Config(
        app,
        loop=loop,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    return uvicorn.Server(config)


@dataclass
class SimulatorThread:
    """A simulator served by uvicorn on its own event loop in a daemon thread."""

    app: SimulatorApp
    server: uvicorn.Server
    sock: socket.socket
    thread: threading.Thread = field(init=False)

    @property
    def state(self) -> SimulatorState:
        return self.app.simulator_state

    @property
    def base_url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def run_url(self) -> str:
        return self.base_url + self.state.config.run_prefix

    @property
    def queue_url(self) -> str:
        return self.base_url + self.state.config.queue_prefix

    def start(self, timeout: float = 10.0) -> None:
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator did not start")
            time.sleep(0.005)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)
        self.sock.close()


def start_simulator_thread(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> SimulatorThread:
    """Start a simulator in a background thread and wait until it accepts connections."""
    app = create_simulator_app(config)
    running = SimulatorThread(app, make_server(app, log_level), bind(host, port))
    running.start()
    return running
