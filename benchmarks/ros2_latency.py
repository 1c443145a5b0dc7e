"""ROS 2 deployment figures over loopback DDS (Cyclone, 127.0.0.1, multicast off); prints ONE JSON line.

1. End-to-end latency, image publish -> command receive (p50/p99 ms), and the sustained control rate:
   the VLA node runs as its own process (`vla ros2 run`, policy given by --policy, default `constant`);
   this process plays the robot, publishing 224x224 rgb8 images at --camera-hz plus joint states,
   and receives the node's TwistStamped (stamped with the image it was computed from). Measured at the
   nominal 10 Hz and at --max-rate Hz (how fast the loop can go on this machine).
2. Throughput of 224x224 rgb8 sensor_msgs/Image between two processes (reliable, keep-last 10):
   messages/s and MB/s.

    python benchmarks/ros2_latency.py [--seconds 8] [--policy constant|vla --checkpoint DIR] [--max-rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_io import convert, msgs  # noqa: E402
from robot_io.dds import DdsTransport, loopback_config  # noqa: E402
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA, QosProfile, spin_until  # noqa: E402

HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
NAMES = [f"panda_joint{i}" for i in range(1, 8)] + list(convert.FINGER_JOINTS)  # the fingers: gripper width
POSITIONS = np.r_[HOME_Q, 0.04, 0.04]
SIZE = 224


def _env() -> dict[str, str]:
    return {**os.environ, "CYCLONEDDS_URI": os.environ.get("CYCLONEDDS_URI", loopback_config())}


def control_loop(
    domain: int, rate_hz: float, seconds: float, camera_hz: float, policy: str, checkpoint: str | None = None
) -> dict:
    extra = [f"checkpoint={checkpoint}"] if checkpoint else []
    node = subprocess.Popen(
        [
            sys.executable, "-m", "vla.cli", "ros2", "run", f"domain_id={domain}", f"policy={policy}",
            "instruction=benchmark", "enabled=true", f"rate_hz={rate_hz}", f"duration_s={seconds + 30}",
            *extra,
        ],
        env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tr = DdsTransport(domain_id=domain)
    try:
        got: list[tuple[float, float]] = []  # (receive wall time, image stamp)
        tr.create_subscription(
            "vla/ee_delta",
            msgs.TwistStamped,
            lambda m: got.append((time.time(), convert.seconds_from_time(m.header.stamp))),
            RELIABLE,
        )
        pub_img = tr.create_publisher("camera/color/image_raw", msgs.Image, SENSOR_DATA)
        pub_js = tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
        tr.create_publisher("vla/enable", msgs.Bool, LATCHED).publish(msgs.Bool(data=True))
        rgb = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        period = 1.0 / camera_hz

        def tick() -> None:
            now = convert.now_time()
            pub_js.publish(convert.joint_state_msg(NAMES, POSITIONS, stamp=now))
            pub_img.publish(convert.image_to_msg(rgb, "rgb8", now))

        next_t = time.monotonic()
        if not spin_until(tr, lambda: bool(got) or tick() or False, 60.0, step_s=period):
            raise RuntimeError("the node never commanded (start-up failed?)")
        got.clear()
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            tick()
            next_t += period
            while (left := next_t - time.monotonic()) > 0:
                tr.spin_once(left)
        elapsed = time.monotonic() - start
        tr.spin_once(0.2)
    finally:
        node.terminate()
        node.wait(20)
        tr.close()
    lat = np.array([(r - s) * 1e3 for r, s in got])
    return {
        "rate_target_hz": rate_hz,
        "rate_sustained_hz": round(len(got) / elapsed, 2),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 2),
        "commands": len(got),
    }


PUBLISHER = """
import sys, time, numpy as np
from robot_io import convert, msgs
from robot_io.dds import DdsTransport
from robot_io.transport import QosProfile, spin_until
tr = DdsTransport(domain_id=int(sys.argv[1]))
pub = tr.create_publisher("bench/image", msgs.Image, QosProfile(reliable=True, depth=10))
spin_until(tr, lambda: pub.matched() > 0, 30.0)
time.sleep(0.5)
img = convert.image_to_msg(np.zeros((224, 224, 3), np.uint8), "rgb8")
for i in range(int(sys.argv[2])):
    img.header.stamp = convert.now_time()
    pub.publish(img)
time.sleep(2.0)
"""


def throughput(domain: int, n: int) -> dict:
    tr = DdsTransport(domain_id=domain)
    times: list[float] = []
    tr.create_subscription(
        "bench/image",
        msgs.Image,
        lambda m: times.append(time.monotonic()),
        QosProfile(reliable=True, depth=10),
    )
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(domain), str(n)], env=_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 120.0
        while len(times) < n and time.monotonic() < deadline:
            tr.spin_once(0.05)
            if times and time.monotonic() - times[-1] > 2.0:  # the rest was dropped: stop waiting
                break
    finally:
        proc.wait(60)
        tr.close()
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    size = SIZE * SIZE * 3
    return {
        "images_224_msgs_per_s": round((len(times) - 1) / span, 1),
        "images_224_MB_per_s": round((len(times) - 1) * size / span / 1e6, 1),
        "images_224_received": len(times),
        "images_224_sent": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--camera-hz", type=float, default=30.0)
    ap.add_argument("--max-rate", type=float, default=50.0)
    ap.add_argument("--policy", default="constant")
    ap.add_argument("--checkpoint", default=None, help="a VLA checkpoint, with --policy vla")
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("CYCLONEDDS_URI", loopback_config())
    domain = 120 + os.getpid() % 60
    nominal = control_loop(domain, 10.0, args.seconds, args.camera_hz, args.policy, args.checkpoint)
    fast = control_loop(
        domain,
        args.max_rate,
        args.seconds,
        max(args.camera_hz, args.max_rate * 1.5),
        args.policy,
        args.checkpoint,
    )
    out = {
        "benchmark": "ros2_latency",
        "transport": "cyclonedds loopback",
        "policy": args.policy,
        "checkpoint": args.checkpoint,
        "image": f"{SIZE}x{SIZE} rgb8",
        "cpu_count": os.cpu_count(),
        "nominal_10hz": nominal,
        f"max_{args.max_rate:g}hz": fast,
        **throughput(domain, args.images),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
