"""A deterministic value valid against a JSON schema: what the simulated model answers to a
`json_schema` response format and gives as tool-call arguments, so that a client's
structured-output code (the openai SDK's `parse`, LangChain's `with_structured_output`,
pydantic models with `$defs`, optional and constrained fields) can be tried before a fal
account exists.

Covers what schemas of tools and response formats use: `$ref` into `$defs`/`definitions`,
`anyOf`/`oneOf`/`allOf`, `const`, `enum`, `type` lists, object `properties`, arrays with
`items`/`prefixItems` and `minItems`/`maxItems`/`uniqueItems`, number bounds and
`multipleOf`, string `minLength`/`maxLength`/`format` and simple `pattern`s. Recursive schemas
end at a depth limit with the emptiest valid choice (null, an empty array).
"""

from __future__ import annotations

import math
import re
import re._parser as re_parser  # type: ignore[import-not-found]  # parse: build a match
from typing import Any

_MAX_DEPTH = 8
# Values for the common string formats (JSON Schema's, and pydantic's names for them).
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "byte": "AA==",
    "binary": "",
}
# Tried in turn for a `pattern` the default value does not match.
_PATTERN_TRIES = ("a", "A", "0", "abc", "ABC", "123", "a1", "example", "x-1", "")


def value_for(schema: Any, name: str = "value") -> Any:
    """A value `schema` accepts; `name` (the property's) makes strings readable."""
    return _Generator(schema).value(schema, name, 0, 0)


class _Generator:
    def __init__(self, root: Any) -> None:
        self._root = root

    def value(self, schema: Any, name: str, depth: int, index: int) -> Any:
        if schema is True or schema is None or schema == {}:
            return f"{name}-value"
        if not isinstance(schema, dict):
            return f"{name}-value"
        if depth > _MAX_DEPTH * 4:  # a pathological schema: give up on it
            return None
        if isinstance(schema.get("$ref"), str):
            return self.value(self._resolve(schema["$ref"]), name, depth + 1, index)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            values = schema["enum"]
            return values[index % len(values)]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(self._choose(options, depth), name, depth + 1, index)
        if isinstance(schema.get("allOf"), list):
            return self.value(self._merge(schema), name, depth + 1, index)
        kind = self._type(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._integer(schema, index)
        if kind == "number":
            return self._number(schema, index)
        if kind == "boolean":
            return index % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, name, index)

    # -- composition ------------------------------------------------------------------------

    def _resolve(self, ref: str) -> Any:
        """`#/$defs/Name` (or any JSON pointer into the root); anything else: any value."""
        if not ref.startswith("#"):
            return {}
        node = self._root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return {}
            node = node[part]
        return node

    def _choose(self, options: list[Any], depth: int) -> Any:
        """The first alternative that is not null; past the depth limit, null if allowed."""
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        others = [o for o in options if o not in nulls]
        if nulls and (depth >= _MAX_DEPTH or not others):
            return nulls[0]
        return others[0] if others else options[0]

    def _merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for item in schema["allOf"]:
            ref = isinstance(item, dict) and "$ref" in item
            part = self._resolve(item["$ref"]) if ref else item
            if not isinstance(part, dict):
                continue
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _type(self, schema: dict[str, Any], depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [k for k in kind if k != "null"]
            if "null" in kind and (depth >= _MAX_DEPTH or not options):
                return "null"
            kind = options[0] if options else "null"
        if isinstance(kind, str):
            return kind
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    # -- kinds ------------------------------------------------------------------------------

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for key, sub in properties.items():
            # Past the depth limit only what is required: a recursive schema must end.
            if depth < _MAX_DEPTH or key in required:
                out[key] = self.value(sub, key, depth + 1, 0)
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [self.value(sub, name, depth + 1, i) for i, sub in enumerate(prefix)]
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        count = low if depth >= _MAX_DEPTH else max(low, 1)
        if isinstance(high, int):
            count = min(count, high)
        items = schema.get("items")
        # Distinct values (uniqueItems, or just readable ones): each item gets its own index.
        return [self.value(items, name, depth + 1, i) for i in range(count)]

    def _integer(self, schema: dict[str, Any], index: int) -> int:
        low = _bound(schema, "minimum", "exclusiveMinimum", 1, math.ceil)
        high = _bound(schema, "maximum", "exclusiveMaximum", -1, math.floor)
        step = schema.get("multipleOf")
        start = low if low is not None else (min(1, high) if high is not None else 1)
        value = int(start) + index
        if isinstance(step, int | float) and step > 0:
            value = int(math.ceil(value / step) * step)
        if high is not None and value > high:
            value = int(high)
        return int(value)

    def _number(self, schema: dict[str, Any], index: int) -> float:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(low, int | float) and isinstance(high, int | float):
            return (low + high) / 2
        if isinstance(ex_low, int | float) and isinstance(ex_high, int | float):
            return (ex_low + ex_high) / 2
        value = 1.5 + index
        if isinstance(low, int | float):
            value = low + 0.5 + index
        elif isinstance(ex_low, int | float):
            value = ex_low + 0.5 + index
        if isinstance(high, int | float):
            value = min(value, high)
        elif isinstance(ex_high, int | float):
            value = min(value, ex_high - 0.5)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            value = math.ceil(value / step) * step
        return float(value)

    def _string(self, schema: dict[str, Any], name: str, index: int) -> str:
        fmt = schema.get("format")
        value = _FORMATS.get(fmt, f"{name}-value") if isinstance(fmt, str) else f"{name}-value"
        if index and value == f"{name}-value":
            value = f"{name}-value-{index}"
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not _matches(pattern, value):
            value = next(
                (t for t in (_from_pattern(pattern), *_PATTERN_TRIES) if t is not None
                 and _matches(pattern, t)),
                value,
            )  # fmt: skip
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            value = value + "x" * (low - len(value))
        if isinstance(high, int) and len(value) > high:
            value = value[:high]
        return value


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, nudge: int, rounding: Any
) -> int | None:
    if isinstance(schema.get(inclusive), int | float):
        return int(rounding(schema[inclusive]))
    if isinstance(schema.get(exclusive), int | float):
        edge = schema[exclusive]
        whole = int(rounding(edge))
        return whole + nudge if whole == edge else whole
    return None


def _from_pattern(pattern: str) -> str | None:
    """A string the regular expression matches, built from Python's own parse of it (the
    pattern languages agree on what schemas use); None if it cannot be built."""
    try:
        parsed = re_parser.parse(pattern)
    except (re.error, RecursionError):
        return None
    out: list[str] = []
    try:
        _emit(parsed, out, 0)
    except (ValueError, RecursionError):
        return None
    return "".join(out)


def _emit(items: Any, out: list[str], depth: int) -> None:
    if depth > 50:
        raise ValueError("too deep")
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if arg != ord("a") else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_from_class(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            for _ in range(max(low, 1) if low else 0):
                _emit(sub, out, depth + 1)
        elif name == "SUBPATTERN":
            _emit(arg[-1], out, depth + 1)
        elif name == "ATOMIC_GROUP":
            _emit(arg, out, depth + 1)
        elif name == "BRANCH":
            _emit(arg[1][0], out, depth + 1)
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # anchors and lookarounds add no characters
        else:
            raise ValueError(f"cannot build {name}")


def _from_class(items: Any) -> str:
    """One character of a class: `[0-9]`, `\\d`, `[a-zA-Z_]`, or one outside `[^…]`."""
    negated = any(str(op) == "NEGATE" for op, _ in items)
    if negated:
        excluded = {arg for op, arg in items if str(op) == "LITERAL"}
        return next(c for c in "aA0_x" if ord(c) not in excluded)
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " "}.get(str(arg), "a")
    raise ValueError("an empty class")


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True  # a pattern Python cannot read: leave the value as it is
