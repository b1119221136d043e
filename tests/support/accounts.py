"""The admin API as a test drives it, and a proxy with accounts on one engine or the other."""

from __future__ import annotations

import re
from typing import Any

import httpx

from .servers import ADMIN_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Seconds to wait for usage to be written (every second) and keys re-read (every 0.5 s), with
# room for a loaded machine: a bound, not a measurement.
SETTLE = 15.0


class Admin:
    """The admin API of one proxy (or replica)."""

    def __init__(self, http: httpx.Client, base_url: str, key: str = ADMIN_KEY) -> None:
        self.http = http
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return self.http.request(
            method, self.base_url + path, headers={**self.headers, **(headers or {})},
            timeout=30, **kwargs,
        )  # fmt: skip

    def create_key(self, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/admin/keys", json={"name": "test", **fields})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def key(self, key_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/admin/keys/{key_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def patch(self, key_id: str, **fields: Any) -> dict[str, Any]:
        response = self.request("PATCH", f"/admin/keys/{key_id}", json=fields)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def usage(self, **params: str) -> list[dict[str, Any]]:
        response = self.request("GET", "/admin/usage", params=params)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def requests(self, **params: Any) -> dict[str, Any]:
        response = self.request("GET", "/admin/requests", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def total(self, key_id: str, field: str = "requests") -> float:
        """This key's total of `field` over the last 30 days (0 before its first row)."""
        rows = [r for r in self.usage(group_by="key") if r["group"] == key_id]
        return float(rows[0][field]) if rows else 0.0


def metric(text: str, name: str, **labels: str) -> float | None:
    """A sample's value in Prometheus text, or None."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + label_text + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None
