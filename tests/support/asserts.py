"""Assertions the tests share: an OpenAI-shaped error, and waiting for something that must
happen soon."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error response, after checking its shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return dict(error)


def wait_for(find: Callable[[], T], within: float = 5.0, what: str = "the condition") -> T:
    """Poll `find` until it returns something truthy, and return that; the test fails if
    `within` seconds pass first."""
    deadline = time.monotonic() + within
    while True:
        found = find()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {within:g} s for {what}"
        time.sleep(0.02)
