"""The simulator's structured output: for every schema a client's models produce, the value
is valid against it (checked with jsonschema, and by the model itself)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Literal

import pytest
from jsonschema import Draft202012Validator
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from fal_openai_proxy.simulator.schema_values import value_for


class Address(BaseModel):
    street: str
    postcode: Annotated[str, Field(pattern=r"^[0-9]{5}$")]
    country: Literal["FR", "DE"] = "FR"


class Person(BaseModel):
    name: Annotated[str, Field(min_length=12, max_length=40)]
    age: Annotated[int, Field(ge=18, le=120)]
    score: Annotated[float, Field(gt=0, lt=1)]
    tags: Annotated[list[str], Field(min_length=2, max_length=5)]
    home: Address
    previous: list[Address]
    nickname: str | None = None
    born: datetime.date
    seen: datetime.datetime
    id: uuid.UUID
    ratios: dict[str, float]
    pair: tuple[int, str]
    kind: Literal["human"]
    pet: Annotated[Cat | Dog, Field(discriminator="species")]


class Cat(BaseModel):
    species: Literal["cat"]
    lives: Annotated[int, Field(multiple_of=3, ge=1)]


class Dog(BaseModel):
    species: Literal["dog"]
    good: bool


class Tree(BaseModel):
    label: str
    children: list[Tree] = []
    parent: Tree | None = None


Person.model_rebuild()
MODELS = [Address, Person, Tree]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("strict", [False, True], ids=["pydantic", "openai-strict"])
def test_the_value_is_valid_against_the_schema(model: type[BaseModel], strict: bool) -> None:
    schema = to_strict_json_schema(model) if strict else model.model_json_schema()
    value = value_for(schema)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(value)]
    assert errors == []
    model.model_validate(value)  # and the client's own model takes it


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
        {"type": "number", "minimum": -3, "maximum": -1},
        {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2, "uniqueItems": True},
        {"type": "array", "maxItems": 0},
        {"type": ["null", "string"], "format": "email"},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                   {"properties": {"b": {"const": 2}}, "required": ["b"]}]},
        {"oneOf": [{"type": "null"}, {"type": "string", "minLength": 3, "maxLength": 3}]},
        {"type": "string", "pattern": "^[A-Z]+$"},
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {},
    ],
)  # fmt: skip
def test_hand_written_schemas(schema: dict[str, Any]) -> None:
    value = value_for(schema)
    assert [e.message for e in Draft202012Validator(schema).iter_errors(value)] == []


def test_tool_arguments_stay_readable() -> None:
    # What the simulator's tool calls have always given, which tests and docs quote.
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert value_for(schema) == {"city": "city-value"}
