"""``python -m bench.uploads``: the proxy's memory under parallel uploads.

N clients each send one S MiB WAV to /v1/audio/transcriptions at once (through fal's storage
upload, as every file over INLINE_FILE_BYTES goes). The proxy's RSS is sampled every 10 ms:
its peak over the idle baseline, and what it keeps once the uploads are done. The memory
under uploads of docs/operations.md ("Security") was measured with this.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import tempfile
import threading
import time
from pathlib import Path

import httpx

from . import procinfo
from .processes import start_proxy, start_simulator


def wav(size: int) -> bytes:
    """A valid 16-bit mono 24 kHz WAV of about `size` bytes (silence)."""
    data = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 24000, 48000, 2, 16)
    return header + b"data" + struct.pack("<I", data) + bytes(data)


async def upload_all(url: str, clients: int, body: bytes) -> list[int]:
    async with httpx.AsyncClient(timeout=120) as client:

        async def one() -> int:
            files = {"file": ("talk.wav", body, "audio/wav")}
            reply = await client.post(url, data={"model": "whisper-1"}, files=files)
            return reply.status_code

        return await asyncio.gather(*(one() for _ in range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.uploads")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--mib", type=float, default=16.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        sim = start_simulator(workdir, latency_ms=50, interval_ms=10, events=5)
        rest = sim.base_url + "/rest"
        proxy = start_proxy(workdir, sim, 1, {"FAL_REST_URL": rest, "LOG_LEVEL": "warning"})
        try:
            pid = proxy.child.pid
            time.sleep(0.5)
            baseline = procinfo.rss_kb(pid)
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, procinfo.rss_kb(pid))
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            body = wav(int(args.mib * 1024 * 1024))
            started = time.monotonic()
            url = proxy.url + "/v1/audio/transcriptions"
            statuses = asyncio.run(upload_all(url, args.clients, body))
            seconds = time.monotonic() - started
            done.set()
            sampler.join()
            time.sleep(1.0)
            after = procinfo.rss_kb(pid)
        finally:
            proxy.child.stop()
            sim.child.stop()
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"{args.clients} parallel uploads of {args.mib:g} MiB in {seconds:.1f} s: {counts}")
    print(f"proxy RSS: idle {baseline / 1024:.0f} MiB, peak +{(peak - baseline) / 1024:.0f} MiB, "
          f"after +{(after - baseline) / 1024:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
