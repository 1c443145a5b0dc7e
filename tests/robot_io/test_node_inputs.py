"""Issue 19: the node serves every input a checkpoint reads. A two-camera checkpoint (static + wrist, the
demo's layout, continuous head, no state) is trained here in seconds. The start-up check refuses a config
without a topic for one of its cameras (one line, exit 2); over loopback DDS the node matches both cameras
and the joint state by their stamps and commands; messages that do not fit (size, encoding, joint names)
hold the arm with one logged line naming the topic, what was expected and what came; frame sets whose
stamps disagree, or that were received longer than the watchdog ago, are never used, and the skew is in
the diagnostics."""

import logging
import time

import numpy as np
import pytest
import torch

from robot_io import convert, msgs
from robot_io.config import NodeConfig
from robot_io.inputs import InputSpec, checkpoint_inputs, resolve_inputs
from robot_io.node import VlaNode
from robot_io.safety import load_limits
from robot_io.transport import RELIABLE, SENSOR_DATA, spin_until
from vla import cli
from vla.core.config import ConfigError
from vla.core.policy import make_policy
from vla.core.state import unpack_state

LIMITS = load_limits("panda")
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
JOINTS = list(LIMITS.joint_names) + list(convert.FINGER_JOINTS)
TOPICS = {"static": "camera/static/image_raw", "wrist": "camera/wrist/image_raw"}
SIZE = 32


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real two-camera checkpoint: 2 expert pick episodes at 32 px, 4 training steps."""
    root = tmp_path_factory.mktemp("ckpt")
    store, out = root / "pick.zarr", root / "run"
    assert (
        cli.main(
            [
                "collect",
                "task=pick",
                "episodes=2",
                f"env.image_size={SIZE}",
                "env.depth=false",
                f"out={store}",
            ]
        )
        == 0
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli.main(
            [
                "train", str(store), f"out={out}", "model=tiny_vla_film", "action_head=l1", "use_state=false",
                "val_episodes=1", f"model.vision.image_size={SIZE}", "trainer.steps=4",
                "trainer.batch_size=8",
                "trainer.progress=false", "procs=1",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


class Seen:
    """Wraps a policy (as the chunk wrappers do: `.policy`) and keeps every observation it is given."""

    def __init__(self, policy):
        self.policy, self.obs = policy, []

    def reset(self, seed=None):
        self.policy.reset(seed)

    def select_action(self, obs, info=None):
        self.obs.append(obs)
        return self.policy.select_action(obs, info)


def _image(value, size=SIZE, stamp=None, encoding="rgb8"):
    return convert.image_to_msg(np.full((size, size, 3), value, np.uint8), encoding, stamp)


def _joints(stamp=None, names=JOINTS):
    return convert.joint_state_msg(names, np.r_[HOME_Q, 0.04, 0.04][: len(names)], stamp=stamp)


def test_startup_check_refuses_a_checkpoint_whose_camera_has_no_topic(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = checkpoint_inputs(run)
    assert spec.cameras == ("static", "wrist") and spec.image_size == SIZE and spec.action_dim == 7
    assert not spec.use_state and spec.depth_cameras == ()
    # the default single-camera layout serves `static` only: one line, exit 2, nothing started
    assert cli.main(["ros2", "run", f"checkpoint={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image topic is configured for camera(s) ['wrist']" in err[0], err
    assert "+cameras=" in err[0] and "Traceback" not in err[0]
    # `vla ros2 eval` on an env that does not render the wrist camera: the same, before any process starts
    assert (
        cli.main(["ros2", "eval", f"checkpoint={run}", "env.cameras=[static]", f"env.image_size={SIZE}"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing ['wrist']" in err[0] and not (tmp_path / "outputs").exists()
    # both cameras configured: both resolved, in the checkpoint's order
    inputs = resolve_inputs(NodeConfig(cameras=dict(TOPICS)), spec)
    assert [(c.name, c.image) for c in inputs.cameras] == list(TOPICS.items()) and inputs.image_size == SIZE
    # a point-cloud checkpoint's depth camera, and a joint-space action head, are checked the same way
    clouds = InputSpec(cameras=("wrist",), depth_cameras=("static",), source="clouds")
    with pytest.raises(ConfigError, match=r"point clouds need depth of camera\(s\) \['static'\]"):
        resolve_inputs(NodeConfig(cameras={"wrist": "w"}), clouds)
    assert [
        c.depth for c in resolve_inputs(NodeConfig(cameras={"wrist": "w", "static": "s"}), clouds).depth
    ] == ["camera/static/depth/image_raw"]
    with pytest.raises(ConfigError, match="8-D actions \\(joint_pos\\)"):
        resolve_inputs(NodeConfig(cameras=dict(TOPICS)), InputSpec(cameras=("static",), action_dim=8))


def test_node_serves_the_two_camera_checkpoint_over_dds(run, wire):
    node_tr, test_tr = wire
    policy = Seen(make_policy("vla", checkpoint=str(run)))
    cfg = NodeConfig(cameras=dict(TOPICS), instruction="pick up the cube", enabled=True, rate_hz=20.0)
    cfg.policy_timeout_s = 1.0  # a loaded 2-core machine: the deadline is not what is tested here
    node = VlaNode(cfg, policy, node_tr, LIMITS)
    pubs = {c: test_tr.create_publisher(t, msgs.Image, SENSOR_DATA) for c, t in TOPICS.items()}
    joints = test_tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
    traj, status = [], []
    test_tr.create_subscription(
        "arm_controller/joint_trajectory", msgs.JointTrajectory, traj.append, RELIABLE
    )
    test_tr.create_subscription("vla/status", msgs.DiagnosticArray, status.append, RELIABLE)

    def tick():
        stamp = convert.now_time()  # one stamp per frame set, as a synchronised robot would
        joints.publish(_joints(stamp))
        pubs["static"].publish(_image(40, stamp=stamp))
        pubs["wrist"].publish(_image(200, stamp=stamp))
        time.sleep(0.02)

    node.start()
    try:
        assert spin_until(test_tr, lambda: tick() or len(traj) >= 3, 15.0), dict(node.safety.counters)
        assert spin_until(test_tr, lambda: tick() or len(status) >= 2, 5.0)
    finally:
        node.stop()
    obs = policy.obs[-1]
    assert set(obs) == {"images/static", "images/wrist", "state", "instruction"}
    assert np.all(obs["images/static"] == 40) and np.all(obs["images/wrist"] == 200)  # each from its topic
    assert np.isclose(unpack_state(obs["state"]).gripper_width, 0.08)  # packed by vla.core.state
    q = np.array(traj[-1].points[0].positions)
    assert np.all(np.abs(q - HOME_Q) <= node.safety.max_step + 1e-9)
    values = {kv.key: kv.value for kv in status[-1].status[0].values}
    assert values["cameras"] == "static,wrist" and values["sync_skew_ms"] == "0.0"
    assert values["input_mismatch"] == "" and node.summary()["latency_ms"]["n"] == node.steps


def test_misfitting_messages_hold_with_one_line_naming_topic_expected_and_got(run, wire, caplog):
    node_tr, _ = wire
    caplog.set_level(logging.WARNING, logger="robot_io.node")
    cfg = NodeConfig(cameras=dict(TOPICS), instruction="pick up the cube", enabled=True, policy_timeout_s=5.0)
    node = VlaNode(cfg, make_policy("vla", checkpoint=str(run)), node_tr, LIMITS, clock=lambda: 10.0)
    static, wrist = node.inputs.cameras

    def warnings():
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    try:
        for _ in range(2):  # settled joint states
            node.on_joint_states(_joints())
        node.on_camera(static, _image(1))
        for _ in range(3):  # a 48 px wrist camera, again and again: one line, and the arm holds
            node.on_camera(wrist, _image(1, size=48))
            assert not node.step() and node.hold_reason == "hold_input_mismatch"
        assert warnings() == [
            "holding: camera/wrist/image_raw: expected 32x32 images (the policy's input size; image_size=-1 "
            "accepts any), got 48x48"
        ]
        node.on_camera(wrist, _image(1, encoding="bgr8"))  # a fitting one: commands
        node.on_camera(static, _image(1))
        assert node.step(), (node.hold_reason, dict(node.safety.counters))
        caplog.clear()
        ur = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", *convert.FINGER_JOINTS]
        node.on_joint_states(_joints(names=ur))
        node.on_camera(
            wrist, msgs.Image(height=SIZE, width=SIZE, encoding="mono8", step=SIZE, data=bytes(SIZE * SIZE))
        )
        assert warnings() == [
            f"holding: joint_states: expected joints {list(LIMITS.joint_names)}, got {ur} (missing "
            f"{list(LIMITS.joint_names)})",
            "holding: camera/wrist/image_raw: expected encoding rgb8 or bgr8, got 'mono8'",
        ]
        assert not node.step() and node.hold_reason == "hold_input_mismatch"
        assert node._mismatch.keys() == {"joint_states", "camera/wrist/image_raw"}
    finally:
        node.kin.close()
        node.runner.close()


def test_frame_sets_are_matched_by_time_and_never_used_stale(wire):
    node_tr, _ = wire
    now = [10.0]
    cfg = NodeConfig(cameras=dict(TOPICS), instruction="pick", enabled=True, max_skew_s=0.05)
    node = VlaNode(cfg, make_policy("constant"), node_tr, LIMITS, clock=lambda: now[0])
    static, wrist = node.inputs.cameras
    t = time.time()

    def frames(ts, tw, tj=None):
        node.on_joint_states(_joints(convert.time_from_seconds(ts if tj is None else tj)))
        node.on_camera(static, _image(1, stamp=convert.time_from_seconds(ts)))
        node.on_camera(wrist, _image(2, stamp=convert.time_from_seconds(tw)))

    try:
        frames(t, t - 0.2)
        frames(t, t - 0.2)  # settled joint states; the wrist camera runs 200 ms behind
        assert not node.step() and node.safety.counters["skip_frame_set_incomplete"] == 1  # may be in flight
        now[0] = 10.06  # max_skew_s later the set is still incomplete: a hold, with the skew it has
        assert not node.step() and node.hold_reason == "hold_unsynced_inputs"
        assert abs(node.unsynced_skew_ms - 200.0) < 1.0
        frames(t + 0.1, t + 0.11)  # within max_skew_s: used, skew reported
        assert node.step() and abs(node.skews_ms[-1] - 10.0) < 1.0
        assert not node.step() and node.safety.counters["skip_no_new_image"] == 1  # each set used once
        # A wrist frame matching the next static one by stamp, but received 0.7 s earlier: never used,
        # even though newer (off-stamp) wrist frames keep the watchdog fed.
        node.on_camera(wrist, _image(3, stamp=convert.time_from_seconds(t + 0.3)))
        now[0] = 10.76
        node.on_joint_states(_joints(convert.time_from_seconds(t + 0.3)))
        node.on_joint_states(_joints(convert.time_from_seconds(t + 0.3)))
        node.on_camera(wrist, _image(4, stamp=convert.time_from_seconds(t + 1.3)))
        node.on_camera(static, _image(5, stamp=convert.time_from_seconds(t + 0.3)))
        assert not node.step() and node.hold_reason == "hold_stale_frames"
    finally:
        node.kin.close()
        node.runner.close()
