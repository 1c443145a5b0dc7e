"""The simulated robot in-process over loopback DDS: what it publishes (bgr8 + 16UC1 variants) decodes to
the env's observation, and it accepts good joint trajectories / gripper commands and drops bad ones."""

import numpy as np

from robot_io import convert, msgs
from robot_io.config import SimRobotConfig
from robot_io.dds import DdsTransport
from robot_io.node import decode_info
from robot_io.sim_robot import ARM_JOINTS, SimRobot
from robot_io.transport import RELIABLE, SENSOR_DATA, spin_until
from sim.config import EnvConfig, TaskConfig
from vla.core.state import unpack_state


def test_sim_robot_publishes_and_accepts_commands(domain):
    cfg = SimRobotConfig(
        env=EnvConfig(image_size=32),
        task=TaskConfig(name="pick", max_episode_steps=3),
        encoding="bgr8",
        depth_encoding="16UC1",
    )
    with DdsTransport(domain_id=domain) as robot_tr, DdsTransport(domain_id=domain) as tr:
        robot = SimRobot(cfg, robot_tr)
        try:
            got: dict[str, list] = {k: [] for k in ("image", "depth", "info", "joints", "sim")}
            tr.create_subscription("camera/color/image_raw", msgs.Image, got["image"].append, SENSOR_DATA)
            tr.create_subscription("camera/depth/image_raw", msgs.Image, got["depth"].append, SENSOR_DATA)
            tr.create_subscription(
                "camera/depth/camera_info", msgs.CameraInfo, got["info"].append, SENSOR_DATA
            )
            tr.create_subscription("joint_states", msgs.JointState, got["joints"].append, SENSOR_DATA)
            tr.create_subscription("sim/privileged_info", msgs.String, got["sim"].append, RELIABLE)
            obs, info = robot.env.reset(seed=0)
            robot.publish(obs, info, episode=0)
            # sensor data is best effort: republish until every topic has arrived once
            assert spin_until(tr, lambda: all(got.values()) or bool(robot.publish(obs, info, 0)), 5.0), got
            img = got["image"][-1]
            assert img.encoding == "bgr8" and np.array_equal(convert.msg_to_image(img), obs["images/static"])
            depth = convert.msg_to_image(got["depth"][-1])
            assert got["depth"][-1].encoding == "16UC1"
            assert np.allclose(depth, np.round(obs["depth/static"] * 1000) / 1000, atol=1e-3)
            assert np.allclose(
                convert.intrinsics_from_msg(got["info"][-1]), robot.env.camera_intrinsics("static")
            )
            q = convert.joint_positions(got["joints"][-1], ARM_JOINTS)
            parts = unpack_state(obs["state"])
            assert np.array_equal(q, parts.joint_positions)
            assert convert.gripper_width(got["joints"][-1]) == parts.gripper_width  # the fingers sum to it
            sim_info = decode_info(got["sim"][-1].data)
            assert sim_info["episode"] == 0 and "object_poses" in sim_info["privileged"]

            pub_traj = tr.create_publisher("arm_controller/joint_trajectory", msgs.JointTrajectory, RELIABLE)
            pub_grip = tr.create_publisher("gripper_controller/command", msgs.Float64, RELIABLE)
            target = q + 0.05
            point = msgs.JointTrajectoryPoint(positions=target[::-1].tolist())
            bad = [
                msgs.JointTrajectory(joint_names=list(ARM_JOINTS)),  # no points
                msgs.JointTrajectory(joint_names=["a"], points=[msgs.JointTrajectoryPoint(positions=[0.0])]),
                msgs.JointTrajectory(
                    joint_names=list(ARM_JOINTS), points=[msgs.JointTrajectoryPoint(positions=[np.nan] * 7)]
                ),
            ]
            assert spin_until(robot_tr, lambda: pub_traj.matched() > 0 and pub_grip.matched() > 0, 5.0)
            for m in bad:
                pub_traj.publish(m)
            pub_traj.publish(msgs.JointTrajectory(joint_names=list(ARM_JOINTS)[::-1], points=[point]))
            pub_grip.publish(msgs.Float64(data=float("nan")))
            pub_grip.publish(msgs.Float64(data=0.0))
            assert spin_until(robot_tr, lambda: robot.commands == 1 and robot.malformed == 4, 5.0)
            assert np.allclose(robot._target, target) and robot._gripper == 0.0
        finally:
            robot.close()


def test_sim_robot_clips_goals_beyond_the_joint_limits(domain):
    """A 1e300 joint goal (issue 21) used to overflow the env's float32 action and crash the sim robot; like a
    real controller it now never goes past the joint limits."""
    from sim.robot import LOWER, UPPER

    cfg = SimRobotConfig(env=EnvConfig(image_size=16), task=TaskConfig(name="pick", max_episode_steps=2))
    with DdsTransport(domain_id=domain) as robot_tr:
        robot = SimRobot(cfg, robot_tr)
        try:
            robot.env.reset(seed=0)
            goal = [1e300, -1e300, 0.0, -1.0, 0.0, 1e300, 0.0]
            robot.on_trajectory(
                msgs.JointTrajectory(
                    joint_names=list(ARM_JOINTS), points=[msgs.JointTrajectoryPoint(positions=goal)]
                )
            )
            assert robot.commands == 1 and robot.clipped == 1
            assert np.array_equal(robot._target, np.clip(goal, LOWER, UPPER))
            action = np.concatenate([robot._target, [robot._gripper]]).astype(
                np.float32
            )  # as run_episode does
            _, _, _, _, info = robot.env.step(action)
            assert "error" not in info
        finally:
            robot.close()


def test_sim_robot_publishes_every_camera_on_its_own_topics(domain):
    """Issue 19: every camera the env renders goes out on camera/<name>/image_raw (+ depth, camera_info),
    a remapped one on its configured topic, all of one tick with one stamp, each equal to the env's."""
    cfg = SimRobotConfig(
        env=EnvConfig(image_size=24, cameras=["static", "wrist"]),
        task=TaskConfig(name="pick", max_episode_steps=2),
        cameras={"wrist": "arm/hand_camera/image_raw"},
        camera="",  # no single-camera layout topics
    )
    with DdsTransport(domain_id=domain) as robot_tr, DdsTransport(domain_id=domain) as tr:
        robot = SimRobot(cfg, robot_tr)
        try:
            topics = {
                ("image", "static"): "camera/static/image_raw",
                ("image", "wrist"): "arm/hand_camera/image_raw",
                ("depth", "static"): "camera/static/depth/image_raw",
                ("depth", "wrist"): "camera/wrist/depth/image_raw",
                ("info", "wrist"): "camera/wrist/camera_info",
            }
            got: dict = {k: [] for k in topics}
            for (kind, cam), topic in topics.items():
                typ = msgs.CameraInfo if kind == "info" else msgs.Image
                tr.create_subscription(topic, typ, got[(kind, cam)].append, SENSOR_DATA)
            legacy: list = []
            tr.create_subscription("camera/color/image_raw", msgs.Image, legacy.append, SENSOR_DATA)
            obs, info = robot.env.reset(seed=3)
            assert spin_until(tr, lambda: all(got.values()) or bool(robot.publish(obs, info, 0)), 5.0), got
            for cam in ("static", "wrist"):
                img = got[("image", cam)][-1]
                assert np.array_equal(convert.msg_to_image(img), obs[f"images/{cam}"]), cam
                assert np.allclose(convert.msg_to_image(got[("depth", cam)][-1]), obs[f"depth/{cam}"])
            stamps = [{convert.seconds_from_time(m.header.stamp) for m in ms} for ms in got.values()]
            assert set.intersection(*stamps)  # one tick, one stamp: the node's time matching sees no skew
            assert np.allclose(
                convert.intrinsics_from_msg(got[("info", "wrist")][-1]), robot.env.camera_intrinsics("wrist")
            )
            assert legacy == []  # camera="" publishes no single-camera layout
            assert not np.array_equal(obs["images/static"], obs["images/wrist"])
        finally:
            robot.close()
