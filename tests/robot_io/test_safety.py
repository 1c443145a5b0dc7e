"""Safety layer: hypothesis properties (no passed command exceeds any limit), URDF limits, YAML, watchdog."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_io.kinematics import Kinematics, urdf_joint_limits
from robot_io.safety import (
    PANDA_JOINTS,
    GripperHysteresis,
    SafetyFilter,
    SafetyLimits,
    Watchdog,
    cap_norm,
    load_limits,
    workspace_delta,
)

LIMITS = load_limits("panda")
LOWER, UPPER, VEL = urdf_joint_limits(LIMITS.urdf, LIMITS.joint_names)
EPS = 1e-9

anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite = st.floats(-10.0, 10.0, allow_nan=False)
vec = lambda n, el=anything: st.lists(el, min_size=n, max_size=n).map(np.array)  # noqa: E731
inside = st.tuples(*(st.floats(lo, hi) for lo, hi in zip(LIMITS.workspace_low, LIMITS.workspace_high))).map(
    np.array
)


def _filter() -> SafetyFilter:
    return SafetyFilter(LIMITS, LOWER, UPPER, VEL)


@settings(max_examples=300, deadline=None)
@given(action=vec(7), ee=inside)
def test_no_passed_ee_command_exceeds_a_limit(action, ee):
    out = _filter().filter_ee_delta(action, ee)
    if not np.all(np.isfinite(action)):
        assert out is None
        return
    assert out is not None and out.delta.shape == (6,)
    assert np.all(np.isfinite(out.delta))
    assert np.linalg.norm(out.delta[:3]) <= LIMITS.max_translation + EPS
    assert np.linalg.norm(out.delta[3:]) <= LIMITS.max_rotation + EPS
    target = ee + out.delta[:3]
    assert np.all(target >= np.array(LIMITS.workspace_low) - EPS)
    assert np.all(target <= np.array(LIMITS.workspace_high) + EPS)
    assert out.gripper in (0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(delta=vec(3, finite), ee=vec(3, st.floats(-2.0, 2.0)))
def test_outside_the_box_only_moves_toward_it(delta, ee):
    lo, hi = np.array(LIMITS.workspace_low), np.array(LIMITS.workspace_high)
    out, _ = workspace_delta(delta, ee, lo, hi)
    before = np.maximum(lo - ee, 0) + np.maximum(ee - hi, 0)  # per-axis distance to the box
    after = np.maximum(lo - (ee + out), 0) + np.maximum((ee + out) - hi, 0)
    assert np.all(after <= before + EPS)


@settings(max_examples=300, deadline=None)
@given(target=vec(7, anything), current_frac=vec(7, st.floats(0.0, 1.0)))
def test_no_passed_joint_target_exceeds_a_limit(target, current_frac):
    f = _filter()
    current = f.lower + current_frac * (f.upper - f.lower)  # a current position within the limits
    q = f.filter_joints(target, current)
    if not np.all(np.isfinite(target)):
        assert q is None and f.counters["nonfinite_or_malformed_joints"] == 1
        return
    assert q is not None
    assert np.all(q >= LOWER + LIMITS.joint_margin - EPS) and np.all(q <= UPPER - LIMITS.joint_margin + EPS)
    assert np.all(np.abs(q - current) <= VEL * LIMITS.velocity_scale / LIMITS.control_hz + EPS)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(anything, min_size=1, max_size=30))
def test_gripper_hysteresis_is_binary_and_switches_only_outside_the_band(values):
    g = GripperHysteresis(0.4, 0.6)
    state = 1.0
    for v in values:
        out, _ = g(v)
        assert out in (0.0, 1.0)
        if np.isfinite(v) and v < 0.4:
            state = 0.0
        elif np.isfinite(v) and v > 0.6:
            state = 1.0
        assert out == state


def test_caps_and_counters():
    f = _filter()
    ee = np.array([0.5, 0.0, 0.3])
    out = f.filter_ee_delta(np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0]), ee)
    assert np.isclose(np.linalg.norm(out.delta[:3]), 0.025) and np.isclose(out.delta[5], 0.1)
    assert out.gripper == 0.0
    out = f.filter_ee_delta(np.array([0.0, 0.0, -0.02, 0, 0, 0, 1.0]), np.array([0.5, 0.0, 0.01]))
    assert np.isclose(out.delta[2], -0.01)  # the box floor at z = 0
    assert f.counters == {"translation_clipped": 1, "rotation_clipped": 1, "workspace_clipped": 1}
    assert f.filter_ee_delta(np.array([np.nan] * 7), ee) is None
    assert f.filter_ee_delta(np.zeros(3), ee) is None
    assert f.counters["nonfinite_or_malformed_action"] == 2
    v, clipped = cap_norm(np.array([3.0, 4.0]), 10.0)
    assert not clipped and np.array_equal(v, [3.0, 4.0])


def test_gate_and_watchdog():
    f = _filter()
    assert f.gate(False, "pick", []) == "hold_disabled"
    assert f.gate(True, "", []) == "hold_no_instruction"
    assert f.gate(True, "pick", ["image"]) == "hold_stale_observation"
    assert f.gate(True, "pick", []) is None
    assert f.report() == {"hold_disabled": 1, "hold_no_instruction": 1, "hold_stale_observation": 1}
    w = Watchdog(["image", "joints"], timeout=0.5)
    assert w.stale(0.0) == ["image", "joints"]
    w.feed("image", 1.0)
    w.feed("joints", 1.2)
    assert w.stale(1.4) == [] and w.stale(1.6) == ["image"] and w.stale(2.0) == ["image", "joints"]


def test_urdf_limits_and_yaml(tmp_path):
    assert LIMITS.max_translation == 0.025 and LIMITS.max_rotation == 0.1
    assert LOWER.shape == (7,) and np.isclose(UPPER[0], 2.9671) and np.isclose(VEL[4], 2.61)
    with pytest.raises(ValueError, match="have no <limit>"):
        urdf_joint_limits(LIMITS.urdf, ["nope"])
    with pytest.raises(FileNotFoundError, match="robot safety file"):
        load_limits("no_such_robot")
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_translation: -1.0\n")
    with pytest.raises(ValueError, match="max_translation must be a positive"):
        load_limits(str(bad))
    bad.write_text("workspace_low: [1.0, 0.0, 0.0]\nworkspace_high: [0.5, 1.0, 1.0]\n")
    with pytest.raises(ValueError, match="low < high"):
        load_limits(str(bad))
    with pytest.raises(ValueError, match="joint_lower must have 7 values"):
        SafetyFilter(SafetyLimits(joint_lower=[0.0] * 3, joint_names=list(PANDA_JOINTS)), LOWER, UPPER, VEL)


def test_kinematics_round_trip():
    kin = Kinematics(LIMITS.urdf, LIMITS.joint_names, LIMITS.ee_link)
    try:
        q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
        pos, quat = kin.forward(q)
        assert pos.shape == (3,) and np.isclose(np.linalg.norm(quat), 1.0)
        q2 = kin.ee_delta_to_joints(q, np.array([0.02, -0.01, -0.015, 0.0, 0.0, 0.05]))
        pos2, _ = kin.forward(q2)
        assert np.allclose(pos2 - pos, [0.02, -0.01, -0.015], atol=2e-3)
        with pytest.raises(ValueError, match="expected q of shape"):
            kin.forward(np.zeros(3))
        with pytest.raises(ValueError, match="unknown EE link"):
            Kinematics(LIMITS.urdf, LIMITS.joint_names, "no_link")
    finally:
        kin.close()


@settings(max_examples=300, deadline=None)
@given(
    target=vec(7, anything),
    current_frac=vec(7, st.floats(0.0, 1.0)),
    offset=vec(7, st.floats(-0.5, 0.5)),
)
def test_joint_targets_stay_within_one_step_of_the_measured_and_the_commanded_joints(
    target, current_frac, offset
):
    """The step cap holds relative to the last command as well: joint states that lie (`current` off by
    up to 0.5 rad from where the arm was sent) cannot pull a target further than one step from it."""
    f = _filter()
    commanded = f.lower + current_frac * (f.upper - f.lower)
    f.commit(commanded)
    current = commanded + offset  # what the joint states claim
    q = f.filter_joints(target, current)
    if not np.all(np.isfinite(target)):
        assert q is None
        return
    step = f.max_step
    if np.any(np.abs(offset) > 2 * step):  # the two one-step boxes do not overlap: hold
        assert q is None and f.counters["hold_command_disagreement"] == 1
        return
    assert q is not None
    assert np.all(np.abs(q - commanded) <= step + EPS) and np.all(np.abs(q - current) <= step + EPS)


def test_joint_state_monitor_jumps_hold_and_settle():
    f = _filter()
    m = f.monitor()  # panda: one step 0.109 rad (joints 1-4) per 0.1 s, tolerance 0.05 rad
    q0 = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
    assert not m.settled(0.0)  # nothing received yet
    assert m.accept(q0, 0.0) and not m.settled(0.0)  # one reading is not a steady stream
    assert m.accept(q0 + 0.01, 0.03) and m.settled(0.03)
    assert m.accept(q0 + 0.15, 0.06)  # one step + tolerance: plausible (the arm moving) ...
    assert not m.settled(0.06)  # ... but not steady: a new command stream would wait
    assert not m.accept(q0 + 0.15 + np.r_[0.45, np.zeros(6)], 0.09)  # a spoofer's reading: a jump
    assert m.held(0.09) and m.held(1.08) and not m.held(1.1) and not m.settled(0.5)
    assert not m.accept(q0 + 0.15, 0.12)  # and the real driver's next one jumps back: still held
    assert m.max_jump > 1.0
    # messages further apart may differ more (the arm had longer to move), up to the watchdog timeout
    assert np.allclose(m.bound(0.3), LIMITS.joint_jump_tolerance + 3 * f.max_step)
    assert np.allclose(m.bound(5.0), m.bound(LIMITS.watchdog_timeout))
    bad = SafetyLimits(command_tolerance=0.0)
    with pytest.raises(ValueError, match="command_tolerance must be a positive"):
        bad.validate()
