"""Timing helpers: percentiles in milliseconds, median wall time of fresh subprocesses."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence

import numpy as np


def percentile_ms(seconds: Sequence[float], percent: float) -> float:
    """Return the `percent` percentile of durations given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), percent) * 1000.0)


def median_subprocess_seconds(command: Sequence[str], repeats: int, env: dict[str, str] | None = None) -> float:
    """Run `command` `repeats` times in fresh processes and return the median wall time in seconds.

    Raises RuntimeError with the command's stderr when it exits with a non-zero code.
    """
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        completed = subprocess.run(list(command), capture_output=True, text=True, env=env)
        durations.append(time.perf_counter() - started)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {completed.returncode}: {completed.stderr[-500:]}")
    return statistics.median(durations)
