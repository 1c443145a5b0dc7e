"""Evaluation statistics: success rates with 95% Wilson intervals, latency percentiles, control rate.

The Wilson score interval stays inside [0, 1] and behaves at 0/n and n/n, where the normal
approximation collapses to a zero-width interval; with 20 episodes and 10 successes it gives
[0.299, 0.701], an honest picture of what 20 episodes can tell.

`TimedPolicy` wraps any Policy and records the wall time of every `select_action` call (the inference
latency a controller sees, preprocessing included). `task_metrics` is the one summary of a list of
episode results (`vla eval`'s per-task numbers); `summarize` applies it per task to a mixed list.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% (by default) Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # the exact endpoints, not 1 - 1e-16
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


class TimedPolicy:
    """A Policy that forwards to `inner` and keeps each call's latency in seconds (shared list)."""

    def __init__(self, inner: Any, latencies: list[float] | None = None):
        self.inner = inner
        self.latencies = latencies if latencies is not None else []

    def reset(self, seed: int | None = None) -> None:
        self.inner.reset(seed)

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        action = self.inner.select_action(obs, info)
        self.latencies.append(time.perf_counter() - t0)
        return action


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean latency in milliseconds (NaN when nothing was timed)."""
    if not latencies:
        return {"latency_p50_ms": math.nan, "latency_p95_ms": math.nan, "latency_mean_ms": math.nan}
    ms = np.asarray(latencies, dtype=np.float64) * 1e3
    return {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "latency_mean_ms": float(ms.mean()),
    }


def task_metrics(results: Sequence[Any]) -> dict[str, Any]:
    """Success, Wilson CI, lengths, errors and control rate over EpisodeResults of one task."""
    n = len(results)
    k = sum(bool(r.success) for r in results)
    lo, hi = wilson_interval(k, n)
    steps = sum(r.length for r in results)
    wall = sum(r.wall_time_s for r in results)
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else math.nan,
        "ci95_low": lo,
        "ci95_high": hi,
        "mean_length": steps / n if n else math.nan,
        "errors": sum(r.error is not None for r in results),
        "control_rate_hz": steps / wall if wall > 0 else math.nan,
    }


def summarize(results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """`task_metrics` of each task's EpisodeResults, tasks in sorted order."""
    by_task: dict[str, list[Any]] = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r)
    return {task: task_metrics(rs) for task, rs in sorted(by_task.items())}
