"""What the simulator answers must let a client's own code be tried before a fal account
exists: images of the size asked for, and structured output valid against the schema sent.
Driven through the proxy with the openai SDK."""

from __future__ import annotations

import base64
import json
import struct
from typing import Annotated, Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.chat import Records
from ..support.media import make_png
from ..support.servers import RunningProxy


def png_dimensions(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def b64_image(result: openai.types.ImagesResponse) -> bytes:
    assert result.data
    return base64.b64decode(result.data[0].b64_json or "")


# -- images of the asked size ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("fal-ai/flux/dev", "1536x1024", (1536, 1024)),
        ("fal-ai/flux/schnell", "256x512", (256, 512)),
        ("fal-ai/recraft/v3/text-to-image", "1024x1024", (1024, 1024)),
    ],
)
def test_an_image_has_the_size_asked_for(
    client: openai.OpenAI, model: str, size: str, expected: tuple[int, int]
) -> None:
    result = client.images.generate(
        model=model,
        prompt="a lighthouse",
        size=size,
        response_format="b64_json",  # type: ignore[arg-type]
    )
    assert png_dimensions(b64_image(result)) == expected


@pytest.mark.parametrize(
    ("model", "size", "ratio"),
    [
        ("fal-ai/flux-pro/v1.1-ultra", "1792x1024", 16 / 9),
        ("fal-ai/ideogram/v2", "1024x1792", 9 / 16),
        ("fal-ai/ideogram/v2", "1024x1024", 1.0),
    ],
)
def test_an_aspect_ratio_app_answers_in_that_ratio(
    client: openai.OpenAI, model: str, size: str, ratio: float
) -> None:
    result = client.images.generate(
        model=model,
        prompt="a lighthouse",
        size=size,
        response_format="b64_json",  # type: ignore[arg-type]
    )
    width, height = png_dimensions(b64_image(result))
    assert abs(width / height - ratio) < 0.02
    assert 0.9 < width * height / 1024**2 < 1.1  # about a megapixel


def test_the_default_size_is_the_apps_default(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="fal-ai/flux/dev", prompt="a lighthouse", response_format="b64_json"
    )
    assert png_dimensions(b64_image(result)) == (1024, 768)  # flux's landscape_4_3


def test_an_edit_without_a_size_keeps_the_input_images_size(
    client: openai.OpenAI,
) -> None:
    result = client.images.edit(
        model="fal-ai/flux/dev/image-to-image",
        image=("a.png", make_png(96, 48), "image/png"),
        prompt="sketch",
        response_format="b64_json",
    )
    assert png_dimensions(b64_image(result)) == (96, 48)


def job_output(sim: SimulatorThread, request_id: str) -> dict[str, Any]:
    output: dict[str, Any] = sim.state.jobs[request_id].answer.body()
    return output


def test_ideogram_returns_no_prompt_so_no_revised_prompt(
    client: openai.OpenAI, sim: SimulatorThread, sim_log: Records
) -> None:
    # fal-js types Ideogram v2's output as `{images, seed}` (docs/fal-protocol.md §10).
    result = client.images.generate(model="fal-ai/ideogram/v2", prompt="a lighthouse")
    assert result.data and result.data[0].revised_prompt is None
    (submit,) = sim_log("submit")
    assert set(job_output(sim, submit["request_id"])) == {"images", "seed"}


def test_flux_echoes_the_prompt_it_was_given(
    client: openai.OpenAI, sim: SimulatorThread, sim_log: Records
) -> None:
    result = client.images.generate(model="fal-ai/flux/dev", prompt="a lighthouse")
    assert result.data and result.data[0].revised_prompt is None  # not rewritten
    (submit,) = sim_log("submit")
    assert job_output(sim, submit["request_id"])["prompt"] == "a lighthouse"


# -- structured output valid against the client's own schema -----------------------------------


class Address(BaseModel):
    street: str
    postcode: Annotated[str, Field(pattern=r"^[0-9]{5}$")]


class Person(BaseModel):
    name: Annotated[str, Field(min_length=8)]
    age: Annotated[int, Field(ge=18, le=99)]
    home: Address
    tags: Annotated[list[str], Field(min_length=2)]
    nickname: str | None
    role: Literal["admin", "user"]


def test_the_sdks_parse_gets_a_valid_instance(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="openai/gpt-4.1", messages=[{"role": "user", "content": "Who?"}],
        response_format=Person,
    )  # fmt: skip
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and len(person.tags) >= 2 and person.age >= 18


def test_the_responses_apis_parse_gets_a_valid_instance(client: openai.OpenAI) -> None:
    response = client.responses.parse(model="openai/gpt-4.1", input="Who?", text_format=Person)
    assert isinstance(response.output_parsed, Person)


def test_a_pydantic_tool_gets_valid_arguments(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="openai/gpt-4.1", messages=[{"role": "user", "content": "Save him"}],
        tools=[openai.pydantic_function_tool(Person, name="save_person")],
    )  # fmt: skip
    (call,) = completion.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Person)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchains_structured_output(proxy: RunningProxy, method: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="openai/gpt-4.1", base_url=proxy.v1, api_key="x", max_retries=0)  # type: ignore[arg-type]
    person = llm.with_structured_output(Person, method=method).invoke("Who?")  # type: ignore[arg-type]
    assert isinstance(person, Person)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_json_object_is_a_json_object(client: openai.OpenAI, api: str) -> None:
    if api == "chat":
        completion = client.chat.completions.create(
            model="openai/gpt-4.1", messages=[{"role": "user", "content": "Hi, in JSON"}],
            response_format={"type": "json_object"},
        )  # fmt: skip
        text = completion.choices[0].message.content or ""
    else:
        response = client.responses.create(
            model="openai/gpt-4.1", input="Hi, in JSON", text={"format": {"type": "json_object"}}
        )
        text = response.output_text
    assert isinstance(json.loads(text), dict)
