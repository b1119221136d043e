"""audio.transcriptions / translations / speech through the openai SDK against the simulator."""

from __future__ import annotations

import base64
import io
import warnings
import wave
from collections.abc import Callable
from typing import Any, get_args

import httpx
import openai
import pytest
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    speech_create_params,
)

from fal_openai_proxy.fal.media_apps import KOKORO_US_VOICES

from ..support.chat import Records, sim
from ..support.media import decoded_seconds, make_wav
from ..support.servers import RunningProxy

WAV = make_wav()


def only_submit(sim_log: Records) -> dict[str, Any]:
    (record,) = sim_log("submit")
    return record


def test_json_transcription_sends_a_data_uri(client: openai.OpenAI, sim_log: Records) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", WAV, "audio/wav"), language="de", prompt="names"
    )
    assert result.text == "Simulated transcript of 2.0 seconds."
    record = only_submit(sim_log)
    assert record["app"] == "fal-ai/whisper"  # FAL_TRANSCRIBE_APP
    body = record["body"]
    assert body["task"] == "transcribe"
    assert body["language"] == "de"
    assert body["prompt"] == "names"
    head, _, data = body["audio_url"].partition(",")
    assert head == "data:audio/wav;base64"
    assert base64.b64decode(data) == WAV


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt", "verbose_json", "json"])
def test_every_response_format(client: openai.OpenAI, response_format: str) -> None:
    result: Any = client.audio.transcriptions.create(
        model="fal-ai/wizper",
        file=("talk.wav", WAV, "audio/wav"),
        response_format=response_format,  # type: ignore[arg-type]
    )
    if response_format == "text":
        assert result.strip() == "Simulated transcript of 2.0 seconds."
    elif response_format == "srt":
        assert result.startswith("1\n00:00:00,000 --> 00:00:01,000\nSimulated transcript\n\n2\n")
        assert "00:00:01,000 --> 00:00:02,000\nof 2.0 seconds." in result
    elif response_format == "vtt":
        assert result.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nSimulated transcript")
    elif response_format == "verbose_json":
        assert result.duration == pytest.approx(2.0)
        assert result.language == "en"
        assert [(s.start, s.end) for s in result.segments] == [(0.0, 1.0), (1.0, 2.0)]
    else:
        assert result.text.startswith("Simulated transcript")


def test_translation_sends_task_translate(client: openai.OpenAI, sim_log: Records) -> None:
    with warnings.catch_warnings():  # the SDK marks audio.translations deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        result = client.audio.translations.create(
            model="fal-ai/whisper",
            file=("talk.mp3", WAV, "audio/mpeg"),
            response_format="verbose_json",
        )
    assert result.text.startswith("Simulated translation")
    body = only_submit(sim_log)["body"]
    assert body["task"] == "translate"
    assert body["language"] is None  # detect the spoken language, whatever the app's default
    assert body["audio_url"].startswith("data:audio/mpeg;base64,")


@pytest.mark.parametrize("app", ["fal-ai/wizper", "fal-ai/whisper"])
def test_the_language_is_detected_unless_the_client_names_it(
    client: openai.OpenAI, sim_log: Records, app: str
) -> None:
    """wizper defaults `language` to "en": without an explicit null, German audio would be
    transcribed as English (the simulator's wizper does as fal's)."""
    german = make_wav(language="de")
    result = client.audio.transcriptions.create(
        model=app, file=("talk.wav", german), response_format="verbose_json"
    )
    assert result.language == "de"
    assert only_submit(sim_log)["body"]["language"] is None
    told = client.audio.transcriptions.create(
        model=app, file=("talk.wav", german), response_format="verbose_json", language="fr"
    )
    assert told.language == "fr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        english = client.audio.translations.create(
            model=app, file=("talk.wav", german), response_format="verbose_json"
        )
    assert english.language == "de"  # the language heard, translated from


def test_a_streamed_transcription_is_openais_events(
    client: openai.OpenAI, sim_log: Records
) -> None:
    stream = client.audio.transcriptions.create(
        model="fal-ai/wizper", file=("talk.wav", make_wav(language="de")), stream=True
    )
    events = list(stream)
    assert [e.type for e in events] == [
        "transcript.text.delta",
        "transcript.text.delta",
        "transcript.text.done",
    ]
    done = events[-1]
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert done.text == "Simulated transcript of 2.0 seconds."
    deltas = [e.delta for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    assert "".join(deltas) == done.text  # fal's chunks, in order
    assert [language.code for language in done.languages or []] == ["de"]
    assert only_submit(sim_log)["body"]["language"] is None


async def test_a_streamed_transcription_with_the_async_client(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", WAV), response_format="text", stream=True
    )
    texts = [e.text async for e in stream if isinstance(e, TranscriptionTextDoneEvent)]
    assert texts == ["Simulated transcript of 2.0 seconds."]


def test_a_stream_it_cannot_honour_is_a_400_naming_stream(
    client: openai.OpenAI, http: httpx.Client, proxy: RunningProxy, sim_log: Records
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", WAV), response_format="srt", stream=True
        )
    assert info.value.param == "stream"
    response = http.post(
        proxy.v1 + "/audio/transcriptions",
        files={"file": ("a.wav", WAV), "model": (None, "whisper-1"), "stream": (None, "maybe")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"
    assert sim_log("submit") == []


def test_large_audio_goes_through_fal_storage(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    sim_log: Records,
) -> None:
    client = make_client(proxy_factory(inline_file_bytes=1000))
    result = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV))
    assert result.text.startswith("Simulated transcript of 2.0")
    (initiate,) = sim_log("upload_initiate")
    assert initiate["body"]["content_type"] == "audio/wav"
    (put,) = sim_log("upload_put")
    assert put["body"] == {"bytes": len(WAV), "authorization": False}
    assert "/_sim/files/" in only_submit(sim_log)["body"]["audio_url"]


@pytest.fixture(scope="module")
def small(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(
        max_file_bytes=50_000,
        request_timeout=1.5,
        retry_budget=0.3,
        key_rate_limit_cooldown=0,
    )


@pytest.mark.parametrize(
    ("fields", "files", "param"),
    [
        ({"model": "whisper-1"}, {"file": ("a.txt", b"hello", "text/plain")}, "file"),
        ({"model": "whisper-1"}, {"file": ("a.wav", b"x" * 60_000, "audio/wav")}, "file"),
        ({"model": "whisper-1"}, {}, "file"),
        ({}, {"file": ("a.wav", WAV[:1000], "audio/wav")}, "model"),
        ({"model": "fal-ai/flux/dev"}, {"file": ("a.wav", WAV[:1000], "audio/wav")}, "model"),
        ({"model": "google/gemini-2.5-flash"}, {"file": ("a.wav", WAV[:1000])}, "model"),
        (
            {"model": "whisper-1", "response_format": "xml"},
            {"file": ("a.wav", WAV[:1000])},
            "response_format",
        ),
        (
            {"model": "whisper-1", "temperature": "hot"},
            {"file": ("a.wav", WAV[:1000])},
            "temperature",
        ),
    ],
)
def test_bad_transcription_input_is_a_400_naming_the_field(
    small: RunningProxy,
    http: httpx.Client,
    sim_log: Records,
    fields: dict[str, str],
    files: dict[str, Any],
    param: str,
) -> None:
    response = http.post(small.v1 + "/audio/transcriptions", data=fields, files=files or None)
    if not files:  # httpx sends form fields alone url-encoded; make it multipart
        response = http.post(
            small.v1 + "/audio/transcriptions", files={"model": (None, fields["model"])}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert sim_log("submit") == []


def test_a_json_body_is_refused(small: RunningProxy, http: httpx.Client) -> None:
    response = http.post(small.v1 + "/audio/transcriptions", json={"model": "whisper-1"})
    assert response.status_code == 415  # the Content-Type guard, before the route
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("directive", "status"),
    [
        ({"status": 422, "body": {"detail": [{"loc": ["body", "audio_url"], "msg": "bad"}]}}, 400),
        ({"status": 429}, 429),
        ({"status": 503}, 503),
        ({"hang": True}, 504),
    ],
)
def test_fal_failures_use_the_chat_error_table(
    small: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    directive: dict[str, Any],
    status: int,
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        make_client(small).audio.transcriptions.create(
            model="fal-ai/whisper", file=("a.wav", WAV[:2000]), prompt=sim(directive)
        )
    assert info.value.status_code == status


# -- speech ---------------------------------------------------------------------------------


def test_speech_streams_the_wav_from_fal(client: openai.OpenAI, sim_log: Records) -> None:
    text = "Hello from the proxy, this is a test of speech."
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, speed=1.5, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        data = b"".join(response.iter_bytes())
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == 24000
        assert reader.getnframes() > 0
    record = only_submit(sim_log)
    assert record["app"] == "fal-ai/kokoro/american-english"  # FAL_SPEECH_APP
    assert record["body"] == {"prompt": text, "voice": "af_alloy", "speed": 1.5}
    (fetch,) = sim_log("file_get")
    assert fetch["body"] == {"authorization": False}


def test_speech_takes_kokoro_voices_and_wav(client: openai.OpenAI, sim_log: Records) -> None:
    response = client.audio.speech.create(
        model="fal-ai/kokoro/american-english",
        voice="am_adam",  # type: ignore[arg-type]
        input="Hi.",
        response_format="wav",
    )
    assert response.content.startswith(b"RIFF")
    assert only_submit(sim_log)["body"]["voice"] == "am_adam"


# What the simulator's Kokoro makes: 0.02 s of audio per character of input (up to 5 s).
SENTENCE = "The quick brown fox jumps over the lazy dog, twice over, then rests a while."  # 76


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg"),
        ("aac", "audio/aac"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
        ("pcm", "audio/pcm"),
    ],
)
def test_speech_in_every_openai_format(
    client: openai.OpenAI, response_format: str, content_type: str
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="coral",
        input=SENTENCE,
        response_format=response_format,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["content-type"] == content_type
        data = b"".join(response.iter_bytes())
    seconds = len(SENTENCE) * 0.02
    assert decoded_seconds(data, response_format) == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize("kind", ["float", "stereo", "streamed"])
@pytest.mark.parametrize("response_format", ["mp3", "flac", "pcm"])
def test_speech_from_other_kinds_of_wav(
    client: openai.OpenAI, kind: str, response_format: str
) -> None:
    """Kokoro's exact WAV is unverified: float samples, two channels and a WAV written as it
    was made (sizes unknown) are read too."""
    text = "Fifty characters of text, to make one second. Ok."  # 50 characters: 1 s
    data = client.audio.speech.create(
        model="tts-1",
        voice="nova",
        input=text + sim({"speech_audio": kind}),
        response_format=response_format,  # type: ignore[arg-type]
    ).content
    assert decoded_seconds(data, response_format) == pytest.approx(1.0, abs=0.1)


def test_audio_fal_made_that_is_no_wav_is_a_502_before_any_byte(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.audio.speech.create(
            model="tts-1", voice="nova", input="Hi " + sim({"speech_audio": "not_wav"})
        )
    assert info.value.status_code == 502
    assert "not a RIFF WAVE file" in info.value.message


def test_speech_is_mp3_by_default_as_openais(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    """The Vercel AI SDK always sends mp3; curl and raw clients get OpenAI's default."""
    response = http.post(
        proxy.v1 + "/audio/speech", json={"model": "tts-1", "voice": "ash", "input": SENTENCE}
    )
    assert response.headers["content-type"] == "audio/mpeg"
    assert decoded_seconds(response.content, "mp3") == pytest.approx(1.52, abs=0.1)
    assert only_submit(sim_log)["body"]["voice"] == "am_michael"


# Every voice the openai SDK names (its `Voice` union: str, a Literal of names, a custom voice).
OPENAI_VOICES = next(a for a in get_args(speech_create_params.Voice) if get_args(a))


def test_the_sdk_names_the_voices_the_issue_lists() -> None:
    listed = [
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
    ]
    assert set(listed) <= set(get_args(OPENAI_VOICES))


@pytest.mark.parametrize("voice", get_args(OPENAI_VOICES))
def test_every_openai_voice_is_a_kokoro_voice(
    client: openai.OpenAI, sim_log: Records, voice: str
) -> None:
    client.audio.speech.create(model="tts-1", voice=voice, input="Hi.", response_format="pcm")
    assert only_submit(sim_log)["body"]["voice"] in KOKORO_US_VOICES  # the simulator checked


@pytest.mark.parametrize(
    ("body", "param", "mentions"),
    [
        ({"voice": "gandalf"}, "voice", "af_heart"),
        ({"response_format": "ogg"}, "response_format", "mp3"),
        ({"speed": 9}, "speed", ""),
        ({"model": "whisper-1"}, "model", "fal-ai/kokoro/american-english"),
        ({"model": "fal-ai/flux/dev"}, "model", ""),
        ({"input": ""}, "input", ""),
    ],
)
def test_bad_speech_input_is_a_400_naming_the_field(
    proxy: RunningProxy,
    http: httpx.Client,
    sim_log: Records,
    body: dict[str, Any],
    param: str,
    mentions: str,
) -> None:
    request = {"model": "tts-1", "voice": "alloy", "input": "Hi.", **body}
    response = http.post(proxy.v1 + "/audio/speech", json=request)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert mentions in error["message"]
    assert sim_log("submit") == []


@pytest.mark.parametrize(
    ("directive", "status"),
    [
        ({"status": 422, "body": {"detail": [{"loc": ["body", "voice"], "msg": "bad"}]}}, 400),
        ({"status": 503}, 503),
        ({"completed_error": "runner crashed"}, 502),
        ({"hang": True}, 504),
    ],
)
def test_speech_fal_failures_use_the_chat_error_table(
    small: RunningProxy,
    make_client: Callable[..., openai.OpenAI],
    directive: dict[str, Any],
    status: int,
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        make_client(small).audio.speech.create(
            model="tts-1", voice="nova", input="Hi " + sim(directive)
        )
    assert info.value.status_code == status


def test_fal_files_over_max_media_bytes_are_a_502(
    proxy_factory: Callable[..., RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(proxy_factory(max_media_bytes=50))  # the PNG is 74 B, the WAV ~25 KB
    with pytest.raises(openai.InternalServerError) as info:
        client.audio.speech.create(model="tts-1", voice="echo", input="Long enough to pass 50 B.")
    assert info.value.status_code == 502
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="dall-e-2", prompt="x", response_format="b64_json")


def test_a_media_model_sent_to_chat_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="fal-ai/flux/dev", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.param == "model"
