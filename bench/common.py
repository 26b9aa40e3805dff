"""What the benchmark scripts share: the machine they ran on and how loaded it was."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_pressure_us() -> int | None:
    """Total µs that runnable tasks waited for a CPU (PSI 'some'), or None."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def children_cpu_ms() -> float:
    """user+sys of the child processes this process has waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def command_output(cmd: list[str]) -> str:
    """What `cmd` prints on stdout (stripped), or "unknown"."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine(rtenv: Path | None) -> dict:
    """The facts every report starts with: cores, CPU, memory, kernel, the commit, and when the
    rtenv binary was built."""
    mem = _proc_field("/proc/meminfo", "MemTotal")
    built = "n/a"
    if rtenv is not None:
        built = datetime.datetime.fromtimestamp(rtenv.stat().st_mtime, datetime.timezone.utc) \
            .strftime("%Y-%m-%d %H:%M UTC")
    return {
        "nproc": os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or "unknown",
        "mem": f"{int(mem.split()[0]) / (1 << 20):.0f} GiB" if mem else "unknown",
        "kernel": platform.release(),
        "commit": command_output(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "built": built,
    }
