"""Transports: DDS publish/subscribe on loopback, QoS profiles, error counting, rclpy stays lazy."""

import os
import subprocess
import sys
import time

import pytest

from robot_io import msgs
from robot_io.dds import DdsTransport, loopback_config, to_cyclone_qos
from robot_io.transport import (
    LATCHED,
    RELIABLE,
    SENSOR_DATA,
    QosProfile,
    Transport,
    make_transport,
    qos_profile,
    spin_until,
)


def test_dds_pub_sub_in_process_and_callback_errors_are_counted(domain):
    with DdsTransport(domain_id=domain) as a, DdsTransport(domain_id=domain) as b:
        assert isinstance(a, Transport)
        got = []
        b.create_subscription("vla/instruction", msgs.String, got.append, RELIABLE)
        pub = a.create_publisher("vla/instruction", msgs.String, RELIABLE)
        assert spin_until(b, lambda: pub.matched() > 0, 5.0)
        for word in ("pick", "place", "push"):
            pub.publish(msgs.String(data=word))
        assert spin_until(b, lambda: len(got) == 3, 5.0)
        assert [m.data for m in got] == ["pick", "place", "push"]

        def boom(msg):
            raise RuntimeError("bad callback")

        b.create_subscription("vla/enable", msgs.Bool, boom, RELIABLE)
        pub2 = a.create_publisher("vla/enable", msgs.Bool, RELIABLE)
        assert spin_until(b, lambda: pub2.matched() > 0, 5.0)
        pub2.publish(msgs.Bool(data=True))
        assert spin_until(b, lambda: b.errors.get("vla/enable", 0) == 1, 5.0)
        with pytest.raises(ValueError, match="expected Bool"):
            pub2.publish(msgs.String(data="x"))
        with pytest.raises(ValueError, match="already used with type"):
            b.create_publisher("vla/enable", msgs.String)


def test_dds_across_processes_on_loopback(domain):
    """A second process publishes JointState on the same domain; we receive it over 127.0.0.1."""
    script = (
        "import time\n"
        "from robot_io.dds import DdsTransport\n"
        "from robot_io.msgs import JointState\n"
        "from robot_io.transport import SENSOR_DATA\n"
        f"t = DdsTransport(domain_id={domain})\n"
        "p = t.create_publisher('joint_states', JointState, SENSOR_DATA)\n"
        "end = time.monotonic() + 8\n"
        "while time.monotonic() < end:\n"
        "    p.publish(JointState(name=['j1'], position=[0.5]))\n"
        "    time.sleep(0.02)\n"
    )
    env = {**os.environ, "CYCLONEDDS_URI": os.environ.get("CYCLONEDDS_URI", loopback_config())}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=os.getcwd())
    try:
        with DdsTransport(domain_id=domain) as t:
            got = []
            t.create_subscription("joint_states", msgs.JointState, got.append, SENSOR_DATA)
            start = time.monotonic()
            assert spin_until(t, lambda: len(got) >= 3, 8.0), "no JointState from the other process"
            assert got[0].name == ["j1"] and got[0].position == [0.5]
            assert time.monotonic() - start < 8.0
    finally:
        proc.kill()
        proc.wait(5)


def test_qos_profiles():
    assert SENSOR_DATA == QosProfile(reliable=False, depth=5)
    assert RELIABLE.reliable and RELIABLE.depth == 10 and LATCHED.transient_local
    assert qos_profile("sensor_data") is SENSOR_DATA
    with pytest.raises(ValueError, match="unknown QoS profile"):
        qos_profile("fast")
    with pytest.raises(ValueError, match="depth"):
        QosProfile(depth=0)
    assert to_cyclone_qos(SENSOR_DATA) != to_cyclone_qos(RELIABLE)


def test_make_transport_and_lazy_rclpy():
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("zenoh")
    import robot_io.rclpy_transport  # importing must not need ROS 2

    assert "rclpy" not in sys.modules or robot_io.rclpy_transport is not None
    with pytest.raises(ImportError, match="transport=dds"):
        make_transport("rclpy")
    with pytest.raises(ValueError, match="domain id"):
        DdsTransport(domain_id=500)
