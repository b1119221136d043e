"""translate/speech_audio.py: fal's WAV, read piece by piece, encoded into OpenAI's formats."""

from __future__ import annotations

import io
import struct

import av
import pytest

from fal_openai_proxy.translate.speech_audio import (
    MAX_WAV_HEADER,
    SPEECH_FORMATS,
    BadAudio,
    SpeechEncoder,
    WavFormat,
    WavReader,
)

from ..support.media import decoded_seconds, make_wav


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"".join(k + struct.pack("<I", len(d)) + d + b"\0" * (len(d) % 2) for k, d in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def fmt(tag: int = 1, channels: int = 1, rate: int = 24000, bits: int = 16) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def test_the_reader_gives_whole_frames_whatever_the_pieces() -> None:
    samples = bytes(range(256)) * 40  # 10240 bytes: 5120 frames of s16 mono
    data = riff(
        (b"fmt ", fmt()), (b"LIST", b"INFO" + b"x" * 33), (b"data", samples), (b"id3 ", b"t")
    )
    for size in (1, 3, 7, 1000, len(data)):
        reader = WavReader()
        out = b"".join(reader.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out == samples, size  # the chunk after the samples is not audio
        assert reader.format == WavFormat(24000, 1, "s16", 2)
        assert reader.sample_bytes == len(samples)


def test_a_streamed_wav_without_a_size_runs_to_the_end() -> None:
    head = riff((b"fmt ", fmt(tag=0xFFFE, channels=2, bits=32) + b"\x16\0" + b"\0" * 6 + b"\3\0"))
    data = head + b"data" + struct.pack("<I", 0xFFFFFFFF) + b"\1" * 80 + b"\2" * 3
    reader = WavReader()
    assert reader.feed(data) == b"\1" * 80  # the incomplete last frame is held back
    assert reader.format == WavFormat(24000, 2, "flt", 8)  # extensible: its sub-format, float


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"ID3\x04" + b"\0" * 60, "not a RIFF WAVE"),
        (riff((b"data", b"\0\0")), "before its `fmt `"),
        (riff((b"fmt ", fmt(bits=24)), (b"data", b"\0" * 6)), "24 bits"),
        (riff((b"fmt ", fmt(channels=6)), (b"data", b"\0" * 12)), "6 channels"),
        (riff((b"fmt ", b"\1\0")), "too short"),
        (riff((b"fmt ", fmt()), (b"LIST", b"\0" * MAX_WAV_HEADER)), "no WAV samples"),
    ],
)
def test_what_the_reader_refuses(data: bytes, why: str) -> None:
    with pytest.raises(BadAudio, match=why):
        WavReader().feed(data)


@pytest.mark.parametrize("name", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_decodes_to_the_same_length_and_flows_as_it_encodes(name: str) -> None:
    wav = make_wav(seconds=3.0, rate=24000)
    reader = WavReader()
    samples = reader.feed(wav)
    assert reader.format is not None
    encoder = SpeechEncoder(SPEECH_FORMATS[name], reader.format)
    tenth = 4800  # 0.1 s of 24 kHz s16 mono
    pieces = [encoder.encode(samples[i : i + tenth]) for i in range(0, len(samples), tenth)]
    pieces.append(encoder.finish())
    # Bytes come out while the samples go in, not all at the end.
    assert sum(1 for p in pieces[:-1] if p) >= len(pieces) // 3, [len(p) for p in pieces]
    assert decoded_seconds(b"".join(pieces), name) == pytest.approx(3.0, abs=0.1)


def test_pcm_is_24_khz_mono_whatever_fal_gives() -> None:
    stereo = make_wav(seconds=1.0, rate=16000, channels=2)
    reader = WavReader()
    samples = reader.feed(stereo)
    assert reader.format == WavFormat(16000, 2, "s16", 4)
    encoder = SpeechEncoder(SPEECH_FORMATS["pcm"], reader.format)
    pcm = encoder.encode(samples) + encoder.finish()
    assert len(pcm) == pytest.approx(48000, abs=200)  # 1 s of 24 kHz s16 mono
    opus = SpeechEncoder(SPEECH_FORMATS["opus"], reader.format)  # 16 kHz: an Opus rate
    data = opus.encode(samples) + opus.finish()
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.audio[0].codec_context.name in ("opus", "libopus")
