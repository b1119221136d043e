"""The `fal-openai-proxy` command (and `python example.py`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvloop
from pydantic import SecretStr, ValidationError

from . import __version__
from .app import ConfigError, create_app
from .logs import configure_logging
from .server import DrainingServer, QuietServer, loopback_socket, serve_workers, uvicorn_config
from .settings import Settings

log = logging.getLogger("fal_openai_proxy")
SIMULATED_KEY = "simulated-fal-key"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fal-openai-proxy",
        description="An OpenAI-compatible API for fal.ai's language models. "
        "Every option can also be set in the environment or in .env (see README).",
    )
    parser.add_argument("--host", help="listen address (HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (PORT, default 3000)")
    parser.add_argument("--workers", type=int, help="worker processes (WORKERS, default 1)")
    parser.add_argument(
        "--simulate", action="store_true", help="answer from the built-in fal simulator"
    )
    parser.add_argument("--log-level", help="debug, info, warning or error (LOG_LEVEL)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("workers", args.workers),
            ("log_level", args.log_level),
        )
        if value is not None
    }
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        sys.exit(f"fal-openai-proxy: invalid setting: {exc}")
    configure_logging(settings.log_level)
    try:
        if args.simulate:
            uvloop.run(_serve_simulated(settings))
        elif settings.workers > 1:
            _serve_workers(settings)
        else:
            _serve(settings)
    except ConfigError as exc:
        sys.exit(f"fal-openai-proxy: {exc}")


def _announce(settings: Settings, simulated: bool) -> None:
    url = f"http://{settings.host}:{settings.port}/v1"
    if simulated:
        print(
            "*** SIMULATED: answers come from the built-in fal simulator, not from fal. ***\n"
            "*** Set FAL_KEY and drop --simulate to use fal.                            ***",
            file=sys.stderr,
        )
    elif settings.pass_through:
        print(
            "FAL_KEY is not set: pass-through mode. Each client's `Authorization: Bearer <key>` "
            "is sent to fal as its fal key.",
            file=sys.stderr,
        )
    print(f"fal-openai-proxy {__version__} listening on {url}", file=sys.stderr)


def _serve(settings: Settings) -> None:
    app = create_app(settings)
    _announce(settings, simulated=False)
    config = uvicorn_config(app, settings.host, settings.port, settings.log_level, settings)
    DrainingServer(config, app.state.proxy).run()


def _serve_workers(settings: Settings) -> None:
    """N processes sharing one listening socket; each drains on SIGTERM."""
    app = create_app(settings)  # fail fast on a bad configuration, in the parent
    _announce(settings, simulated=False)
    sock = uvicorn_config(
        app, settings.host, settings.port, settings.log_level, settings
    ).bind_socket()
    sys.exit(serve_workers(settings, sock))


def simulated_settings(settings: Settings, base: str) -> Settings:
    """The proxy's settings for --simulate: the simulator's URLs and a simulator-only key.
    Never the real FAL_KEY: the simulator keeps a log that any local user can read."""
    return settings.model_copy(
        update={
            "fal_run_url": f"{base}/run",
            "fal_queue_url": f"{base}/queue",
            "fal_key": SecretStr(SIMULATED_KEY),
        }
    )


async def _serve_simulated(settings: Settings) -> None:
    from .simulator import SimulatorConfig, create_simulator_app

    sim_socket = loopback_socket()
    sim_port = sim_socket.getsockname()[1]
    base = f"http://127.0.0.1:{sim_port}"
    settings = simulated_settings(settings, base)
    simulator = create_simulator_app(SimulatorConfig(interval_ms=30, events=12))
    sim_server = QuietServer(uvicorn_config(simulator, "127.0.0.1", sim_port, "warning"))
    app = create_app(settings)
    _announce(settings, simulated=True)
    proxy = DrainingServer(
        uvicorn_config(app, settings.host, settings.port, settings.log_level, settings),
        app.state.proxy,
    )
    sim_task = asyncio.ensure_future(sim_server.serve(sockets=[sim_socket]))
    try:
        await proxy.serve()
    finally:
        sim_server.should_exit = True
        await sim_task
