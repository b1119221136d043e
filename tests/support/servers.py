"""Real servers on loopback ports, each on its own event loop in a background thread."""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.serve.app import ProxyApp, create_app
from fal_openai_proxy.serve.server import uvicorn_config
from fal_openai_proxy.serve.state import ProxyState
from fal_openai_proxy.simulator.server import SimulatorThread, bind

# Keys used by the whole suite; the secret audit looks for every one of them.
FAL_KEY = "test-fal-key-5f0c2a9e1b7d4e36"
FAL_KEY_2 = "test-fal-key-second-93ab71c2"
CLIENT_FAL_KEY = "test-client-fal-key-77d1e0aa"  # a client's own fal key (pass-through)
API_KEY = "test-proxy-api-key-c4f18e02"
API_KEY_2 = "test-proxy-api-key-b2-1d9e"
REVOKED_FAL_KEY = "test-fal-key-revoked-0e4d1c"  # the simulator does not know it: 401
ADMIN_KEY = "test-admin-key-6c1f0e93d2b84a57"
SECRETS = (FAL_KEY, FAL_KEY_2, CLIENT_FAL_KEY, API_KEY, API_KEY_2, REVOKED_FAL_KEY, ADMIN_KEY)

# Every proxy of the suite keeps its accounts in its own SQLite file (the default store is on,
# as in production), never in the working directory.
_DATABASES = Path(tempfile.mkdtemp(prefix="proxy-db-"))
atexit.register(shutil.rmtree, _DATABASES, True)
_NUMBERS = itertools.count()


def fresh_sqlite_url() -> str:
    return f"sqlite:///{_DATABASES}/proxy-{next(_NUMBERS)}.db"


@dataclass
class RunningProxy:
    app: ProxyApp
    server: uvicorn.Server
    port: int
    thread: threading.Thread = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    @property
    def state(self) -> ProxyState:
        state: ProxyState = self.app.state.proxy
        return state

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def proxy_settings(sim: SimulatorThread, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "fal_key": FAL_KEY,
        "fal_run_url": sim.run_url,
        "fal_queue_url": sim.queue_url,
        "fal_rest_url": sim.base_url + "/rest",
        "log_level": "info",
    }
    values.update(overrides)
    values.setdefault("database_url", fresh_sqlite_url())
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def start_proxy(settings: Settings) -> RunningProxy:
    app = create_app(settings)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, "warning", settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("proxy did not start")
        time.sleep(0.01)
    return RunningProxy(app, server, port, thread)
