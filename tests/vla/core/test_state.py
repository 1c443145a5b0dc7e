"""The one state layout (vla.core.state): pack/unpack roundtrip, the layout from STATE_PARTS, clear errors,
the missing-width rule, and inputs never modified."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla.core.state import STATE_SLICES, RobotState, pack_state, unpack_state
from vla.core.types import STATE_DIM, STATE_NAMES, STATE_PARTS

finite = st.floats(-10.0, 10.0, allow_nan=False, width=32)
leads = st.sampled_from([(), (1,), (5,), (2, 3)])


def _parts(lead, draw_arr):
    return dict(
        ee_position=draw_arr(lead + (3,)),
        ee_orientation=draw_arr(lead + (4,)),
        gripper_width=draw_arr(lead),
        joint_positions=draw_arr(lead + (7,)),
    )


def test_layout_is_state_names_in_parts():
    assert [f.name for f in dataclasses.fields(RobotState)] == [name for name, _ in STATE_PARTS]
    assert list(STATE_SLICES) == [name for name, _ in STATE_PARTS]
    for name, names in STATE_PARTS:
        assert STATE_NAMES[STATE_SLICES[name]] == names
    assert STATE_DIM == 15 and STATE_SLICES["gripper_width"] == slice(7, 8)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), lead=leads)
def test_pack_unpack_roundtrip(data, lead):
    parts = _parts(lead, lambda shape: data.draw(arrays(np.float32, shape, elements=finite)))
    before = {k: np.array(v, copy=True) for k, v in parts.items()}
    state = pack_state(**parts)
    assert state.shape == lead + (STATE_DIM,) and state.dtype == np.float32
    back = unpack_state(state)
    for name, value in parts.items():
        got = getattr(back, name)
        assert got.dtype == np.float64 and got.shape == np.shape(value)
        np.testing.assert_array_equal(got, value)  # float32 values survive exactly
        np.testing.assert_array_equal(value, before[name])  # inputs untouched
    np.testing.assert_array_equal(pack_state(**dataclasses.asdict(back)), state)


@settings(max_examples=30, deadline=None)
@given(state=arrays(np.float32, st.sampled_from([(15,), (4, 15)]), elements=finite))
def test_unpack_returns_fresh_arrays(state):
    before = state.copy()
    parts = unpack_state(state)
    parts.joint_positions[...] = 99.0
    parts.ee_position[...] = 99.0
    np.testing.assert_array_equal(state, before)
    np.testing.assert_array_equal(parts.ee_orientation, state[..., 3:7])


def test_one_frame_column_by_name():
    state = pack_state(
        ee_position=[0.5, 0.0, 0.2],
        ee_orientation=[1.0, 0.0, 0.0, 0.0],
        gripper_width=0.04,
        joint_positions=np.arange(1, 8, dtype=np.float64),
    )
    expected = {"ee_x": 0.5, "ee_z": 0.2, "ee_qx": 1.0, "gripper_width": 0.04}
    expected.update({f"q{i}": float(i) for i in range(1, 8)})
    for i, name in enumerate(STATE_NAMES):
        assert state[i] == np.float32(expected.get(name, 0.0)), name
    assert unpack_state(state).gripper_width.shape == ()


GOOD = dict(
    ee_position=np.zeros(3), ee_orientation=np.zeros(4), gripper_width=0.0, joint_positions=np.zeros(7)
)


@pytest.mark.parametrize("width", [None, float("nan"), float("inf")])
def test_missing_or_nonfinite_width_is_an_error(width):
    match = "gripper_width is missing; it is required" if width is None else "gripper_width: expected finite"
    with pytest.raises(ValueError, match=match):
        pack_state(**{**GOOD, "gripper_width": width})


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("ee_position", np.zeros(2), r"state: ee_position: expected shape \[\.\.\., 3\], got \(2,\)"),
        ("ee_orientation", np.zeros((4, 1)), r"ee_orientation: expected shape \[\.\.\., 4\]"),
        ("joint_positions", np.zeros(6), r"joint_positions: expected shape \[\.\.\., 7\], got \(6,\)"),
        ("gripper_width", np.zeros(2), r"gripper_width: expected shape \[\.\.\.\] with leading dims \(\)"),
        ("joint_positions", np.zeros((3, 7)), r"leading dims \(\) \(those of ee_position\), got \(3, 7\)"),
        ("ee_position", [0.0, np.nan, 0.0], "ee_position: expected finite values, got 1 non-finite"),
    ],
)
def test_bad_parts_name_the_key_and_shape(key, value, match):
    with pytest.raises(ValueError, match=match):
        pack_state(**{**GOOD, key: value})


@pytest.mark.parametrize("bad", [np.zeros(14), np.zeros((3, 16)), np.float32(1.0), np.array(["a"] * 15)])
def test_unpack_rejects_other_layouts(bad):
    with pytest.raises(ValueError, match=r"state: expected a numeric array of shape \[\.\.\., 15\]"):
        unpack_state(bad)
