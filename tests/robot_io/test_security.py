"""Hostile input on the DDS domain (issue 21): a stranger cannot enable the arm, and lying joint states cannot
move it further than one joint step from where it really is.

Over real loopback DDS: a stranger's `vla/enable` true, forged and replayed enable requests leave the node
disabled while the operator's signed request (robot_io.enable) enables it; joint states 0.45 rad off the real
arm, published beside the real driver and then instead of it, never make the node send a target more than
one step from the real arm (a test-side arm that goes exactly where it is sent). In-process, hypothesis plays
an adversary against the node (joint states, enables, enable requests, instructions, actions) with a true
arm that follows every command, and checks each published point against the true arm.
"""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_io import convert, msgs
from robot_io.config import NodeConfig
from robot_io.dds import DdsTransport
from robot_io.enable import request_enable, sign
from robot_io.node import VlaNode
from robot_io.safety import load_limits
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA, spin_until
from vla.core.policy import make_policy

LIMITS = load_limits("panda")
NAMES = list(LIMITS.joint_names)
WITH_FINGERS = NAMES + list(convert.FINGER_JOINTS)
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
TOKEN = b"operator-secret-0123456789"
PUSH = [0.2, 0.0, 0.2, 0.0, 0.0, 0.5, 1.0]  # a policy that pushes hard: every step is capped


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(TOKEN + b"\n")
    return str(path)


class Arm:
    """The real arm on the test side of the wire: goes exactly where each trajectory sends it, and its
    driver publishes where it is. Records, per received target, the distance from the arm at that moment."""

    def __init__(self, tr):
        self.q = HOME_Q.copy()
        self.offsets: list[np.ndarray] = []  # |target - real arm| per joint, per command
        self.joints = tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
        self.image = tr.create_publisher("camera/color/image_raw", msgs.Image, SENSOR_DATA)
        tr.create_subscription("arm_controller/joint_trajectory", msgs.JointTrajectory, self._goal, RELIABLE)
        self.status: list[msgs.DiagnosticArray] = []
        tr.create_subscription("vla/status", msgs.DiagnosticArray, self.status.append, RELIABLE)

    def _goal(self, m):
        target = np.array(m.points[0].positions)
        self.offsets.append(np.abs(target - self.q))
        self.q = target

    def publish(self, driver=True):
        if driver:
            self.joints.publish(convert.joint_state_msg(WITH_FINGERS, np.r_[self.q, 0.04, 0.04]))
        self.image.publish(convert.image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8", convert.now_time()))


def _run(tr, seconds, *tick):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for f in tick:
            f()
        tr.spin_once(0.02)


def test_a_stranger_cannot_enable_the_arm_over_dds(domain, token_file):
    with (
        DdsTransport(domain_id=domain) as node_tr,
        DdsTransport(domain_id=domain) as robot_tr,
        DdsTransport(domain_id=domain) as stranger_tr,
        DdsTransport(domain_id=domain) as operator_tr,
    ):
        cfg = NodeConfig(rate_hz=20.0, instruction="pick", enable_token_file=token_file, status_log_s=0)
        node = VlaNode(cfg, make_policy("constant", action=PUSH), node_tr, LIMITS)
        arm = Arm(robot_tr)
        enable = stranger_tr.create_publisher("vla/enable", msgs.Bool, LATCHED)
        forged = stranger_tr.create_publisher("vla/enable_auth", msgs.String, RELIABLE)
        challenge: list[str] = []  # the stranger reads the challenge too: it is public
        stranger_tr.create_subscription(
            "vla/enable_challenge", msgs.String, lambda m: challenge.append(m.data), LATCHED
        )
        node.start()
        try:
            assert spin_until(stranger_tr, lambda: bool(challenge) and forged.matched() > 0, 5.0)
            enable.publish(msgs.Bool(data=True))  # what anyone on the domain could do before
            forged.publish(msgs.String(data=sign(b"a-guessed-token-0000000", challenge[-1])))
            forged.publish(msgs.String(data="enable"))
            _run(robot_tr, 1.0, arm.publish, lambda: stranger_tr.spin_once(0.0))
            assert arm.offsets == [] and node.hold_reason == "hold_disabled"
            c = node.safety.counters
            assert c["enable_refused_unauthenticated"] >= 1 and c["enable_refused_bad_token"] == 2

            request = request_enable(operator_tr, TOKEN)  # the operator, with the token
            assert spin_until(robot_tr, lambda: arm.publish() or len(arm.offsets) >= 3, 5.0), dict(c)
            assert c["enabled_by_token"] == 1

            enable.publish(msgs.Bool(data=False))  # anyone may stop the arm ...
            assert spin_until(robot_tr, lambda: arm.publish() or node.hold_reason == "hold_disabled", 5.0)
            n = len(arm.offsets)
            forged.publish(msgs.String(data=request))  # ... but the operator's request cannot be replayed
            _run(robot_tr, 0.6, arm.publish)
            assert len(arm.offsets) == n and c["enable_refused_bad_token"] == 3
            values = {kv.key: kv.value for kv in arm.status[-1].status[0].values}
            assert values["state"] == "hold_disabled" and values["enable_mode"] == "token"
        finally:
            node.stop()
    assert np.all(np.stack(arm.offsets) <= node.safety.max_step + 1e-9)


def test_spoofed_joint_states_cannot_move_the_arm_beyond_the_step_cap(wire, domain):
    node_tr, robot_tr = wire
    cfg = NodeConfig(rate_hz=20.0, instruction="pick", enabled=True, status_log_s=0)
    node = VlaNode(cfg, make_policy("constant", action=PUSH), node_tr, LIMITS)
    arm = Arm(robot_tr)
    with DdsTransport(domain_id=domain) as spoof_tr:
        spoof = spoof_tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
        off = np.r_[0.45, 0.0, 0.45, 0.0, 0.0, 0.0, 0.0]  # inside the old 0.5 rad plausibility band

        def lie():
            spoof.publish(convert.joint_state_msg(WITH_FINGERS, np.r_[arm.q + off, 0.04, 0.04]))

        node.start()
        try:
            assert spin_until(robot_tr, lambda: arm.publish() or len(arm.offsets) >= 4, 5.0)  # honest: moves
            _run(robot_tr, 1.5, arm.publish, lie)  # the spoofer beside the real driver
            beside = len(arm.offsets)
            _run(robot_tr, 1.5, lambda: arm.publish(driver=False), lie)  # the spoofer alone
        finally:
            node.stop()
    c = node.safety.counters
    offsets = np.stack(arm.offsets)
    # Every target the arm received was within one joint step of where the arm really was.
    assert np.all(offsets <= node.safety.max_step + 1e-9), offsets.max(0)
    assert c["joint_state_jump"] >= 5 and c["hold_implausible_joint_states"] >= 5
    assert c["hold_command_disagreement"] >= 1 or len(arm.offsets) == beside, dict(c)
    assert (
        arm.status
        and float({kv.key: kv.value for kv in arm.status[-1].status[0].values}["max_joint_jump"]) > 1
    )


# ---------------------------------------------------------------------------- hypothesis: node vs adversary
step_events = st.lists(
    st.one_of(
        st.tuples(st.just("spoof"), st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7)),
        st.tuples(st.just("nudge"), st.lists(st.floats(-0.06, 0.06), min_size=7, max_size=7)),
        st.tuples(st.just("enable"), st.booleans()),
        st.tuples(st.just("auth"), st.sampled_from(["forged", "replay", "junk"])),
        st.tuples(st.just("instruction"), st.sampled_from(["pick", "place", "x" * 5000, ""])),
        st.tuples(st.just("operator"), st.just(True)),
    ),
    max_size=4,
)
actions = st.lists(
    st.one_of(st.floats(-1.0, 1.0), st.floats(allow_nan=True, allow_infinity=True)), min_size=7, max_size=7
)


class Sent:
    """A recorder: the node hands it every message it publishes."""

    def __init__(self):
        self.traj: list[np.ndarray] = []

    def write(self, topic, msg):
        if isinstance(msg, msgs.JointTrajectory):
            self.traj.append(np.array(msg.points[0].positions))


def test_adversary_never_moves_the_arm_beyond_the_limits(wire, token_file):
    """Per tick (0.1-0.2 s of a fake clock): the real driver publishes where the true arm is, interleaved with
    the adversary's events; then an image and one control step. The true arm goes exactly where each
    published point sends it. Every published point must be within the joint limits and one joint step of
    the true arm (plus the settle tolerance for the first point of a new command stream, whose readings a
    spoofer may bias within that tolerance), and only while the operator's token enable stands."""
    node_tr, _ = wire

    @settings(max_examples=40, deadline=None)
    @given(ticks=st.lists(st.tuples(step_events, actions), min_size=3, max_size=14))
    def play(ticks):
        now = [100.0]
        sent, policy = Sent(), make_policy("constant", action=PUSH)
        cfg = NodeConfig(rate_hz=10.0, instruction="pick", enable_token_file=token_file, status_log_s=0)
        node = VlaNode(cfg, policy, node_tr, LIMITS, recorder=sent, clock=lambda: now[0])
        step = node.safety.max_step
        true_q, valid = HOME_Q.copy(), []
        image = convert.image_to_msg(np.zeros((4, 4, 3), np.uint8), "rgb8")

        def reading(q):
            node.on_joint_states(convert.joint_state_msg(WITH_FINGERS, np.r_[q, 0.04, 0.04]))

        def operator():  # what robot_io.enable sends for the current challenge
            valid.append(sign(TOKEN, node._nonce))
            node.on_enable_auth(msgs.String(data=valid[-1]))

        try:
            for _ in range(4):  # the driver has been publishing before the operator enables
                reading(true_q)
                now[0] += 0.025
            operator()
            enabled, new_stream = True, True
            for events, action in ticks:
                policy.action = np.array(action, dtype=np.float64)
                for kind, arg in events:
                    reading(true_q)  # the driver, then the adversary: the last reading may be a lie
                    now[0] += 0.1 / (len(events) + 1)
                    if kind in ("spoof", "nudge"):
                        reading(true_q + np.array(arg))
                    elif kind == "enable":
                        node.on_enable(msgs.Bool(data=arg))
                        enabled = enabled and arg  # false from anyone disables; true from a stranger does not
                    elif kind == "auth":
                        forged = {"forged": sign(b"not-the-token-000000", node._nonce), "junk": "enable"}
                        node.on_enable_auth(msgs.String(data=valid[0] if arg == "replay" else forged[arg]))
                    elif kind == "instruction":
                        node.on_instruction(msgs.String(data=arg))
                        new_stream = True
                    else:
                        operator()
                        enabled, new_stream = True, True
                if not events:
                    reading(true_q)
                node.on_image(image)
                now[0] += 0.02
                sent.traj.clear()
                published = node.step()
                now[0] += 0.05
                if not published:
                    continue
                assert enabled, "a command while not enabled by the operator"
                (q,) = sent.traj
                assert np.all(q >= node.safety.lower - 1e-9) and np.all(q <= node.safety.upper + 1e-9)
                slack = LIMITS.joint_jump_tolerance if new_stream else 0.0
                assert np.all(np.abs(q - true_q) <= step + slack + 1e-9), (q - true_q, events)
                true_q, new_stream = q, False  # the arm goes where it is sent
        finally:
            node.runner.close()
            node.kin.close()

    play()
