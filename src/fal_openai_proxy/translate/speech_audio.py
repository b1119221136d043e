"""fal's speech audio (a WAV) -> the format the client asked for, piece by piece.

OpenAI's `audio.speech` answers mp3 (its default), opus, aac, flac, wav or pcm; Kokoro produces
WAV only (docs/fal-protocol.md §12.4). `WavReader` takes the WAV as it arrives and gives back
its samples; `SpeechEncoder` encodes them with FFmpeg's encoders through PyAV (its wheels ship
them) into a sink in memory that is emptied after every call, so neither ever holds more
than the piece in hand. No I/O here: the service moves the bytes.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Any

import av
from av.audio.stream import AudioStream

# The most a WAV may put before its samples (the RIFF header, `fmt `, and chunks such as
# `LIST` metadata); a file whose samples have not begun by then is refused.
MAX_WAV_HEADER = 64 * 1024


@dataclass(frozen=True)
class OutputFormat:
    """One of OpenAI's speech formats, as FFmpeg writes it."""

    container: str  # FFmpeg's muxer
    codec: str  # FFmpeg's encoder
    content_type: str
    bit_rate: int = 0  # per channel; 0: the codec's own (lossless)
    rate: int = 0  # a fixed sample rate; 0: the source's, if the codec takes it
    mono: bool = False
    options: tuple[tuple[str, str], ...] = ()  # the muxer's own options
    codec_options: tuple[tuple[str, str], ...] = ()  # the encoder's


# Content types: mp3, aac, flac and wav are the registered ones; OpenAI's `opus` is Ogg Opus
# (`audio/ogg`); `pcm` is OpenAI's "raw samples in 24kHz (16-bit signed, low-endian), without
# the header" (openai SDK `speech_create_params.py`), which has no registered type
# (`audio/L16` is big-endian): `audio/pcm`, as other OpenAI-compatible servers say.
SPEECH_FORMATS: dict[str, OutputFormat] = {
    "mp3": OutputFormat("mp3", "libmp3lame", "audio/mpeg", bit_rate=64_000),
    # Ogg pages of 100 ms rather than FFmpeg's 1 s, so that the audio flows as it is made;
    # libopus at complexity 5 rather than 10: a quarter of the CPU (docs/media.md) for speech.
    "opus": OutputFormat(
        "ogg",
        "libopus",
        "audio/ogg",
        bit_rate=32_000,
        options=(("page_duration", "100000"),),
        codec_options=(("compression_level", "5"),),
    ),
    "aac": OutputFormat("adts", "aac", "audio/aac", bit_rate=64_000),
    "flac": OutputFormat("flac", "flac", "audio/flac"),
    "wav": OutputFormat("wav", "pcm_s16le", "audio/wav"),
    "pcm": OutputFormat("s16le", "pcm_s16le", "audio/pcm", rate=24_000, mono=True),
}
DEFAULT_SPEECH_FORMAT = "mp3"  # OpenAI's default


class AudioError(Exception):
    """fal's audio cannot be read or encoded; the message says why."""


class BadAudio(AudioError):
    """fal's audio is not a WAV this module can read."""


@dataclass(frozen=True)
class WavFormat:
    rate: int
    channels: int
    sample_format: str  # PyAV's name of the packed sample format
    block_align: int  # bytes per frame (one sample of every channel)

    def seconds(self, size: int) -> float:
        return size / (self.rate * self.block_align)


# (format tag, bits per sample) -> PyAV's packed sample format. 24-bit has none.
_SAMPLE_FORMATS = {(1, 8): "u8", (1, 16): "s16", (1, 32): "s32", (3, 32): "flt", (3, 64): "dbl"}
_EXTENSIBLE = 0xFFFE
_LAYOUTS = {1: "mono", 2: "stereo"}


class WavReader:
    """A WAV read as it arrives: `feed` gives back whole frames of samples (or nothing while
    the header is incomplete); `format` is known once the samples begin."""

    def __init__(self) -> None:
        self.format: WavFormat | None = None
        self.sample_bytes = 0  # the samples given back so far
        self._head = bytearray()
        self.announced_bytes: int | None = None  # the header's sample bytes; None: to EOF
        self._remaining: int | None = None  # of those, not yet read
        self._partial = b""  # the start of a frame split between two pieces

    def feed(self, data: bytes) -> bytes:
        if self.format is None:
            self._head += data
            begun = self._parse_head()
            if begun is None:
                if len(self._head) > MAX_WAV_HEADER:
                    raise BadAudio(f"no WAV samples in the first {MAX_WAV_HEADER} bytes")
                return b""
            data = bytes(self._head[begun:])
            self._head = bytearray()
        assert self.format is not None
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        if self._partial:
            data = self._partial + data
        whole = len(data) - len(data) % self.format.block_align
        self._partial = data[whole:]
        self.sample_bytes += whole
        return data[:whole]

    def _parse_head(self) -> int | None:
        """Where the samples begin, once the header is all here (then `format` is set);
        None until then."""
        head = self._head
        if len(head) < 12:
            return None
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise BadAudio("not a RIFF WAVE file")
        found: WavFormat | None = None
        offset = 12
        while len(head) >= offset + 8:
            kind = bytes(head[offset : offset + 4])
            (size,) = struct.unpack_from("<I", head, offset + 4)
            body = offset + 8
            if kind == b"data":
                if found is None:
                    raise BadAudio("the WAV's samples come before its `fmt ` chunk")
                # A streamed WAV may announce 0 or 0xFFFFFFFF: then the samples run to the end.
                self.announced_bytes = size if 0 < size < 0xFFFFFFFF else None
                self._remaining = self.announced_bytes
                self.format = found
                return body
            if len(head) < body + size:
                return None
            if kind == b"fmt ":
                found = _wav_format(bytes(head[body : body + size]))
            offset = body + size + size % 2  # chunks are padded to an even size
        return None


def _wav_format(fmt: bytes) -> WavFormat:
    if len(fmt) < 16:
        raise BadAudio("the WAV's `fmt ` chunk is too short")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack_from("<H", fmt, 24)  # the sub-format GUID's first two bytes
    sample_format = _SAMPLE_FORMATS.get((tag, bits))
    if sample_format is None or channels not in _LAYOUTS or rate <= 0:
        raise BadAudio(f"a WAV of format {tag}, {bits} bits, {channels} channels")
    if block_align != channels * bits // 8:
        raise BadAudio("the WAV's block size does not match its samples")
    return WavFormat(rate, channels, sample_format, block_align)


class _Sink:
    """Where the muxer writes: emptied by `take` after every call."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class SpeechEncoder:
    """Samples of `source` in, `target` out. FFmpeg writes each packet as it is made
    (`flush_packets`) to a sink that cannot seek, so headers that muxers rewrite at the end
    on a file (mp3's Xing frame, flac's sample count) stay as first written: players read
    such streams, as they read a live stream."""

    def __init__(self, target: OutputFormat, source: WavFormat) -> None:
        self._source = source
        self._sink = _Sink()
        options = {"flush_packets": "1", **dict(target.options)}
        self._container = av.open(self._sink, "w", format=target.container, options=options)
        channels = 1 if target.mono else source.channels
        stream: Any = self._container.add_stream(
            target.codec,
            rate=_output_rate(target, source.rate),
            layout=_LAYOUTS[channels],
            options=dict(target.codec_options),
        )
        self._stream: AudioStream = stream
        if target.bit_rate:
            self._stream.bit_rate = target.bit_rate * channels
        self._pts = 0

    def encode(self, samples: bytes | memoryview) -> bytes:
        """Encode whole frames of samples; the bytes ready so far."""
        count = len(samples) // self._source.block_align
        if count:
            frame = av.AudioFrame(
                format=self._source.sample_format,
                layout=_LAYOUTS[self._source.channels],
                samples=count,
                align=1,
            )
            frame.planes[0].update(bytes(samples))
            frame.sample_rate = self._source.rate
            frame.pts = self._pts
            self._pts += count
            self._mux(frame)
        return self._sink.take()

    def finish(self) -> bytes:
        """Flush the encoder and close the container; the last bytes."""
        self._mux(None)
        try:
            self._container.close()
        except av.FFmpegError as exc:
            raise AudioError(f"FFmpeg: {exc}") from None
        return self._sink.take()

    def close(self) -> None:
        """Let go of FFmpeg's state (a client that left, or after `finish`); idempotent."""
        with contextlib.suppress(av.FFmpegError):
            self._container.close()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise AudioError(f"FFmpeg: {exc}") from None


def _output_rate(target: OutputFormat, source_rate: int) -> int:
    """The target's fixed rate, else the source's if the encoder takes it, else the nearest
    rate above it that it takes (opus: 8, 12, 16, 24 or 48 kHz)."""
    if target.rate:
        return target.rate
    rates = av.Codec(target.codec, "w").audio_rates
    if not rates or source_rate in rates:
        return source_rate
    above = [r for r in rates if r >= source_rate]
    return min(above) if above else max(rates)
