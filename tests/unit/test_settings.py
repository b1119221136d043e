"""settings.py: startup refusals, key lists and URL normalisation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fal_openai_proxy.base.logs import redact, redact_url
from fal_openai_proxy.base.settings import Settings, is_loopback


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable from the developer's shell may leak into these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def settings(**fields: Any) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


def test_defaults_are_fine() -> None:
    s = settings()
    assert s.host == "127.0.0.1"
    assert s.pass_through
    assert s.startup_problems() == []


def test_api_key_without_fal_key_is_refused() -> None:
    problems = settings(api_key="client-key").startup_problems()
    assert len(problems) == 1
    assert "API_KEY" in problems[0]
    assert "FAL_KEY" in problems[0]
    assert "client-key" not in problems[0]


def test_api_key_with_fal_key_is_fine() -> None:
    assert settings(api_key="client-key", fal_key="fal-key").startup_problems() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "10.0.0.1", "example.com"])
def test_exposed_host_without_api_key_is_refused(host: str) -> None:
    problems = settings(host=host, fal_key="fal-key").startup_problems()
    assert len(problems) == 1
    assert f"HOST={host}" in problems[0]
    assert "fal-key" not in problems[0]


def test_exposed_host_allowed_unauthenticated() -> None:
    s = settings(host="0.0.0.0", fal_key="fal-key", allow_unauthenticated=True)
    assert s.startup_problems() == []


def test_exposed_host_with_api_key_is_fine() -> None:
    s = settings(host="0.0.0.0", fal_key="fal-key", api_key="client-key")
    assert s.startup_problems() == []


def test_exposed_host_in_pass_through_is_fine() -> None:
    assert settings(host="0.0.0.0").startup_problems() == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_api_key(host: str) -> None:
    assert is_loopback(host)
    assert settings(host=host, fal_key="fal-key").startup_problems() == []


def test_key_lists_split_on_commas_and_drop_blanks() -> None:
    s = settings(fal_key=" k1, ,k2,,  k3 ", api_key="a1,,a2 ,")
    assert s.fal_keys == ["k1", "k2", "k3"]
    assert s.api_keys == ["a1", "a2"]
    assert not s.pass_through


def test_blank_fal_key_list_is_pass_through() -> None:
    s = settings(fal_key=" , ,")
    assert s.fal_keys == []
    assert s.pass_through


def test_keys_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "e1,e2")
    monkeypatch.setenv("API_KEY", "c1")
    s = settings()
    assert s.fal_keys == ["e1", "e2"]
    assert s.api_keys == ["c1"]


def test_keys_are_not_in_repr() -> None:
    s = settings(fal_key="super-secret-fal", api_key="super-secret-api")
    assert "super-secret" not in repr(s)
    assert "super-secret" not in str(s.model_dump())


def test_urls_lose_trailing_slashes() -> None:
    s = settings(fal_run_url="http://localhost:9000/", fal_queue_url="https://q.example.com//")
    assert s.fal_run_url == "http://localhost:9000"
    assert s.fal_queue_url == "https://q.example.com"


def test_default_urls() -> None:
    s = settings()
    assert (s.fal_run_url, s.fal_queue_url) == ("https://fal.run", "https://queue.fal.run")


def test_app_ids_lose_surrounding_slashes() -> None:
    s = settings(fal_chat_app="/fal-ai/any-llm/", fal_vision_app="fal-ai/any-llm/vision/")
    assert (s.fal_chat_app, s.fal_vision_app) == ("fal-ai/any-llm", "fal-ai/any-llm/vision")


@pytest.mark.parametrize(("raw", "cap"), [("auto", None), ("AUTO", None), (" Auto ", None)])
def test_key_concurrency_auto(raw: str, cap: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY_CONCURRENCY", raw)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.fal_key_concurrency == "auto"
    assert s.key_concurrency_cap is cap


def test_key_concurrency_defaults_to_auto() -> None:
    assert settings().key_concurrency_cap is None


@pytest.mark.parametrize("raw", ["1", "10", "40"])
def test_key_concurrency_number_is_a_fixed_cap(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY_CONCURRENCY", raw)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.key_concurrency_cap == int(raw)


@pytest.mark.parametrize("raw", ["0", "-3", "2.5", "many", "", "true"])
def test_key_concurrency_bad_values_are_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY_CONCURRENCY", raw)
    with pytest.raises(ValidationError, match="must be `auto` or a whole number >= 1"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pw@fal.run/x", "https://***@fal.run/x"),
        (
            "redis://:pw@10.0.0.1:6379/0 and http://a@b/c",
            "redis://***@10.0.0.1:6379/0 and http://***@b/c",
        ),
        ("https://fal.run/x?next=a@b", "https://fal.run/x?next=a@b"),
        ("no url here: a@b", "no url here: a@b"),
    ],
)
def test_passwords_in_urls_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected
    if " " not in text:
        assert redact_url(text) == expected
