"""The `fal-openai-proxy` command (and `python example.py`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence
from typing import Any

import uvloop
from pydantic import SecretStr, ValidationError

from .. import __version__
from ..base.logs import configure_logging, redact_url
from ..base.settings import Settings
from ..base.settings_doc import help_epilog, markdown
from ..store.db import describe, upgrade
from .app import ConfigError, create_app
from .config_check import LOG_LEVELS, run_checks, validation_problems
from .doctor import FAMILIES, as_json, as_table, diagnose, failed
from .server import (
    DrainingServer,
    QuietServer,
    listen_socket,
    log_listening,
    loopback_socket,
    serve_workers,
    uvicorn_config,
)

log = logging.getLogger("fal_openai_proxy")
SIMULATED_KEY = "simulated-fal-key"


COMMANDS = {
    "serve": "run the server (the default)",
    "check-config": "validate the environment and .env, list every problem, exit 1 if any",
    "doctor": "check-config, then fal keys, balance, one real call per family, Redis; exit 1 "
    "on any failure",
    "settings-markdown": "print docs/configuration.md, generated from the settings",
    "db": "`db upgrade`: migrate the accounts database (DATABASE_URL) to this version",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fal-openai-proxy",
        usage="%(prog)s [serve | check-config | doctor | settings-markdown | db upgrade] [options]",
        description="An OpenAI-compatible API for fal.ai's language, image, audio and video "
        "models. "
        "Every option can also be set in the environment or in .env.\n\ncommands:\n"
        + "\n".join(f"  {name:<19}{meaning}" for name, meaning in COMMANDS.items()),
        epilog=help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=COMMANDS,
        help=argparse.SUPPRESS,
    )
    parser.add_argument("action", nargs="?", choices=["upgrade"], help=argparse.SUPPRESS)
    parser.add_argument("--host", help="listen address (HOST)")
    parser.add_argument("--port", type=int, help="listen port (PORT)")
    parser.add_argument("--workers", type=int, help="worker processes (WORKERS)")
    parser.add_argument(
        "--simulate", action="store_true", help="answer from the built-in fal simulator"
    )
    parser.add_argument("--log-level", help="debug, info, warning or error (LOG_LEVEL)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    doctor = parser.add_argument_group(
        "doctor (one minimal real call per family; --chat alone by default)"
    )
    for family in FAMILIES:
        doctor.add_argument(f"--{family}", action="store_true", help=f"call the {family} family")
    doctor.add_argument("--all", action="store_true", help="call every family")
    doctor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("workers", args.workers),
            ("log_level", args.log_level),
        )
        if value is not None
    }


def load_settings(args: argparse.Namespace) -> Settings:
    return Settings(**flag_overrides(args))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "settings-markdown":
        sys.stdout.write(markdown())
        return
    if args.command == "check-config":
        sys.exit(check_config(args))
    if args.command == "doctor":
        sys.exit(doctor(args))
    if args.command == "db":
        sys.exit(db_upgrade(args))
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        sys.exit("fal-openai-proxy: invalid settings:\n  " + "\n  ".join(validation_problems(exc)))
    try:
        configure_logging(settings.log_level, settings.log_format)
    except ValueError:
        sys.exit(f"fal-openai-proxy: LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}.")
    try:
        if args.simulate:
            uvloop.run(_serve_simulated(settings))
        elif settings.workers > 1:
            _serve_workers(settings)
        else:
            _serve(settings)
    except ConfigError as exc:
        sys.exit(f"fal-openai-proxy: {exc}")


def check_config(args: argparse.Namespace) -> int:
    problems = run_checks(flag_overrides(args))
    if not problems:
        print(f"fal-openai-proxy {__version__}: the configuration is valid.")
        return 0
    print(f"fal-openai-proxy: {len(problems)} problem(s) in the configuration:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def db_upgrade(args: argparse.Namespace) -> int:
    if args.action != "upgrade":
        print("fal-openai-proxy: say what to do with the database: `db upgrade`.")
        return 2
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print("fal-openai-proxy: invalid settings:\n  " + "\n  ".join(validation_problems(exc)))
        return 1
    if not settings.accounts_enabled:
        print("fal-openai-proxy: DATABASE_URL is none: there is no database to migrate.")
        return 1
    where = describe(settings.database_url)
    try:
        revision = asyncio.run(upgrade(settings.database_url))
    except Exception as exc:  # never the message: it may quote the URL
        print(f"fal-openai-proxy: cannot migrate {where} ({type(exc).__name__}).")
        return 1
    print(f"fal-openai-proxy: {where} is at schema revision {revision}.")
    return 0


def doctor(args: argparse.Namespace) -> int:
    problems = run_checks(flag_overrides(args))
    try:
        settings = load_settings(args)
    except ValidationError:
        print(f"fal-openai-proxy: {len(problems)} problem(s) in the configuration:")
        print("\n".join(f"  - {problem}" for problem in problems))
        return 1
    logging.basicConfig(level=logging.ERROR)  # the table is the output; warnings would garble it
    asked = [f for f in FAMILIES if getattr(args, f) or args.all] or ["chat"]
    checks = uvloop.run(diagnose(settings, asked, problems))
    print(as_json(checks) if args.json else as_table(checks))
    return 1 if failed(checks) else 0


def _announce(
    settings: Settings, simulator_url: str | None = None, fal_key_set: bool = False
) -> None:
    """The start banner; `fal_key_set`: with --simulate, whether FAL_KEY was given (and so
    left unused)."""
    base = f"http://{settings.host}:{settings.port}"
    lines = [f"fal-openai-proxy {__version__}"]
    if simulator_url:
        # `make run` adds --simulate only while FAL_KEY is unset: setting it is the step.
        how = (
            "FAL_KEY is set but unused: drop --simulate to use fal."
            if fal_key_set
            else "Set FAL_KEY (in the environment or .env) to use fal."
        )
        notes = ["SIMULATED: answers come from the built-in fal simulator, not from fal.", how]
        width = max(len(n) for n in notes)
        lines = [
            *(f"*** {note:<{width}} ***" for note in notes),
            *lines,
            f"  proxy (point OpenAI clients here): {base}/v1",
            f"  fal simulator (the proxy's upstream, internal): {simulator_url}",
        ]
    else:
        lines.append(f"  proxy (point OpenAI clients here): {base}/v1")
        run, queue = redact_url(settings.fal_run_url), redact_url(settings.fal_queue_url)
        lines.append(f"  upstream: {run} and {queue}")
        if settings.pass_through:
            lines.append(
                "  FAL_KEY is not set: pass-through mode. Each client's "
                "`Authorization: Bearer <key>` is sent to fal as its fal key."
            )
    if settings.api_keys:
        lines.append(
            "  API_KEY is set: clients must send `Authorization: Bearer <key>` with one of its "
            f"{len(settings.api_keys)} key(s) (the SDKs' api_key)"
        )
    if settings.workers > 1:
        lines.append(f"  workers: {settings.workers} on one port (/metrics adds them up)")
    lines.append(f"  API reference: {base}/docs   metrics: {base}/metrics")
    if settings.admin_key is not None:
        lines.append(f"  console (sign in with ADMIN_KEY): {base}/console")
    else:
        lines.append(f"  console: {base}/console (set ADMIN_KEY to sign in)")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _listen(settings: Settings) -> socket.socket:
    """The listening socket, before any banner: a busy port is one line and exit 1."""
    try:
        return listen_socket(settings.host, settings.port)
    except OSError as exc:
        sys.exit(
            f"fal-openai-proxy: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror or exc}. Is another server using it? Choose another PORT (--port)."
        )


def _serve(settings: Settings) -> None:
    app = create_app(settings)
    sock = _listen(settings)
    _announce(settings)
    config = uvicorn_config(app, settings.host, settings.port, settings.log_level, settings)
    log_listening(sock)  # once uvicorn's config has set its loggers' level
    DrainingServer(config, app.state.proxy).run(sockets=[sock])


def _serve_workers(settings: Settings) -> None:
    """N processes sharing one listening socket; each drains on SIGTERM."""
    create_app(settings)  # fail fast on a bad configuration, in the parent
    sock = _listen(settings)
    _announce(settings)
    log_listening(sock)
    sys.exit(serve_workers(settings, sock))


def simulated_settings(settings: Settings, base: str) -> Settings:
    """The proxy's settings for --simulate: the simulator's URLs and a simulator-only key.
    Never the real FAL_KEY: the simulator keeps a log that any local user can read."""
    return settings.model_copy(
        update={
            "fal_run_url": f"{base}/run",
            "fal_queue_url": f"{base}/queue",
            "fal_api_url": f"{base}/platform",  # the model list, unit prices, the balance
            "fal_key": SecretStr(SIMULATED_KEY),
        }
    )


async def _serve_simulated(settings: Settings) -> None:
    from ..simulator import SimulatorConfig, create_simulator_app

    sim_socket = loopback_socket()
    sim_port = sim_socket.getsockname()[1]
    base = f"http://127.0.0.1:{sim_port}"
    fal_key_set = bool(settings.fal_keys)
    settings = simulated_settings(settings, base)
    simulator = create_simulator_app(SimulatorConfig(interval_ms=30, events=12))
    sim_server = QuietServer(uvicorn_config(simulator, "127.0.0.1", sim_port, "warning"))
    app = create_app(settings)
    sock = _listen(settings)
    _announce(settings, base, fal_key_set)
    proxy = DrainingServer(
        uvicorn_config(app, settings.host, settings.port, settings.log_level, settings),
        app.state.proxy,
    )
    log_listening(sock)  # once the proxy's config has set uvicorn's loggers to its level
    sim_task = asyncio.ensure_future(sim_server.serve(sockets=[sim_socket]))
    try:
        await proxy.serve(sockets=[sock])
    finally:
        sim_server.should_exit = True
        await sim_task
