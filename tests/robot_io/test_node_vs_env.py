"""One state layout end to end: the node fed a simulated pick episode over loopback DDS sees the env's own
observation, key by key, and the bag it records imports to the same frames.

The scripted expert runs a `pick` episode in the env (the gripper opens at 0.08 m, then closes on the cube
at its width). Each frame goes over real DDS the way the sim robot publishes it: the JointState built by
`robot_io.sim_robot.joint_state_from_state` (7 arm joints + the two fingers), the camera image (rgb8) and
depth (32FC1). The node, stepped by hand once per frame, computes its state from the joint state
(forward kinematics, the width from the fingers, `vla.core.state.pack_state`) and hands its observation
to a policy that keeps it; that observation must equal the env's: same keys, images and depth exactly,
the width and joints exactly, the EE pose to 1e-6 (forward kinematics of float32 joint readings).
"""

import dataclasses

import numpy as np
import pytest

from robot_io import convert, msgs
from robot_io.bag import BagRecorder, import_rosbag
from robot_io.config import NodeConfig
from robot_io.kinematics import Kinematics
from robot_io.node import VlaNode
from robot_io.safety import load_limits
from robot_io.sim_robot import joint_state_from_state
from robot_io.transport import LATCHED, SENSOR_DATA, spin_until
from sim.env import TabletopEnv
from vla.core.policy import make_policy
from vla.core.state import unpack_state
from vla.core.types import INSTRUCTION_KEY, STATE_KEY, depth_key, image_key
from vla.data.store import EpisodeStore

# The drivers here replay a recorded episode as fast as DDS delivers it and ignore the node's commands: to the
# node's plausibility checks that is an arm jumping faster than it can move and not following its commands,
# which holds the arm (tests/robot_io/test_security.py). This test is about the observation, so they are off.
LIMITS = dataclasses.replace(
    load_limits("panda"), joint_jump_tolerance=10.0, command_tolerance=10.0, settle_s=0.0
)
CAMERA = "static"


class Keep:
    """A policy that keeps every observation it is given and holds still."""

    def __init__(self):
        self.seen = []

    def reset(self, seed=None):
        pass

    def select_action(self, obs, info=None):
        self.seen.append(obs)
        return np.array([0, 0, 0, 0, 0, 0, 1], np.float32)


@pytest.fixture(scope="module")
def episode():
    """The env's observations of one scripted pick episode (seed 0)."""
    env = TabletopEnv(task="pick", cameras=(CAMERA,), image_size=32, depth=True)
    expert = make_policy("expert", task="pick")
    try:
        obs, info = env.reset(seed=0)
        expert.reset(seed=0)
        frames = [obs]
        for _ in range(60):
            obs, _, terminated, truncated, info = env.step(expert.select_action(obs, info))
            frames.append(obs)
            if terminated or truncated:
                break
    finally:
        env.close()
    assert info["is_success"]
    width = unpack_state(np.stack([f[STATE_KEY] for f in frames])).gripper_width
    assert width.max() > 0.075 and np.any((width > 0.01) & (width < 0.07))  # open, then closed on the cube
    return frames


class Drivers:
    """The robot side of the wire, publishing one env observation as the sim robot does."""

    def __init__(self, tr, topics):
        self.joints = tr.create_publisher(topics.joint_states, msgs.JointState, SENSOR_DATA)
        self.image = tr.create_publisher(topics.image, msgs.Image, SENSOR_DATA)
        self.depth = tr.create_publisher(topics.depth, msgs.Image, SENSOR_DATA)

    def publish(self, obs):
        stamp = convert.now_time()
        self.joints.publish(joint_state_from_state(obs[STATE_KEY], stamp))
        self.image.publish(convert.image_to_msg(obs[image_key(CAMERA)], "rgb8", stamp))
        self.depth.publish(convert.image_to_msg(obs[depth_key(CAMERA)], "32FC1", stamp))


def _received(node, obs, seq):
    """Whether the node holds this frame's joint state, image and depth (and a new image since `seq`)."""
    js = joint_state_from_state(obs[STATE_KEY])
    q, width = convert.joint_positions(js, LIMITS.joint_names), convert.gripper_width(js)
    with node._lock:
        return (
            node._image_seq > seq
            and node._q is not None
            and np.array_equal(node._q, q)
            and node._gripper_width == width
            and np.array_equal(node._image, obs[image_key(CAMERA)])
            and node._depth is not None
            and np.array_equal(node._depth, obs[depth_key(CAMERA)])
        )


def test_node_observation_equals_env_observation_key_by_key(wire, episode, tmp_path):
    node_tr, robot_tr = wire
    policy = Keep()
    cfg = NodeConfig(camera=CAMERA, use_depth=True, enabled=True)
    recorder = BagRecorder(tmp_path / "bag")
    node = VlaNode(cfg, policy, node_tr, LIMITS, recorder=recorder)
    drivers = Drivers(robot_tr, cfg.topics)
    instruction = episode[0][INSTRUCTION_KEY]
    robot_tr.create_publisher(cfg.topics.instruction, msgs.String, LATCHED).publish(
        msgs.String(data=instruction)
    )
    try:
        assert spin_until(node_tr, lambda: node._instruction == instruction, 5.0)
        for k, obs in enumerate(episode):
            seq = node._image_seq
            # sensor data is best effort: republish until the node holds all three of this frame
            assert spin_until(
                node_tr, lambda o=obs, n=seq: drivers.publish(o) or _received(node, o, n), 5.0
            ), f"frame {k} never arrived"
            assert node.step(), (k, node.hold_reason, dict(node.safety.counters))
            seen = policy.seen[-1]
            assert set(seen) == set(obs), k  # images/static, depth/static, state, instruction
            for key in obs:
                if key == STATE_KEY:
                    assert seen[key].dtype == np.float32 and seen[key].shape == obs[key].shape
                    np.testing.assert_allclose(seen[key], obs[key], rtol=0, atol=1e-6, err_msg=f"frame {k}")
                    mine, env_parts = unpack_state(seen[key]), unpack_state(obs[key])
                    assert mine.gripper_width == env_parts.gripper_width, k
                    np.testing.assert_array_equal(mine.joint_positions, env_parts.joint_positions)
                elif isinstance(obs[key], np.ndarray):
                    assert seen[key].dtype == obs[key].dtype, key
                    np.testing.assert_array_equal(seen[key], obs[key], err_msg=f"{key}, frame {k}")
                else:
                    assert seen[key] == obs[key], key
    finally:
        node.stop()
        recorder.close()
    assert len(policy.seen) == len(episode) and node.steps == len(episode)

    # The bag the node recorded imports to the same frames: the importer packs the state as the node does.
    store = tmp_path / "store.zarr"
    kin = Kinematics(LIMITS.urdf, LIMITS.joint_names, LIMITS.ee_link)
    try:
        assert import_rosbag(tmp_path / "bag", store, kin, camera=CAMERA) == [0]
    finally:
        kin.close()
    ep = EpisodeStore.open(store).episode(0)
    node_states = np.stack([s[STATE_KEY] for s in policy.seen])
    np.testing.assert_array_equal(ep[STATE_KEY], node_states)
    np.testing.assert_array_equal(ep[image_key(CAMERA)], np.stack([o[image_key(CAMERA)] for o in episode]))
    np.testing.assert_array_equal(ep[depth_key(CAMERA)], np.stack([o[depth_key(CAMERA)] for o in episode]))
