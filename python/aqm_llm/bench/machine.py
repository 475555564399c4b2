"""What a benchmark ran on: printed with every figure so numbers are never shown without it."""

from __future__ import annotations

import os
import platform
import re
import resource
from pathlib import Path

import numpy as np


def machine_info() -> dict[str, str]:
    model = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": f"{model}, {os.cpu_count()} logical cores ({usable} usable)",
        "os": f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
              f"numpy {np.__version__}",
        "load": load,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (getrusage), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MB (VmRSS: resident now, VmHWM: high-water mark)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
