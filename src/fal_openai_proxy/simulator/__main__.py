"""``python -m fal_openai_proxy.simulator``: serve the fal simulator under uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .app import create_simulator_app
from .config import SimulatorConfig
from .server import bind, make_server


def _key_set(value: str) -> set[str]:
    return {k.strip() for k in value.split(",") if k.strip()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fal_openai_proxy.simulator", description="fal-compatible simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--interval-ms", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--keys", type=_key_set, default=None, help="k1,k2 (default: any key)")
    parser.add_argument("--forbidden-keys", type=_key_set, default=set(), help="answer 403")
    parser.add_argument(
        "--locked-keys", type=_key_set, default=set(), help="answer 403 'User is locked'"
    )
    parser.add_argument("--rate-limited-keys", type=_key_set, default=set())
    parser.add_argument("--key-concurrency", type=int, default=None)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config = SimulatorConfig(
        keys=args.keys,
        forbidden_keys=args.forbidden_keys,
        locked_keys=args.locked_keys,
        rate_limited_keys=args.rate_limited_keys,
        latency_ms=args.latency_ms,
        interval_ms=args.interval_ms,
        events=args.events,
        key_concurrency=args.key_concurrency,
    )
    app = create_simulator_app(config)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    scheme = "https" if args.tls_cert else "http"
    print(f"FAL_RUN_URL={scheme}://{host}:{port}{config.run_prefix}", flush=True)
    print(f"FAL_QUEUE_URL={scheme}://{host}:{port}{config.queue_prefix}", flush=True)
    server = make_server(app, args.log_level.lower(), tls_cert=args.tls_cert, tls_key=args.tls_key)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
