"""The admin API (`Authorization: Bearer <ADMIN_KEY>`, checked by the guard: `Auth.ADMIN`):
virtual keys, usage, the request log; and GET /v1/key, a virtual key's view of itself. JSON in,
JSON out, errors in OpenAI's shape (docs/accounts.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..openai.errors import ProxyError, invalid_request, unavailable
from ..serve.accounting import KEY_PATH, Accounts
from ..serve.context import request_context
from ..serve.state import proxy_state
from ..store.periods import utc_day
from ..store.usage import GROUPS
from .admin_models import (
    KeyCreate,
    KeyCreated,
    KeyDeleted,
    KeyList,
    KeyObject,
    KeyUpdate,
    OwnKey,
    RequestList,
    UsageList,
)
from .errors import ERRORS
from .registry import Auth, Body, Endpoint, Operation

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_ADMIN_BODY = 64 * 1024
DEFAULT_DAYS = 30  # GET /admin/usage without `start`: the last 30 days
MAX_LOG_PAGE = 1000
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _accounts(request: Request) -> Accounts:
    accounts = proxy_state(request).accounts
    assert accounts is not None  # the guard refuses the admin API without a database
    return accounts


Handler = Callable[[Request, Accounts], Awaitable[Response]]


def admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An admin route (the guard has checked ADMIN_KEY): a database failure is a 503, not a
    500."""

    async def route(request: Request) -> Response:
        accounts = _accounts(request)
        try:
            return await handler(request, accounts)
        except (ProxyError, ClientDisconnect):
            raise
        except Exception as exc:
            request_context(request.scope).log.error_type = "database_unavailable"
            log.warning("admin API: %s failed (%s)", request.url.path, type(exc).__name__)
            raise unavailable(
                f"The accounts database is unreachable ({type(exc).__name__}); retry shortly."
            ) from None

    route.__name__ = handler.__name__
    return route


async def _body(request: Request, model: type[M]) -> M:
    """The body (JSON, as the guard checked), validated as `model`."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_ADMIN_BODY:
            raise ProxyError(
                413, f"Request body too large: at most {MAX_ADMIN_BODY} bytes.",
                code="request_too_large",
            )  # fmt: skip
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _validation_error(exc: ValidationError) -> ProxyError:
    first = exc.errors(include_url=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid" or (kind == "model_type" and not loc):
        return invalid_request(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    param = str(loc[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    if kind == "extra_forbidden":
        return invalid_request(
            f"Unrecognized request argument supplied: '{param}'.", param, "unknown_parameter"
        )
    if kind == "missing":
        return invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    message = str(first["msg"]).removeprefix("Value error, ")
    return invalid_request(f"Invalid '{param}': {message}.", param, "invalid_value")


def _key_not_found(key_id: str) -> ProxyError:
    return ProxyError(404, f"No key with id '{key_id[:64]}'.", param="id", code="key_not_found")


# -- keys ------------------------------------------------------------------------------------


@admin
async def create_key(request: Request, accounts: Accounts) -> Response:
    fields = await _body(request, KeyCreate)
    record, secret = await accounts.keys.create(fields.model_dump())
    accounts.cache.put(record)  # usable on this replica at once
    log.info("virtual key created", extra={"key_id": record.id})
    return _json(record.public(time.time()) | {"key": secret}, 201)


@admin
async def list_keys(request: Request, accounts: Accounts) -> Response:
    _query(request, ())
    now = time.time()
    records = await accounts.keys.live()
    return _json({"object": "list", "data": [r.public(now) for r in records]})


@admin
async def get_key(request: Request, accounts: Accounts) -> Response:
    key_id = request.path_params["key_id"]
    record = await accounts.keys.get(key_id)
    if record is None:
        raise _key_not_found(key_id)
    return _json(record.public(time.time()))


@admin
async def update_key(request: Request, accounts: Accounts) -> Response:
    key_id = request.path_params["key_id"]
    fields = await _body(request, KeyUpdate)
    # Under the cache's lock, so that a refresh that read the row before this change cannot
    # put the old row back after it.
    async with accounts.cache.lock:
        record = await accounts.keys.update(key_id, fields.model_dump(exclude_unset=True))
        if record is not None:
            accounts.cache.put_if_cached(record)  # other replicas: within REFRESH_INTERVAL
    if record is None:
        raise _key_not_found(key_id)
    log.info("virtual key changed", extra={"key_id": record.id})
    return _json(record.public(time.time()))


@admin
async def delete_key(request: Request, accounts: Accounts) -> Response:
    key_id = request.path_params["key_id"]
    async with accounts.cache.lock:  # as in update_key
        record = await accounts.keys.get(key_id)
        if record is None or not await accounts.keys.delete(key_id):
            raise _key_not_found(key_id)
        record.deleted_at = int(time.time())
        accounts.cache.put_if_cached(record)
    log.info("virtual key deleted", extra={"key_id": key_id})
    return _json({"id": key_id, "deleted": True})


# -- usage and the request log -------------------------------------------------------------


def _query(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    params = dict(request.query_params)
    for name in params:
        if name not in allowed:
            raise invalid_request(
                f"Unrecognized query parameter: '{name[:64]}'"
                + (f"; this endpoint takes {', '.join(allowed)}." if allowed else "."),
                name[:64],
                "unknown_parameter",
            )
    return params


def _day(value: str, param: str) -> str:
    """A UTC day from `YYYY-MM-DD` or a unix time."""
    if _DAY.match(value):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    elif value.isdigit() and len(value) <= 12:
        return utc_day(float(value))
    raise invalid_request(
        f"Invalid '{param}': give a day as YYYY-MM-DD (UTC) or a unix time.", param, "invalid_value"
    )


def _number(params: dict[str, str], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise invalid_request(
            f"Invalid '{name}': must be a whole number from {low} to {high}.", name, "invalid_value"
        )
    return int(value)


@admin
async def usage(request: Request, accounts: Accounts) -> Response:
    params = _query(request, ("start", "end", "group_by"))
    now = time.time()
    end = _day(params["end"], "end") if "end" in params else utc_day(now)
    start = (
        _day(params["start"], "start")
        if "start" in params
        else utc_day(now - (DEFAULT_DAYS - 1) * 86400)
    )
    if start > end:
        raise invalid_request("Invalid 'start': it is after 'end'.", "start", "invalid_value")
    group_by = params.get("group_by", "day")
    if group_by not in GROUPS:
        raise invalid_request(
            f"Invalid 'group_by': must be one of {', '.join(GROUPS)}.", "group_by", "invalid_value"
        )
    data = await accounts.queries.totals(start, end, group_by)
    body = {"object": "list", "data": data, "start": start, "end": end, "group_by": group_by}
    return _json(body)


@admin
async def request_log(request: Request, accounts: Accounts) -> Response:
    params = _query(request, ("key_id", "model", "status", "since", "limit", "after"))
    since = params.get("since")
    if since is not None:
        since_time = _since(since)
    limit = _number(params, "limit", 1, MAX_LOG_PAGE) or 50
    after = _number(params, "after", 0, 2**62)
    found = await accounts.queries.log(
        key_id=params.get("key_id"),
        model=params.get("model"),
        status=_number(params, "status", 100, 599),
        since=since_time if since is not None else None,
        limit=limit,
        after=after,
    )
    if found is None:
        raise invalid_request(
            "Invalid 'after': no such request in the log (it may have expired).",
            "after",
            "invalid_value",
        )
    rows, has_more = found
    names = await accounts.keys.names(r["key_id"] for r in rows)
    for row in rows:
        row["key_name"] = names.get(row["key_id"])
    return _json(
        {
            "object": "list",
            "data": rows,
            "first_id": rows[0]["id"] if rows else None,
            "last_id": rows[-1]["id"] if rows else None,
            "has_more": has_more,
        }
    )


def _since(value: str) -> float:
    """A unix time, or an ISO date or date-time (UTC unless it says otherwise)."""
    try:
        return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else _iso(value)
    except ValueError:
        raise invalid_request(
            "Invalid 'since': give a unix time or an ISO 8601 date or date-time.",
            "since",
            "invalid_value",
        ) from None


def _iso(value: str) -> float:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


# -- GET /v1/key ----------------------------------------------------------------------------


async def own_key(request: Request) -> Response:
    """The calling virtual key, as cached here (no database read)."""
    accounts = proxy_state(request).accounts
    client = request_context(request.scope).client
    record = accounts.own_key(client) if accounts is not None else None
    if record is None:
        raise ProxyError(
            404,
            "GET /v1/key describes a virtual key (sk-fal-…); this request was not made with one.",
            code="key_not_found",
        )
    now = time.time()
    public = record.public(now)
    pending = accounts.cache.pending_for(record.id) if accounts is not None else 0.0
    period_spend = public["period_spend"] + pending
    remaining = (
        round(max(record.max_budget - period_spend, 0.0), 9)
        if record.max_budget is not None
        else None
    )
    return _json(
        {
            "name": record.name,
            "key_hint": record.key_hint,
            "models": public["models"],
            "max_budget": record.max_budget,
            "budget_period": record.budget_period,
            "spend": round(public["spend"] + pending, 9),
            "period_spend": round(period_spend, 9),
            "budget_remaining": remaining,
            "period_resets_at": public["period_resets_at"],
            "rpm": record.rpm,
        }
    )


# -- the registry ----------------------------------------------------------------------------

_ADMIN_ERRORS = {
    401: "Missing or wrong ADMIN_KEY.",
    403: "The admin API is off: ADMIN_KEY is not set, or DATABASE_URL is none.",
    503: "The accounts database is unreachable.",
}
_KEY_PATH = {"key_id": "0000000000000000"}
_UNKNOWN_KEY = {**_ADMIN_ERRORS, 404: "No key with this id (`key_not_found`)."}
_BAD_FIELD = {400: "A bad field, named in `error.param`."}

ROUTES = [
    Endpoint(
        "POST", "/admin/keys", create_key,
        Operation(
            "Create a virtual key. The answer carries its secret, `key`, this one time only.",
            request=KeyCreate, example={"name": "alice", "max_budget": 5, "budget_period": "month"},
            response=KeyCreated, status=201, responses={**_ADMIN_ERRORS, **_BAD_FIELD},
        ),
        body=Body.JSON, auth=Auth.ADMIN,
    ),
    Endpoint(
        "GET", "/admin/keys", list_keys,
        Operation("Every virtual key (deleted ones excepted), newest first.",
                  response=KeyList, responses=_ADMIN_ERRORS),
        auth=Auth.ADMIN,
    ),
    Endpoint(
        "GET", "/admin/keys/{key_id}", get_key,
        Operation("One virtual key.", response=KeyObject, responses=_UNKNOWN_KEY,
                  path_example=_KEY_PATH, status=404),
        auth=Auth.ADMIN,
    ),
    Endpoint(
        "PATCH", "/admin/keys/{key_id}", update_key,
        Operation(
            "Change a key: any field of its creation, and `disabled`. Every replica applies it "
            "within a second.",
            request=KeyUpdate, example={"disabled": True}, response=KeyObject,
            responses={**_UNKNOWN_KEY, **_BAD_FIELD}, path_example=_KEY_PATH, status=404,
        ),
        body=Body.JSON, auth=Auth.ADMIN,
    ),
    Endpoint(
        "DELETE", "/admin/keys/{key_id}", delete_key,
        Operation(
            "Delete a key: refused everywhere within a second; its usage stays in the reports.",
            response=KeyDeleted, responses=_UNKNOWN_KEY, path_example=_KEY_PATH, status=404,
        ),
        auth=Auth.ADMIN,
    ),
    Endpoint(
        "GET", "/admin/usage", usage,
        Operation(
            "Usage summed per key, model, day or endpoint over whole UTC days: `?start=&end=` "
            "(YYYY-MM-DD or unix times; the last 30 days by default), "
            "`group_by=key|model|day|endpoint` (default day).",
            response=UsageList, responses={**_ADMIN_ERRORS, **_BAD_FIELD},
        ),
        auth=Auth.ADMIN,
    ),
    Endpoint(
        "GET", "/admin/requests", request_log,
        Operation(
            "The request log, newest first: `?key_id=&model=&status=&since=` filter it, `limit` "
            "(1-1000, default 50) and `after` (the `last_id` of the previous page) page through "
            "it.",
            response=RequestList, responses={**_ADMIN_ERRORS, **_BAD_FIELD},
        ),
        auth=Auth.ADMIN,
    ),
    Endpoint(
        "GET", KEY_PATH, own_key,
        Operation(
            "The calling virtual key: its limits and spend (404 for any other key).",
            response=OwnKey, status=404,
            responses={401: ERRORS[401], 404: "Not a virtual key (`key_not_found`)."},
        ),
    ),
]  # fmt: skip
