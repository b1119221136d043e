"""Process and machine facts read straight from /proc (no psutil dependency)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS) in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat_fields(pid: int) -> list[str]:
    # The command name may contain spaces or ')': split after the last ')'.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = _stat_fields(pid)
    # After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_split_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of one process, in seconds: its own code, and the kernel's for it."""
    fields = _stat_fields(pid)
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle and I/O wait, since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu_model: str
    python: str
    kernel: str
    commit: str

    def as_dict(self) -> dict[str, object]:
        return {
            "cores": self.cores,
            "cpu_model": self.cpu_model,
            "python": self.python,
            "kernel": self.kernel,
            "commit": self.commit,
        }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(repo: Path, *args: str) -> str | None:
    """`git args...` in `repo`, its output stripped; None when git is missing or fails."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine(repo: Path) -> Machine:
    return Machine(
        cores=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        python=platform.python_version(),
        kernel=platform.release(),
        commit=_git(repo, "rev-parse", "--short", "HEAD") or "unknown",
    )


def src_dirty(repo: Path) -> bool:
    """Whether src/ differs from the commit (other people may be editing it mid-run)."""
    return bool(_git(repo, "status", "--porcelain", "--", "src"))
