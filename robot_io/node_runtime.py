"""The running VLA node (robot_io.node): the policy thread, the executor and control threads, and what the
node reports while it runs.

`PolicyRunner` runs every policy call on one daemon thread under a deadline (a late call is abandoned and
its result discarded). `NodeRuntime`, a base of `robot_io.node.VlaNode`, starts and stops the executor
thread (spins the transport) and the control thread (one `step` every 1/rate_hz, skipping missed ticks),
and reports: the DiagnosticArray of every tick, the console status line every `status_log_s`, the
measured tick and command rates, and the run's summary. The state it reads is set up in `VlaNode`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_io import convert, msgs

log = logging.getLogger("robot_io.node")  # the node's one logger, whichever of its modules logs


class _Call:
    """One policy step handed to the policy thread."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.done = fn, threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class PolicyRunner:
    """Runs policy calls on one daemon thread (policies need not be thread-safe: every call, reset
    included, happens there). `call(fn, timeout)` returns ("ok", result), ("error", exception),
    ("late", None) when `fn` did not finish in `timeout` seconds (it keeps running; its result is
    discarded), or ("busy", None) while a late call is still running."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: list[_Call] = []
        self._pending: _Call | None = None  # the last call handed over, until claimed
        self._thread: threading.Thread | None = None
        self._closed = False
        self.discarded = 0  # late results thrown away

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                c = self._queue.pop(0)
            try:
                c.result = c.fn()
            except BaseException as e:  # a policy failure is the node's to count, not this thread's end
                c.error = e
            c.done.set()

    def call(self, fn: Callable[[], Any], timeout: float) -> tuple[str, Any]:
        if self._pending is not None:
            if not self._pending.done.is_set():
                return "busy", None
            self._pending = None  # a late call finished after its deadline: its result is stale
            self.discarded += 1
        c = _Call(fn)
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vla-policy", daemon=True)
                self._thread.start()
            self._queue.append(c)
            self._cv.notify()
        self._pending = c
        if not c.done.wait(timeout):
            return "late", None
        self._pending = None
        return ("error", c.error) if c.error is not None else ("ok", c.result)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (a call still running is abandoned: the thread is a daemon)."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)


class NodeRuntime:
    """The reporting and thread methods of `robot_io.node.VlaNode` (see the module docstring)."""

    @property
    def _active_state(self) -> str:
        """The state word when not holding: a dry run computes commands, it does not send them."""
        return "dry_run" if self.commander.dry_run else "commanding"

    def measured_rate(self) -> float:
        ts = self._tick_times
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else 0.0

    def publish_status(self) -> None:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        level = msgs.DIAG_OK if self.hold_reason is None else msgs.DIAG_WARN
        values = {
            "state": self.hold_reason or self._active_state,
            "rate_hz": f"{self.measured_rate():.2f}",
            "latency_p50_ms": f"{np.percentile(lat, 50):.2f}",
            "latency_p99_ms": f"{np.percentile(lat, 99):.2f}",
            "commands": str(self.steps),
            "ticks": str(self.ticks),
            "stale_inputs": ",".join(self.watchdog.stale(self.clock())),
            "enable_mode": self.enable_mode,
            "max_joint_jump": f"{self.joint_monitor.max_jump:.2f}",  # in units of the allowed bound
            "cameras": ",".join(self.cameras),
            "sync_skew_ms": f"{self.skews_ms[-1]:.1f}" if self.skews_ms else "",  # the last frame set's
            "sync_skew_max_ms": f"{max(self.skews_ms):.1f}" if self.skews_ms else "",
            "unsynced_skew_ms": f"{self.unsynced_skew_ms:.1f}",  # closest set refused (0: none refused)
            "input_mismatch": " | ".join(dict(self._mismatch).values()),
            "transport_errors": str(sum(getattr(self.transport, "errors", {}).values())),
        }
        values.update(self.commander.status_values())  # streaming; a dry run's would-be commands
        values.update({k: str(v) for k, v in sorted(self.safety.counters.items())})
        status = msgs.DiagnosticStatus(
            level=level,
            name="vla_node",
            message=values["state"],
            hardware_id=self.limits.name,
            values=[msgs.KeyValue(k, v) for k, v in values.items()],
        )
        arr = msgs.DiagnosticArray(header=msgs.Header(stamp=convert.now_time()), status=[status])
        self.pub_status.publish(arr)
        self._record(self.cfg.topics.status, arr)

    def command_rate(self) -> float:
        """Commands per second while commanding: over the gaps between consecutive commands shorter than
        the watchdog timeout (holds, episode resets and disabled spells left out)."""
        t = np.diff(np.asarray(self._command_times))
        t = t[t < self.limits.watchdog_timeout]
        return float(len(t) / t.sum()) if t.size and t.sum() > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The run's figures (JSON-able): commands, latency image -> command, control rate, frame-set
        skew, and every intervention / hold counter."""
        lat = np.asarray(self.all_latencies_ms)
        skew = np.asarray(self.skews_ms)

        def pct(a: np.ndarray, q: float) -> float | None:
            return round(float(np.percentile(a, q)), 2) if a.size else None

        return {
            "commands": self.steps,
            "ticks": self.ticks,
            "cameras": list(self.cameras),
            "depth_cameras": [c.name for c in self.inputs.depth],
            "latency_ms": {
                "p50": pct(lat, 50),
                "p99": pct(lat, 99),
                "max": pct(lat, 100),
                "n": int(lat.size),
            },
            "command_rate_hz": round(self.command_rate(), 3),
            "tick_rate_hz": round(self.measured_rate(), 3),
            "skew_ms": {"p50": pct(skew, 50), "max": pct(skew, 100)},
            "counters": dict(sorted(self.safety.counters.items())),
            "enable_mode": self.enable_mode,
            "dry_run": self.commander.dry_run,  # true: `commands` were computed, none was published
            "stream": {
                "points": self.commander.points,
                "replan_every": self.commander.replan_every,
                "trajectories": self.commander.trajectories,
                "trajectory_points": self.commander.points_sent,
            },
            "last_command": self.commander.last,
        }

    def log_status(self, now: float) -> None:
        """One console line: state, rate, latency, commands and holds since the last line."""
        counters = dict(self.safety.counters)
        last_t, last_steps, last_counters = self._last_log or (now, 0, {})
        self._last_log = (now, self.steps, counters)
        changed = {
            k: v - last_counters.get(k, 0) for k, v in counters.items() if v != last_counters.get(k, 0)
        }
        top = sorted(changed.items(), key=lambda kv: -kv[1])[:4]
        if self.latencies_ms:
            lat = np.array(self.latencies_ms)
            latency = f"p50 {np.percentile(lat, 50):.1f} ms p99 {np.percentile(lat, 99):.1f} ms"
        else:
            latency = "n/a (no command yet)"
        log.info(
            "status: %s | %.1f Hz | latency %s | %d commands (+%d in %.1f s) | %s",
            self.hold_reason or self._active_state,
            self.measured_rate(),
            latency,
            self.steps,
            self.steps - last_steps,
            now - last_t,
            ", ".join(f"{k} +{v}" for k, v in top) or "no holds",
        )

    # ------------------------------------------------------------------ threads
    def _spin_loop(self) -> None:
        while not self._stop.is_set():
            self.transport.spin_once(0.05)

    def _control_loop(self) -> None:
        period = 1.0 / self.cfg.rate_hz
        next_t = self.clock()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # never let one bad tick kill the control thread
                self.safety.count("step_error")
                log.exception("control step failed")
            now = self.clock()
            if self.cfg.status_log_s > 0 and (
                self._last_log is None or now - self._last_log[0] >= self.cfg.status_log_s
            ):
                self.log_status(now)
            if self.cfg.max_steps and self.steps >= self.cfg.max_steps:
                self._stop.set()
                break
            next_t += period
            delay = next_t - self.clock()
            if delay < 0:  # overran: skip missed ticks instead of bursting
                next_t = self.clock()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        self._last_log = (self.clock(), 0, {})  # the first console line after status_log_s
        for target, name in ((self._spin_loop, "vla-executor"), (self._control_loop, "vla-control")):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        wake = getattr(self.transport, "wake", None)
        if wake is not None:
            wake()
        for th in self._threads:
            th.join(timeout=5.0)
        self._threads.clear()
        self.runner.close()
        self.kin.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the node stops by itself (max_steps) or `timeout`; True if it stopped."""
        return self._stop.wait(timeout)
