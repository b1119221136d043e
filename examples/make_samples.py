"""Makes the sample files the examples in README.md and docs/ open: `cat.png` (a drawn cat,
128x128) and `talk.wav` (1.5 s of a voice-like hum, 16 kHz mono). Both are committed; this
script says what they are and makes them again (`make samples`), byte for byte.
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
Pixel = tuple[int, int, int]


def cat_pixel(x: int, y: int) -> Pixel:
    def inside_circle(cx: float, cy: float, r: float) -> bool:
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

    def inside_triangle(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> bool:
        def side(p: tuple[int, int], q: tuple[int, int]) -> float:
            return (x - q[0]) * (p[1] - q[1]) - (p[0] - q[0]) * (y - q[1])

        d1, d2, d3 = side(a, b), side(b, c), side(c, a)
        return not ((d1 < 0 or d2 < 0 or d3 < 0) and (d1 > 0 or d2 > 0 or d3 > 0))

    if inside_circle(46, 66, 6) or inside_circle(82, 66, 6):
        return (40, 40, 40) if abs(x - 46) < 2 or abs(x - 82) < 2 else (90, 170, 60)  # eyes
    if inside_triangle((58, 80), (70, 80), (64, 87)):
        return (230, 130, 150)  # nose
    if abs(y - 88 - (x - 64) // 8) < 1 and 20 < abs(x - 64) < 50:
        return (60, 40, 30)  # whiskers
    if inside_circle(64, 74, 38) or inside_triangle((30, 58), (38, 14), (60, 40)):
        return (235, 150, 60)  # head and left ear
    if inside_triangle((98, 58), (90, 14), (68, 40)):
        return (235, 150, 60)  # right ear
    return (200, 225, 245)  # sky


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(
        b"\0" + b"".join(bytes(cat_pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def hum(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """Three 'syllables' of a 140 Hz voice with two formants, as a 16-bit WAV."""
    samples = []
    for i in range(int(seconds * rate)):
        t = i / rate
        envelope = max(0.0, math.sin(math.pi * t * 2)) ** 2  # 0.5 s per syllable
        voice = sum(
            math.sin(2 * math.pi * f * t) / n for n, f in enumerate((140, 280, 700, 1200), 1)
        )
        samples.append(int(6000 * envelope * voice))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def samples() -> dict[str, bytes]:
    return {"cat.png": png(128, 128), "talk.wav": hum()}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for name, data in samples().items():
        (target / name).write_bytes(data)
        print(f"{target / name}: {len(data)} bytes")
