"""Message types: byte-for-byte CDR equality with rosbags for every type, numpy conversions, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rosbags.typesys import Stores, get_typestore

from robot_io import convert, msgs
from robot_io.msgs import (
    MESSAGE_TYPES,
    CameraInfo,
    DiagnosticArray,
    DiagnosticStatus,
    Duration,
    Header,
    Image,
    JointState,
    JointTrajectory,
    JointTrajectoryPoint,
    KeyValue,
    Time,
    TwistStamped,
)

TS = get_typestore(Stores.ROS2_HUMBLE)


def _examples() -> list:
    stamp = Time(sec=1_700_000_000, nanosec=123_456_789)
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    return [
        msgs.String(data="pick up the red cube"),
        msgs.Bool(data=True),
        msgs.Float64(data=-0.125),
        convert.image_to_msg(rgb, "rgb8", stamp, "camera"),
        convert.image_to_msg(rgb, "bgr8", stamp, "camera"),
        convert.image_to_msg(np.full((3, 7), 0.75, np.float32), "32FC1", stamp, "depth"),
        convert.image_to_msg(np.full((3, 7), 1.5, np.float32), "16UC1", stamp, "depth"),
        convert.camera_info_msg(np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]), 64, 48, stamp, "cam"),
        convert.joint_state_msg(["j1", "j2", "j3"], np.array([0.1, -0.2, 0.3]), np.zeros(3), stamp),
        convert.twist_stamped_msg(np.array([0.01, -0.02, 0.003, 0.0, 0.05, -0.1, 1.0]), stamp, "base"),
        JointTrajectory(
            header=Header(stamp=stamp, frame_id="base"),
            joint_names=["j1", "j2"],
            points=[
                JointTrajectoryPoint(
                    positions=[0.5, 1.0], velocities=[0.0, 0.1], time_from_start=Duration(0, 10**8)
                )
            ],
        ),
        DiagnosticArray(
            header=Header(stamp=stamp),
            status=[
                DiagnosticStatus(level=1, name="vla/safety", message="clipped", values=[KeyValue("n", "3")])
            ],
        ),
    ]


@pytest.mark.parametrize("msg", _examples(), ids=lambda m: type(m).__name__)
def test_cdr_bytes_equal_rosbags(msg):
    ours = msg.serialize()
    theirs = bytes(TS.serialize_cdr(msgs.to_rosbags(msg, TS), msgs.ros_type_name(msg)))
    assert ours == theirs
    assert ours[:4] == b"\x00\x01\x00\x00"  # XCDR1 (CDR_LE) encapsulation header
    back = msgs.from_rosbags(TS.deserialize_cdr(ours, msgs.ros_type_name(msg)))
    assert back == msg and type(msg).deserialize(theirs) == msg


def test_every_type_has_ros_wire_name_and_matching_fields():
    for ros_name, cls in MESSAGE_TYPES.items():
        pkg, _, name = ros_name.split("/")
        assert cls.__idl_typename__ == f"{pkg}::msg::dds_::{name}_"
        _, fdefs = TS.fielddefs[ros_name]
        assert [f[0] for f in fdefs] == list(cls.__dataclass_fields__)
        plain = cls()  # defaults serialise identically too
        assert plain.serialize() == bytes(TS.serialize_cdr(msgs.to_rosbags(plain, TS), ros_name))


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(st.text(max_size=8), max_size=4),
    pos=st.lists(st.floats(allow_nan=False, width=64), max_size=4),
    frame=st.text(max_size=10),
    sec=st.integers(-(2**31), 2**31 - 1),
)
def test_cdr_equality_property_joint_state(names, pos, frame, sec):
    msg = JointState(header=Header(stamp=Time(sec, 7), frame_id=frame), name=names, position=pos)
    assert msg.serialize() == bytes(TS.serialize_cdr(msgs.to_rosbags(msg, TS), "sensor_msgs/msg/JointState"))


texts = st.text(max_size=9)
f64 = st.floats(allow_nan=False, width=64)
headers = st.builds(
    Header, stamp=st.builds(Time, st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**32 - 1)), frame_id=texts
)
random_messages = st.one_of(
    st.builds(
        CameraInfo,
        header=headers,
        distortion_model=texts,  # a string of any length right before float64 data: alignment
        d=st.lists(f64, max_size=5),
        k=st.lists(f64, min_size=9, max_size=9),
        binning_x=st.integers(0, 2**32 - 1),
    ),
    st.builds(
        JointTrajectory,
        header=headers,
        joint_names=st.lists(texts, max_size=3),
        points=st.lists(
            st.builds(
                JointTrajectoryPoint,
                positions=st.lists(f64, max_size=3),
                effort=st.lists(f64, max_size=2),
                time_from_start=st.builds(Duration, st.integers(0, 100), st.integers(0, 10**9 - 1)),
            ),
            max_size=3,
        ),
    ),
    st.builds(
        DiagnosticArray,
        header=headers,
        status=st.lists(
            st.builds(
                DiagnosticStatus,
                level=st.integers(0, 3),
                name=texts,
                message=texts,
                values=st.lists(st.builds(KeyValue, texts, texts), max_size=3),
            ),
            max_size=3,
        ),
    ),
    st.builds(
        Image,
        header=headers,
        height=st.integers(0, 5),
        width=st.integers(0, 5),
        encoding=texts,
        is_bigendian=st.integers(0, 1),
        step=st.integers(0, 99),
        data=st.binary(max_size=33),
    ),
    st.builds(TwistStamped, header=headers),
)


@settings(max_examples=150, deadline=None)
@given(msg=random_messages)
def test_cdr_equality_property_all_shapes(msg):
    ours = msg.serialize()
    name = msgs.ros_type_name(msg)
    assert ours == bytes(TS.serialize_cdr(msgs.to_rosbags(msg, TS), name))
    assert type(msg).deserialize(ours) == msg


def test_topic_and_type_names():
    assert msgs.dds_topic_name("/camera/color/image_raw") == "rt/camera/color/image_raw"
    assert msgs.dds_topic_name("joint_states") == "rt/joint_states"
    with pytest.raises(ValueError, match="topic"):
        msgs.dds_topic_name("bad topic")
    assert msgs.ros_type_name(TwistStamped) == "geometry_msgs/msg/TwistStamped"
    with pytest.raises(ValueError, match="not a robot_io message"):
        msgs.ros_type_name(int)


def test_image_round_trips():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8"):
        out = convert.msg_to_image(convert.image_to_msg(rgb, enc))
        assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    bgr = convert.image_to_msg(rgb, "bgr8")
    assert bgr.data[:3] == bytes(rgb[0, 0, ::-1])  # wire order really is B, G, R
    depth = rng.uniform(0.2, 3.0, (6, 9)).astype(np.float32)
    assert np.array_equal(convert.msg_to_image(convert.image_to_msg(depth, "32FC1")), depth)
    mm = convert.msg_to_image(convert.image_to_msg(depth, "16UC1"))
    assert mm.dtype == np.float32 and np.allclose(mm, depth, atol=5e-4)


def test_image_with_row_padding_and_big_endian():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = [depth[i].astype(">f4").tobytes() + b"\0" * 4 for i in range(3)]
    msg = Image(height=3, width=4, encoding="32FC1", is_bigendian=1, step=20, data=b"".join(rows))
    assert np.array_equal(convert.msg_to_image(msg), depth)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"encoding": "mono8"}, "encoding 'mono8' not supported"),
        ({"step": 5}, "step 5 < width"),
        ({"data": b"\0" * 10}, "expected height\\*step"),
        ({"height": 0}, "empty image"),
    ],
)
def test_bad_image_messages_raise_clear_errors(kwargs, match):
    base = {"height": 2, "width": 2, "encoding": "rgb8", "step": 6, "data": b"\0" * 12}
    with pytest.raises(ValueError, match=match):
        convert.msg_to_image(Image(**{**base, **kwargs}), topic="camera/color/image_raw")


def test_joint_positions_validation():
    js = convert.joint_state_msg(["a", "b", "c"], np.array([1.0, 2.0, 3.0]))
    assert np.array_equal(convert.joint_positions(js, ["c", "a"]), [3.0, 1.0])
    with pytest.raises(ValueError, match="missing joints \\['z'\\]"):
        convert.joint_positions(js, ["z"])
    with pytest.raises(ValueError, match="non-finite"):
        convert.joint_positions(convert.joint_state_msg(["a"], np.array([np.nan])), ["a"])
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        convert.joint_positions(JointState(name=["a", "b"], position=[0.0]), ["a"])


def test_camera_info_and_stamps():
    k = np.array([[90.0, 0, 10], [0, 91.0, 12], [0, 0, 1]])
    info = convert.camera_info_msg(k, 20, 24)
    assert isinstance(info, CameraInfo) and np.array_equal(convert.intrinsics_from_msg(info), k)
    with pytest.raises(ValueError, match="intrinsics"):
        convert.camera_info_msg(np.eye(2), 1, 1)
    t = convert.time_from_seconds(12.25)
    assert (t.sec, t.nanosec) == (12, 250_000_000) and convert.seconds_from_time(t) == 12.25
    with pytest.raises(ValueError, match="duration"):
        convert.duration_from_seconds(float("nan"))
