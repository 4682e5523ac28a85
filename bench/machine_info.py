"""The machine line every benchmark prints with its figures."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    return (f"machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")
