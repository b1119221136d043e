"""fal's platform API for tests: the model list (docs/fal-protocol.md §11), unit prices
(docs/fal-protocol.md §14.1) and the account's balance (docs/fal-protocol.md §14.3), at
`GET {prefix}/v1/models`, `{prefix}/v1/models/pricing?endpoint_id=…` and
`{prefix}/v1/account/billing?expand=credits`.

Behaviour is chosen by the URL, so that each proxy under test can have its own:
`{prefix}/v1/models` answers normally; `{prefix}/<mode>/v1/models` with mode `fail-<status>`
(that status, fal's `{"detail"}` body), `hang` (no answer until the client leaves),
`garbage` (not JSON) or `bad-page-<n>` (page n has no `models` list). Pages hold at most
`PAGE_SIZE` models whatever `limit` asks, so that the default list spans three pages.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

from .asgi import JSON_TYPE, read_body, send_bytes
from .common import Call, check_auth, parse_key
from .state import SimulatorState

PREFIX = "/platform"
PAGE_SIZE = 3


def _model(endpoint_id: str, category: str, date: str, status: str = "active") -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "metadata": {
            "display_name": endpoint_id.rsplit("/", 1)[-1],
            "category": category,
            "description": f"Simulated {category} endpoint.",
            "status": status,
            "tags": [],
            "updated_at": "2025-06-01T00:00:00Z",
            "date": date,
            "model_url": f"https://fal.run/{endpoint_id}",
        },
    }


MODELS: list[dict[str, Any]] = [
    _model("fal-ai/flux/dev", "text-to-image", "2024-08-01T00:00:00Z"),
    _model("openrouter/router", "llm", "2025-07-01T00:00:00Z"),
    _model("fal-ai/flux/schnell", "text-to-image", "2024-08-02T00:00:00Z"),
    _model("fal-ai/kling-video/v2/master/image-to-video", "image-to-video", "2025-04-01T00:00:00Z"),
    _model("fal-ai/ideogram/v2", "text-to-image", "2024-10-01T00:00:00Z", status="deprecated"),
    _model("fal-ai/recraft/v3/text-to-image", "text-to-image", "2025-03-18T00:00:00Z"),
    _model("fal-ai/flux-lora-fast-training", "training", "2024-09-01T00:00:00Z"),
    _model("fal-ai/whisper", "speech-to-text", "2024-05-01T00:00:00Z"),
    _model("bytedance/seedream/v4/text-to-image", "text-to-image", "2025-09-10T00:00:00Z"),
    # Kokoro's category is text-to-audio, not text-to-speech (docs/fal-protocol.md §11).
    _model("fal-ai/kokoro/american-english", "text-to-audio", "2025-01-20T00:00:00Z"),
]


# The simulated apps' unit prices in USD, in the units their answers' `x-fal-billable-units`
# count (simulator/media.py `billed_by`). Figures in the range of fal's published ones; only
# the simulator's own arithmetic depends on them.
PRICES: dict[str, tuple[float, str]] = {
    "fal-ai/flux/dev": (0.025, "megapixels"),
    "fal-ai/flux/schnell": (0.003, "megapixels"),
    "fal-ai/flux-pro/v1.1": (0.04, "images"),
    "fal-ai/flux-pro/v1.1-ultra": (0.06, "images"),
    "fal-ai/recraft/v3/text-to-image": (0.04, "images"),
    "fal-ai/ideogram/v2": (0.08, "images"),
    "fal-ai/flux-pro/kontext": (0.04, "images"),
    "fal-ai/flux-pro/kontext/multi": (0.04, "images"),
    "fal-ai/flux/dev/image-to-image": (0.025, "megapixels"),
    "fal-ai/flux-pro/v1/fill": (0.05, "megapixels"),
    "fal-ai/whisper": (0.00125, "compute seconds"),
    "fal-ai/wizper": (0.0005, "compute seconds"),
    "fal-ai/kokoro/american-english": (0.02, "1000 characters"),
    "openrouter/router": (0.0001, "units"),
}
MAX_PRICING_IDS = 50  # "1-50 endpoint IDs" (docs/fal-protocol.md §14.1)
USERNAME = "simulated-team"


async def serve(state: SimulatorState, call: Call) -> None:
    parse_key(call)
    rest = call.path[len(PREFIX) :].strip("/")
    for money in ("v1/models/pricing", "v1/account/billing"):
        if rest.endswith(money):
            failure = rest[: -len(money)].strip("/")  # "" or "fail-<status>", as for the list
            if failure.startswith("fail-") and failure[5:].isdigit():
                await read_body(call.receive)
                await call.detail(int(failure[5:]), "Simulated platform failure")
            else:
                await _money(state, call, money)
            return
    mode = rest[: -len("v1/models")].strip("/") if rest.endswith("v1/models") else None
    query = {k: v[-1] for k, v in parse_qs(call.scope.get("query_string", b"").decode()).items()}
    state.record_event("platform", path=call.path, key=call.key, query=query, mode=mode or "normal")
    if mode is None or call.method != "GET":
        await call.detail(404 if mode is None else 405, "Not Found")
        return
    if mode == "hang":
        while (await call.receive())["type"] != "http.disconnect":
            pass  # no answer until the client goes away
        return
    if mode.startswith("fail-") and mode[5:].isdigit():
        await call.detail(int(mode[5:]), "Simulated platform failure")
        return
    if mode == "garbage":
        await send_bytes(call.send, 200, b"<html>oops</html>", [], JSON_TYPE)
        return
    offset = _offset(query.get("cursor"))
    if offset is None:
        await call.detail(400, "Invalid cursor")
        return
    if mode == f"bad-page-{offset // PAGE_SIZE + 1}":
        await call.json(200, {"items": [], "next_cursor": None, "has_more": False})
        return
    await call.json(200, _page(query, offset))


def _page(query: dict[str, str], offset: int) -> dict[str, Any]:
    selected = [
        m
        for m in MODELS
        if m["metadata"]["status"] == query.get("status", m["metadata"]["status"])
        and m["metadata"]["category"] == query.get("category", m["metadata"]["category"])
    ]
    asked = query.get("limit", "")
    limit = min(PAGE_SIZE, max(1, int(asked))) if asked.isdigit() else PAGE_SIZE
    page = selected[offset : offset + limit]
    more = offset + limit < len(selected)
    cursor = base64.b64encode(str(offset + limit).encode()).decode() if more else None
    return {"models": page, "next_cursor": cursor, "has_more": more}


def _offset(cursor: str | None) -> int | None:
    """fal's cursors are opaque (e.g. `Mg==`); ours are base64 offsets."""
    if cursor is None:
        return 0
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


async def _money(state: SimulatorState, call: Call, rest: str) -> None:
    """Pricing and billing: a key is required; billing needs the billing scope."""
    await read_body(call.receive)
    query = parse_qs(call.scope.get("query_string", b"").decode())
    kind = "billing" if rest == "v1/account/billing" else "pricing"
    state.record_event(kind, path=call.path, key=call.key, query=query)
    if call.method != "GET":
        await call.detail(405, "Method Not Allowed")
        return
    if not await check_auth(call, state):
        return
    if rest == "v1/account/billing":
        await _billing(state, call, query)
        return
    ids = [i for value in query.get("endpoint_id", []) for i in value.split(",") if i]
    if not 1 <= len(ids) <= MAX_PRICING_IDS:
        await call.detail(400, f"endpoint_id: give 1 to {MAX_PRICING_IDS} endpoint ids")
        return
    prices = [
        {"endpoint_id": i, "unit_price": PRICES[i][0], "unit": PRICES[i][1], "currency": "USD"}
        for i in dict.fromkeys(ids)
        if i in PRICES
    ]
    await call.json(200, {"prices": prices, "next_cursor": None, "has_more": False})


async def _billing(state: SimulatorState, call: Call, query: dict[str, list[str]]) -> None:
    allowed = state.config.billing_keys
    if allowed is not None and call.key not in allowed:
        # An inference-only key (docs/fal-protocol.md §14.3).
        await call.detail(403, "This API key does not have the billing:usage:read scope")
        return
    body: dict[str, Any] = {"username": USERNAME}
    expand = [e for value in query.get("expand", []) for e in value.split(",")]
    if "credits" in expand:
        body["credits"] = {"current_balance": state.config.balance, "currency": "USD"}
    await call.json(200, body)
