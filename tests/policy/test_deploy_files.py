"""deploy/: the compose file, nginx.conf and the Kubernetes manifests agree with the proxy's
settings (drain, timeouts, body size, probes). `make lint` checks their syntax and schemas;
this checks what the schemas cannot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fal_openai_proxy.base.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def duration(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "m" else 1)


def compose() -> dict[str, Any]:
    (doc,) = load_all(DEPLOY / "compose.yaml")
    return doc


def test_compose_runs_three_replicas_behind_nginx_with_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"proxy", "redis", "nginx", "postgres"}
    assert services["proxy"]["deploy"]["replicas"] == 3
    assert services["proxy"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert all("healthcheck" in service for service in services.values())
    assert "/healthz" in " ".join(services["proxy"]["healthcheck"]["test"])
    assert "ports" not in services["proxy"], "replicas are reached through nginx only"
    assert services["nginx"]["depends_on"]["proxy"]["condition"] == "service_healthy"


def test_compose_keeps_keys_out_and_outlasts_the_drain() -> None:
    proxy = compose()["services"]["proxy"]
    assert not {"FAL_KEY", "API_KEY"} & set(proxy["environment"]), "keys go in the env_file"
    assert proxy["env_file"], "keys come from an env file"
    drain = float(proxy["environment"]["DRAIN_TIMEOUT"])
    assert duration(proxy["stop_grace_period"]) > drain
    example = (DEPLOY / "proxy.env.example").read_text(encoding="utf-8")
    assert "FAL_KEY=" in example and "API_KEY=" in example


def nginx_directives() -> dict[str, list[str]]:
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.endswith(";"):
            name, _, value = line[:-1].partition(" ")
            directives.setdefault(name, []).append(value.strip())
    return directives


def test_nginx_streams_unbuffered_and_waits_longer_than_the_proxy() -> None:
    nginx = nginx_directives()
    assert nginx["proxy_buffering"] == ["off"]
    assert nginx["proxy_http_version"] == ["1.1"]
    assert 'Connection ""' in nginx["proxy_set_header"]
    assert "X-Request-ID $req_id" in nginx["proxy_set_header"]
    assert any(value.startswith("64") for value in nginx["keepalive"])
    assert duration(nginx["proxy_read_timeout"][0]) > DEFAULTS.request_timeout
    size = re.fullmatch(r"(\d+)m", nginx["client_max_body_size"][0])
    assert size and int(size[1]) * 1024 * 1024 >= DEFAULTS.max_body_bytes
    # A draining replica's 503 goes to another replica; timeouts are never retried.
    retried = nginx["proxy_next_upstream"][0].split()
    assert "http_503" in retried and "timeout" not in retried
    assert duration(nginx["worker_shutdown_timeout"][0]) > float(
        compose()["services"]["proxy"]["environment"]["DRAIN_TIMEOUT"]
    )


def k8s(kind: str, name: str) -> dict[str, Any]:
    for path in sorted((DEPLOY / "k8s" / "base").glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name}")


def config_literals() -> dict[str, str]:
    (kustomization,) = load_all(DEPLOY / "k8s" / "base" / "kustomization.yaml")
    (generator,) = kustomization["configMapGenerator"]
    return dict(literal.split("=", 1) for literal in generator["literals"])


def test_k8s_grace_period_covers_prestop_and_drain() -> None:
    pod = k8s("Deployment", "fal-openai-proxy")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(config_literals()["DRAIN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + 5


def test_k8s_probes_security_and_resources() -> None:
    pod = k8s("Deployment", "fal-openai-proxy")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert [source.get("secretRef", {}).get("name") for source in container["envFrom"]][-1] == (
        "fal-openai-proxy-keys"
    ), "the Secret comes last, so its keys win"
    env_names = {var["name"] for var in container.get("env", [])} | set(config_literals())
    assert not {"FAL_KEY", "API_KEY"} & env_names
    assert k8s("PodDisruptionBudget", "fal-openai-proxy")["spec"]["maxUnavailable"] == 1
    hpa = k8s("HorizontalPodAutoscaler", "fal-openai-proxy")["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert k8s("Service", "fal-openai-proxy-redis")["spec"]["ports"][0]["port"] == 6379


def test_accounts_have_one_database_for_every_replica() -> None:
    """Compose: one Postgres, its password in env files only. Kubernetes: off in the base (a
    SQLite file per pod would be a different set of keys each), on in the Postgres overlay."""
    services = compose()["services"]
    proxy, postgres = services["proxy"], services["postgres"]
    assert proxy["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "DATABASE_URL" not in proxy["environment"], "its password goes in the env_file"
    assert not {"POSTGRES_PASSWORD"} & set(postgres["environment"])
    assert postgres["env_file"] and "pg_isready" in postgres["healthcheck"]["test"]
    example = (DEPLOY / "proxy.env.example").read_text(encoding="utf-8")
    assert "DATABASE_URL=postgresql://proxy:" in example and "@postgres:5432/proxy" in example
    assert "ADMIN_KEY=" in example
    assert "POSTGRES_PASSWORD=" in (DEPLOY / "postgres.env.example").read_text(encoding="utf-8")
    assert config_literals()["DATABASE_URL"] == "none"
    (overlay,) = load_all(DEPLOY / "k8s" / "overlays" / "managed-postgres" / "kustomization.yaml")
    (patch,) = overlay["patches"]
    (operation,) = yaml.safe_load(patch["patch"])
    (env,) = operation["value"]
    assert env["name"] == "DATABASE_URL"
    assert env["valueFrom"]["secretKeyRef"] == {"name": "fal-openai-proxy-database", "key": "url"}
