"""fal/errors.py: reading fal's error answers and mapping them to the client's error."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict

from fal_openai_proxy.fal.errors import (
    MAX_RETRY_AFTER,
    FalBrokenError,
    FalConnectError,
    FalError,
    FalEventError,
    FalRequestInvalid,
    FalStatusError,
    FalTimeout,
    FalTLSError,
    FalTransportError,
    KeysUnavailable,
    parse_error_response,
)
from fal_openai_proxy.openai.errors import ProxyError
from fal_openai_proxy.translate.errors import to_openai_error as to_proxy_error

SECRET = "0b6c1f6e-1234-4cde-9abc-0123456789ab:feedfacecafebeef0123"


def parsed(status: int, body: object = b"", **headers: str) -> FalStatusError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_error_response(status, {k.replace("_", "-"): v for k, v in headers.items()}, raw)


def test_detail_string() -> None:
    error = parsed(404, {"detail": "Application not found"})
    assert (error.status, error.message) == (404, "Application not found")


def test_fastapi_detail_list() -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}
    assert parsed(422, body).message == "prompt: Field required"


def test_fastapi_detail_list_several_items() -> None:
    body = {
        "detail": [
            {"loc": ["body", "prompt"], "msg": "Field required"},
            {"loc": ["body", "image_urls", 0], "msg": "bad url"},
            {"msg": "no location"},
        ]
    }
    assert parsed(422, body).message == "prompt: Field required; image_urls.0: bad url; no location"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": "from message"}, "from message"),
        ({"error": "from error"}, "from error"),
        ({"detail": {"message": "nested"}}, "nested"),
        (b"", "fal returned HTTP 500"),
        (b"<html>502 Bad Gateway nginx</html>", "fal returned HTTP 500"),
        ({"detail": None}, "fal returned HTTP 500"),
        ([1, 2], "fal returned HTTP 500"),
    ],
)
def test_message_fallbacks(body: object, message: str) -> None:
    assert parsed(500, body).message == message


def test_error_type_from_body() -> None:
    error = parsed(504, {"detail": "Request timed out", "error_type": "request_timeout"})
    assert error.error_type == "request_timeout"
    assert error.kind == "request_timeout"


def test_error_type_from_header() -> None:
    error = parsed(503, {"detail": "x"}, x_fal_error_type="runner_disconnected")
    assert error.error_type == "runner_disconnected"


def test_error_type_body_wins_over_header() -> None:
    body = {"detail": "x", "error_type": "startup_timeout"}
    assert parsed(504, body, x_fal_error_type="other").error_type == "startup_timeout"


def test_kind_without_error_type() -> None:
    error = parsed(500, {"detail": "x"})
    assert error.error_type is None
    assert error.kind == "http_500"


@pytest.mark.parametrize(
    ("header", "expected"), [("true", True), (" TRUE ", True), ("false", False), (None, None)]
)
def test_retryable_header(header: str | None, expected: bool | None) -> None:
    headers = {} if header is None else {"x_fal_retryable": header}
    assert parsed(503, {"detail": "x"}, **headers).retryable is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after": "7"}, 7.0),
        ({"retry_after": "2.5"}, 2.5),
        ({"retry_after_ms": "1500"}, 1.5),
        ({"retry_after_ms": "250", "retry_after": "9"}, 0.25),
        ({"retry_after": "-3"}, 0.0),
        ({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parsed(429, {"detail": "slow down"}, **headers).retry_after == expected


def test_request_id_means_fal_answered() -> None:
    error = parsed(500, {"detail": "x"}, x_fal_request_id="req-123")
    assert error.request_id == "req-123"
    assert not error.from_ingress


def test_no_request_id_and_nginx_page_means_ingress_answered() -> None:
    error = parsed(502, b"<html>nginx</html>")
    assert error.request_id is None
    assert error.from_ingress


def test_no_request_id_without_nginx_page_is_not_ingress() -> None:
    """fal_client's `_is_ingress_error` needs both: no request id, and nginx in the body."""
    assert not parsed(502, {"detail": "Bad gateway"}).from_ingress
    assert not parsed(503, b"").from_ingress


def test_headers_as_aiohttp_gives_them() -> None:
    headers = CIMultiDict(
        {"X-Fal-Request-Id": "req-9", "Retry-After": "4", "X-Fal-Error-Type": "runner_error"}
    )
    error = parse_error_response(503, headers, b'{"detail": "down"}')
    assert (error.request_id, error.retry_after, error.error_type) == ("req-9", 4.0, "runner_error")


def test_key_index_is_kept() -> None:
    error = parse_error_response(401, {}, b"", key_index=3)
    assert error.key_index == 3


def fal(
    status: int, message: str = "fal says no", retry_after: float | None = None
) -> FalStatusError:
    return FalStatusError(status, message, retry_after=retry_after)


def test_422_is_400_with_fals_message() -> None:
    error = to_proxy_error(fal(422, "prompt: Field required"), pass_through=False)
    assert (error.status, error.type) == (400, "invalid_request_error")
    assert "prompt: Field required" in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_in_pass_through_is_401(status: int) -> None:
    error = to_proxy_error(fal(status), pass_through=True)
    assert (error.status, error.type, error.code) == (
        401,
        "authentication_error",
        "invalid_api_key",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_with_server_keys_is_502(status: int) -> None:
    error = to_proxy_error(fal(status), pass_through=False)
    assert (error.status, error.code) == (502, "upstream_auth")


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (0.2, "1"), (2.6, "3"), (7, "7")])
def test_429_is_429_with_retry_after(retry_after: float | None, header: str) -> None:
    error = to_proxy_error(fal(429, retry_after=retry_after), pass_through=False)
    assert (error.status, error.type, error.code) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert error.headers == {"Retry-After": header}


def test_503_is_503() -> None:
    error = to_proxy_error(fal(503, "no runners"), pass_through=False)
    assert (error.status, error.type) == (503, "server_error")
    assert "no runners" in error.message


@pytest.mark.parametrize("status", [500, 502])
def test_other_5xx_is_502(status: int) -> None:
    error = to_proxy_error(fal(status), pass_through=False)
    assert (error.status, error.type) == (502, "upstream_error")


def test_timeout_is_504() -> None:
    error = to_proxy_error(FalTimeout("idle", 120), pass_through=False)
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert "idle" in error.message


@pytest.mark.parametrize("exc", [FalConnectError("refused"), FalBrokenError("reset")])
def test_connection_failures_are_502(exc: FalError) -> None:
    error = to_proxy_error(exc, pass_through=False)
    assert (error.status, error.type) == (502, "upstream_error")


def test_unknown_fal_error_is_502() -> None:
    assert to_proxy_error(FalError("x"), pass_through=False).status == 502


def test_stream_event_error_is_502_upstream_error() -> None:
    error = to_proxy_error(FalEventError("model crashed"), pass_through=False)
    assert (error.status, error.code) == (502, "upstream_error")
    assert "model crashed" in error.message


def test_one_tree_of_fal_errors() -> None:
    for family in (FalStatusError, FalEventError, FalTransportError, FalRequestInvalid):
        assert issubclass(family, FalError)
    for transport in (FalConnectError, FalTLSError, FalBrokenError, FalTimeout):
        assert issubclass(transport, FalTransportError)
    assert issubclass(KeysUnavailable, FalError)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("-3", 0.0),
        ("inf", None),
        ("1e400", None),
        ("99999999", MAX_RETRY_AFTER),
        ("nan", None),
        ("-inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_clamped(header: str, seconds: float | None) -> None:
    assert parsed(429, retry_after=header).retry_after == seconds


def test_huge_retry_after_gives_a_bounded_429() -> None:
    error = to_proxy_error(parsed(429, retry_after="99999999"), pass_through=False)
    assert error.headers == {"Retry-After": str(int(MAX_RETRY_AFTER))}
    assert to_proxy_error(parsed(429, retry_after="inf"), pass_through=False).headers == {
        "Retry-After": "1"
    }
    assert to_proxy_error(KeysUnavailable("busy", float("inf")), pass_through=False).status == 429


def test_keys_refused_is_502() -> None:
    error = to_proxy_error(KeysUnavailable("auth", 600), pass_through=False)
    assert (error.status, error.code) == (502, "upstream_auth")


@pytest.mark.parametrize(("reason", "word"), [("rate_limited", "rate limited"), ("busy", "busy")])
def test_keys_rate_limited_or_busy_is_429(reason: str, word: str) -> None:
    error = to_proxy_error(KeysUnavailable(reason, 2.6), pass_through=False)
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    assert error.headers == {"Retry-After": "3"}
    assert word in error.message


@pytest.mark.parametrize(
    "exc",
    [
        FalStatusError(401, f"Invalid key {SECRET}"),
        FalStatusError(403, f"Key {SECRET} has no access"),
        FalConnectError(f"cannot connect with Authorization: Key {SECRET}"),
        FalBrokenError(f"broken with {SECRET}"),
        KeysUnavailable("auth", 600),
        KeysUnavailable("rate_limited", 5),
        KeysUnavailable("busy", 1),
        FalTimeout("total", 600),
        FalError(SECRET),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_key_text_in_server_key_errors(exc: FalError) -> None:
    error: ProxyError = to_proxy_error(exc, pass_through=False)
    assert SECRET not in error.message
    assert SECRET.encode() not in error.json()
    assert all(SECRET not in v for v in error.headers.values())
