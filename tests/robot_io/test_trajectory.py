"""Issue 19, items 3 and 5: action chunks streamed as multi-point JointTrajectories (over loopback DDS, to a
robot that follows them), every point inside the safety limits under fuzzed chunks (hypothesis), the sim
robot executing the point due at each step with a new trajectory replacing the old, the dry run (commands
computed and reported in vla/status, nothing on the command topics), and the Franka FR3 parameter YAML."""

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.wrappers import ActionChunkQueue
from robot_io import convert, msgs
from robot_io.config import NodeConfig, StreamConfig, TopicNames
from robot_io.kinematics import Kinematics, urdf_joint_limits
from robot_io.node import VlaNode
from robot_io.safety import SafetyFilter, load_limits
from robot_io.trajectory import WORKSPACE_TOLERANCE, Plan, Stream, check_stream, plan_points
from robot_io.transport import LATCHED, RELIABLE, SENSOR_DATA, spin_until
from vla.core.policy import make_policy

LIMITS = load_limits("panda")
NAMES = list(LIMITS.joint_names)
WITH_FINGERS = NAMES + list(LIMITS.finger_joints)
HOME_Q = np.array([0.0, -0.25, 0.0, -2.3, 0.0, 2.05, 0.785])
EPS = 1e-9


class Chunks:
    """A chunk policy (the protocol of policies.wrappers): each call predicts `chunk_len` steps of `action`
    [7] (or, when `chunk` is set, returns that [T, D] as it is)."""

    chunk_len = 6

    def __init__(self, action=(0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)):
        self.action, self.chunk, self.calls, self.resets = np.asarray(action, np.float32), None, 0, 0

    def reset(self, seed=None):
        self.resets += 1

    def predict_chunk(self, obs):
        self.calls += 1
        return self.chunk if self.chunk is not None else np.tile(self.action, (self.chunk_len, 1))


def _seconds(d: msgs.Duration) -> float:
    return d.sec + 1e-9 * d.nanosec


class FollowingRobot:
    """The test side of the wire: publishes images and joint states; the joints follow the last trajectory
    received as a position-controlled arm would (the point being approached, reached when due)."""

    def __init__(self, tr):
        self.image = tr.create_publisher("camera/color/image_raw", msgs.Image, SENSOR_DATA)
        self.joints = tr.create_publisher("joint_states", msgs.JointState, SENSOR_DATA)
        self.enable = tr.create_publisher("vla/enable", msgs.Bool, LATCHED)
        self.traj: list[tuple[float, msgs.JointTrajectory]] = []
        self.q = HOME_Q.copy()
        tr.create_subscription("arm_controller/joint_trajectory", msgs.JointTrajectory, self._on, RELIABLE)

    def _on(self, m):
        self.traj.append((time.monotonic(), m))

    def tick(self):
        if self.traj:
            t0, m = self.traj[-1]
            due = [p for p in m.points if t0 + _seconds(p.time_from_start) <= time.monotonic()]
            if due:
                self.q = np.array(due[-1].positions)
        names, positions = WITH_FINGERS, np.r_[self.q, 0.04, 0.04]
        self.joints.publish(convert.joint_state_msg(names, positions, stamp=convert.now_time()))
        self.image.publish(convert.image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8", convert.now_time()))


def test_chunk_streams_as_multi_point_trajectories_over_dds(wire):
    """A chunk goes out as one JointTrajectory of stream.points points at (i+1)/rate s (header stamp 0), each
    within one joint step of the one before and moving the EE by the chunk's deltas; a new one every
    replan_every points (the policy asked through the chunk wrapper, never its select_action); a hold while
    points are left sends one point where the arm is, and nothing after it."""
    node_tr, test_tr = wire
    inner = Chunks()
    policy = ActionChunkQueue(inner, execute_steps=2)
    rate = 20.0
    cfg = NodeConfig(
        rate_hz=rate,
        instruction="pick",
        enabled=True,
        allow_unauthenticated_enable=True,
        stream=StreamConfig(points=4, replan_every=2),
    )
    node = VlaNode(cfg, policy, node_tr, LIMITS)
    robot = FollowingRobot(test_tr)
    kin = Kinematics(LIMITS.urdf, NAMES, LIMITS.ee_link)
    node.start()
    try:
        assert spin_until(test_tr, lambda: robot.tick() or len(robot.traj) >= 6, 15.0), dict(
            node.safety.counters
        )
        robot.enable.publish(msgs.Bool(data=False))  # a hold with points left: the arm stops where it is
        assert spin_until(test_tr, lambda: robot.tick() or len(robot.traj[-1][1].points) == 1, 5.0)
        n_stopped = len(robot.traj)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            robot.tick()
            test_tr.spin_once(0.02)
    finally:
        node.stop()
    streamed = [m for _, m in robot.traj if len(m.points) > 1]
    assert len(streamed) >= 5 and inner.calls >= len(streamed) and policy.inferences == 0
    max_step = node.safety.max_step
    for m in streamed:
        assert m.joint_names == NAMES and len(m.points) == 4
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (0, 0)  # "start now"
        tfs = [_seconds(p.time_from_start) for p in m.points]
        assert np.allclose(tfs, [(i + 1) / rate for i in range(4)], atol=1e-8) and np.all(np.diff(tfs) > 0)
        q = np.array([p.positions for p in m.points])  # [4, 7]
        assert np.all(np.abs(np.diff(q, axis=0)) <= max_step + EPS)
        assert np.all(q >= node.safety.lower - EPS) and np.all(q <= node.safety.upper + EPS)
        x = np.array([kin.forward(p)[0][0] for p in q])
        assert np.allclose(np.diff(x), 0.01, atol=3e-3), x  # the chunk's +1 cm per step, integrated
    gaps = np.diff([t for t, m in robot.traj if len(m.points) > 1])
    assert 0.05 <= float(np.median(gaps)) <= 0.3, gaps  # re-planned every 2 points of 50 ms
    stop = robot.traj[n_stopped - 1][1]
    assert len(stop.points) == 1 and len(robot.traj) == n_stopped  # one point, then nothing
    last = np.array([p.positions for p in streamed[-1].points])
    # the stop point is where the arm was commanded: between two points of the last trajectory
    assert any(np.all(np.abs(p - np.array(stop.points[0].positions)) <= max_step + EPS) for p in last)
    assert node.hold_reason == "hold_disabled"
    kin.close()


# ------------------------------------------------------------------ every point inside the limits (fuzzed)
def _filter() -> SafetyFilter:
    lo, hi, vel = urdf_joint_limits(LIMITS.urdf, NAMES)
    return SafetyFilter(LIMITS, lo, hi, vel)


value = st.one_of(
    st.floats(-0.2, 0.2),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, float("nan"), 1e300]),
)
chunks = st.lists(st.lists(value, min_size=7, max_size=7), min_size=1, max_size=6).map(np.array)


@pytest.fixture(scope="module")
def kin():
    k = Kinematics(LIMITS.urdf, NAMES, LIMITS.ee_link)
    yield k
    k.close()


def test_every_planned_point_stays_inside_the_limits_under_fuzzed_chunks(kin):
    """plan_points on fuzzed chunks (finite, huge, NaN), from arms anywhere inside the joint limits and
    command references up to two steps off: every point within the position limits, one step from the one
    before (the first from the measured and the commanded joints), its EE inside the workspace box where the
    arm started inside; a NaN row truncates the trajectory there (the first: hold), counted."""

    @settings(max_examples=150, deadline=None)
    @given(
        chunk=chunks,
        frac=st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).map(np.array),
        off=st.lists(st.floats(-2.0, 2.0), min_size=7, max_size=7).map(np.array),
        commanded=st.booleans(),
        mode=st.sampled_from(["measured", "commanded"]),
    )
    def fuzz(chunk, frac, off, commanded, mode):
        f = _filter()
        q = f.lower + frac * (f.upper - f.lower)  # a measured arm inside the limits
        if commanded:
            f.commit(np.clip(q + off * f.max_step, f.lower, f.upper))
        ref = f.q_commanded
        plan, reason = plan_points(chunk, q, kin, f, ee_target=mode)
        bad = [i for i, row in enumerate(chunk) if not np.all(np.isfinite(row[:7]))]
        if plan is None:
            assert reason is not None
            if bad and bad[0] == 0:
                assert f.counters["nonfinite_or_malformed_action"] >= 1
            return
        n = plan.q.shape[0]
        assert 1 <= n <= len(chunk) and plan.deltas.shape == (n, 6) and plan.grippers.shape == (n,)
        if bad:
            assert n <= bad[0] and f.counters["stream_truncated"] == 1
        if n < len(chunk):
            assert plan.stop is not None and f.counters["stream_truncated"] == 1
        assert np.all(np.isfinite(plan.q))
        assert np.all(plan.q >= f.lower - EPS) and np.all(plan.q <= f.upper + EPS)
        assert np.all(np.abs(plan.q[0] - q) <= f.max_step + EPS)
        if ref is not None:
            assert np.all(np.abs(plan.q[0] - ref) <= f.max_step + EPS)
        assert np.all(np.abs(np.diff(plan.q, axis=0)) <= f.max_step + EPS)
        assert np.all(np.linalg.norm(plan.deltas[:, :3], axis=1) <= LIMITS.max_translation + EPS)
        assert np.all(np.linalg.norm(plan.deltas[:, 3:], axis=1) <= LIMITS.max_rotation + EPS)
        assert set(plan.grippers.tolist()) <= {0.0, 1.0}
        start = kin.forward(q)[0]
        if np.all(start >= f.ws_low) and np.all(start <= f.ws_high):
            for p in plan.q:
                ee = kin.forward(p)[0]
                assert np.all(ee >= f.ws_low - WORKSPACE_TOLERANCE - EPS), ee
                assert np.all(ee <= f.ws_high + WORKSPACE_TOLERANCE + EPS), ee

    fuzz()


def test_every_published_point_is_safe_through_the_node(wire, capture):
    """The node streaming fuzzed chunks (4 points, re-planned every 2) to an arm that follows them: every
    JointTrajectory it publishes has strictly increasing time_from_start, every point inside the limits and
    within one joint step of the point before it, the first within one step of the measured joints and of
    where the arm was commanded; the gripper command is binary."""
    node_tr, _ = wire
    policy = Chunks()
    cap = capture()
    now = [100.0]
    cfg = NodeConfig(
        rate_hz=10.0, instruction="pick", enabled=True, stream=StreamConfig(points=4, replan_every=2)
    )
    node = VlaNode(cfg, policy, node_tr, LIMITS, recorder=cap, clock=lambda: now[0])
    f = node.safety
    state = {"q": HOME_Q.copy(), "trajectories": 0}

    def joints(q):
        node.on_joint_states(convert.joint_state_msg(WITH_FINGERS, np.r_[q, 0.04, 0.04]))

    @settings(max_examples=80, deadline=None)
    @given(chunk=chunks, ticks=st.integers(1, 3))
    def fuzz(chunk, ticks):
        policy.chunk = chunk
        for _ in range(ticks):
            now[0] += 0.1
            if node.commander.stream is not None:  # the arm follows: it is where it is commanded
                state["q"] = node.commander.stream.reference(now[0])
            joints(state["q"])
            joints(state["q"])
            node.on_image(convert.image_to_msg(np.zeros((4, 4, 3), np.uint8), "rgb8", convert.now_time()))
            stream = node.commander.stream  # where the arm is commanded now: the caps' reference
            ref = stream.reference(now[0]) if stream is not None else f.q_commanded
            cap.sent.clear()
            node.step()
            traj = [m for m in cap.sent if isinstance(m, msgs.JointTrajectory)]
            if not traj:
                continue
            (m,) = traj
            q = np.array([p.positions for p in m.points])
            tfs = [_seconds(p.time_from_start) for p in m.points]
            assert np.all(np.diff(tfs) > 0) and tfs[0] > 0
            assert np.all(np.isfinite(q)) and np.all(q >= f.lower - EPS) and np.all(q <= f.upper + EPS)
            assert np.all(np.abs(q[0] - state["q"]) <= f.max_step + EPS)
            if ref is not None:
                assert np.all(np.abs(q[0] - ref) <= f.max_step + EPS)
            assert np.all(np.abs(np.diff(q, axis=0)) <= f.max_step + EPS)
            assert all(g.data in (0.0, 1.0) for g in cap.sent if isinstance(g, msgs.Float64))
            state["trajectories"] += 1

    try:
        fuzz()
    finally:
        node.kin.close()
    assert state["trajectories"] > 10  # the assertions ran on published trajectories, not only on holds
    assert f.counters["stream_truncated"] > 0 and f.counters["skip_stream_executing"] > 0


def test_stream_reference_heading_and_gripper_due():
    """A sent trajectory as the node tracks it: the joints commanded at each moment (linear between points,
    from where the arm was commanded when it was sent), the point being approached, and the gripper value
    sent when the point being approached changes it."""
    q = np.array([[1.0] * 7, [2.0] * 7, [3.0] * 7])

    plan = Plan(q, np.zeros((3, 6)), np.array([1.0, 0.0, 0.0]), [(np.zeros(3), np.r_[0, 0, 0, 1.0])] * 3, 3)
    s = Stream(t0=10.0, dt=0.1, start=np.zeros(7), plan=plan)
    assert np.allclose(s.reference(10.0), 0.0) and np.allclose(s.reference(10.05), 0.5)
    assert np.allclose(s.reference(10.15), 1.5) and np.allclose(s.reference(11.0), 3.0)
    assert [s.heading(t) for t in (10.0, 10.09, 10.1, 10.25, 12.0)] == [0, 0, 1, 2, 2]
    assert s.pose_reached(10.05) is None and s.left(10.29) and not s.left(10.31)
    with pytest.raises(ValueError, match="stream.replan_every must be in \\[1, stream.points=2\\]"):
        check_stream(StreamConfig(points=2, replan_every=3))
    with pytest.raises(ValueError, match="needs a policy that predicts action chunks"):
        check_stream(StreamConfig(points=2), make_policy("constant"))
    with pytest.raises(ValueError, match="exceeds the policy's chunk length 6"):
        check_stream(StreamConfig(points=7), Chunks())


def test_gripper_of_the_point_being_approached_is_sent_between_replans(wire, capture):
    """Between re-plans the node sends only the gripper value of the point the arm is heading to, when it
    changes (a chunk that closes the gripper at its third step closes it then, not at the next plan)."""
    node_tr, _ = wire
    policy = Chunks()
    policy.chunk = np.array([[0, 0, 0, 0, 0, 0, 1.0]] * 2 + [[0, 0, 0, 0, 0, 0, 0.0]] * 4)
    cap, now = capture(), [50.0]
    cfg = NodeConfig(
        rate_hz=10.0, instruction="pick", enabled=True, stream=StreamConfig(points=4, replan_every=4)
    )
    node = VlaNode(cfg, policy, node_tr, LIMITS, recorder=cap, clock=lambda: now[0])
    try:
        sent = []
        for k in range(4):
            for _ in range(2):
                node.on_joint_states(convert.joint_state_msg(WITH_FINGERS, np.r_[HOME_Q, 0.04, 0.04]))
            if k == 0:  # later ticks have no new camera frame: the gripper still follows the trajectory
                node.on_image(convert.image_to_msg(np.zeros((4, 4, 3), np.uint8), "rgb8", convert.now_time()))
            cap.sent.clear()
            node.step()
            sent.append(
                [type(m).__name__ + (f"={m.data}" if isinstance(m, msgs.Float64) else "") for m in cap.sent]
            )
            now[0] += 0.1
    finally:
        node.kin.close()
    assert sent[0] == ["TwistStamped", "JointTrajectory", "Float64=1.0"]  # the plan, heading to point 0
    assert sent[1] == []  # heading to point 1: still open
    assert sent[2] == ["Float64=0.0"]  # heading to point 2: closed
    assert sent[3] == [] and policy.calls == 1 and node.safety.counters["skip_no_new_image"] == 3


# ------------------------------------------------------------------ the sim robot executes the points
def test_sim_robot_executes_points_in_order_and_a_new_trajectory_replaces_the_old(domain):
    from robot_io.config import SimRobotConfig
    from robot_io.dds import DdsTransport
    from robot_io.sim_robot import ARM_JOINTS, SimRobot
    from sim.config import EnvConfig, TaskConfig
    from vla.core.state import unpack_state

    now = [0.0]
    cfg = SimRobotConfig(env=EnvConfig(image_size=16), task=TaskConfig(name="pick", max_episode_steps=10))
    with DdsTransport(domain_id=domain) as tr:
        robot = SimRobot(cfg, tr, clock=lambda: now[0])
        try:
            obs, _ = robot.env.reset(seed=0)
            q0 = unpack_state(obs["state"]).joint_positions

            def traj(points, dt=0.1):
                return msgs.JointTrajectory(
                    joint_names=list(ARM_JOINTS),
                    points=[
                        msgs.JointTrajectoryPoint(
                            positions=list(p), time_from_start=convert.duration_from_seconds((i + 1) * dt)
                        )
                        for i, p in enumerate(points)
                    ],
                )

            step = np.zeros(7)
            step[0] = 0.08
            points = [q0 + (i + 1) * step for i in range(3)]
            robot.on_trajectory(traj(points))  # received at t = 0
            reached = []
            for t, want in ((0.01, 0), (0.11, 1), (0.21, 2), (0.35, 2)):
                now[0] = t
                target = robot.target_at(now[0])
                assert np.array_equal(target, points[want]), (t, want)
                obs, *_ = robot.env.step(np.r_[target, 1.0].astype(np.float32))
                reached.append(unpack_state(obs["state"]).joint_positions[0])
            assert reached[0] < reached[1] < reached[2]  # executed in order: joint 1 moves on each step
            assert abs(reached[2] - points[2][0]) < abs(reached[0] - points[2][0])
            # a new trajectory (at t = 0.15) replaces the rest of the old one from its own receipt time
            now[0] = 0.15
            new = [q0 - step, q0 - 2 * step]
            robot.on_trajectory(traj(new))
            assert [robot.target_at(t).tolist() for t in (0.16, 0.26, 0.9)] == [
                new[0].tolist(),
                new[1].tolist(),
                new[1].tolist(),
            ]
            # a trajectory whose time_from_start does not increase is refused (as the controller does)
            before = robot.malformed
            robot.on_trajectory(traj([q0, q0], dt=0.0))
            assert robot.malformed == before + 1 and robot.commands == 2
        finally:
            robot.close()


# ------------------------------------------------------------------ dry run
def test_dry_run_computes_commands_and_publishes_only_diagnostics(wire):
    """dry_run=true over loopback DDS: the node subscribes and runs the policy (a chunk, streamed), checks
    every command, and reports them in vla/status (count, the last one), while nothing arrives on the joint
    trajectory, EE delta or gripper topics."""
    node_tr, test_tr = wire
    inner = Chunks(action=(0.05, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0))  # beyond the caps: clipped as if sent
    cfg = NodeConfig(
        rate_hz=20.0,
        instruction="pick",
        enabled=True,
        dry_run=True,
        stream=StreamConfig(points=3, replan_every=1),
    )
    node = VlaNode(cfg, ActionChunkQueue(inner, execute_steps=3), node_tr, LIMITS)
    got: dict[str, list] = {"traj": [], "twist": [], "grip": [], "status": []}
    test_tr.create_subscription("arm_controller/joint_trajectory", msgs.JointTrajectory, got["traj"].append)
    test_tr.create_subscription("vla/ee_delta", msgs.TwistStamped, got["twist"].append)
    test_tr.create_subscription("gripper_controller/command", msgs.Float64, got["grip"].append)
    test_tr.create_subscription("vla/status", msgs.DiagnosticArray, got["status"].append)
    robot = FollowingRobot(test_tr)
    node.start()
    try:
        assert spin_until(test_tr, lambda: robot.tick() or node.steps >= 8, 10.0), dict(node.safety.counters)
        assert spin_until(test_tr, lambda: robot.tick() or len(got["status"]) >= 3, 5.0)
        time.sleep(0.3)
        test_tr.spin_once(0.1)
    finally:
        node.stop()
    assert got["traj"] == [] and got["twist"] == [] and got["grip"] == [] and robot.traj == []
    values = {kv.key: kv.value for kv in got["status"][-1].status[0].values}
    assert values["dry_run"] == "true" and int(values["dry_run_commands"]) >= 8
    assert values["state"] == "dry_run"
    last = json.loads(values["dry_run_last"])
    assert last["points"] == 3 and last["time_from_start_s"] == [0.05, 0.1, 0.15]
    assert np.isclose(np.linalg.norm(last["ee_delta"][:3]), LIMITS.max_translation)  # safety applied
    assert np.all(np.abs(np.array(last["q_first"]) - HOME_Q) <= node.safety.max_step + 1e-4)
    assert int(values["translation_clipped"]) > 0 and inner.calls >= 8
    summary = node.summary()
    assert summary["dry_run"] is True and summary["commands"] >= 8 and summary["last_command"]["points"] == 3


# ------------------------------------------------------------------ the Franka FR3 parameter YAML
def test_franka_fr3_yaml_names_every_topic_and_limit_and_runs_a_dry_run(wire, domain, tmp_path, capsys):
    """configs/ros2_run_fr3.yaml composes through the NodeConfig schema (with configs/robot/fr3.yaml); every
    topic is set (absolute), every camera has image, depth and CameraInfo topics, every limit is set and
    agrees with the FR3 URDF it names; the node built from it (dry run) reads FR3 joint states, its gripper
    width from the fr3 fingers, and computes commands."""
    from vla import cli
    from vla.commands.ros2 import check_robot, run_config
    from vla.core.config import ConfigError, compose, to_dataclass

    cli.register_all_schemas()
    name, rest = run_config(["config=ros2_run_fr3", "dry_run=true"])
    assert name == "ros2_run_fr3" and rest == ["dry_run=true"]
    with pytest.raises(ConfigError, match="expected one of"):
        run_config(["config=ros2_run_nope"])
    cfg = to_dataclass(compose(name, rest), NodeConfig)
    assert cfg.dry_run and not cfg.enabled and cfg.policy == "vla" and cfg.rate_hz == cfg.robot.control_hz
    for key in TopicNames.__dataclass_fields__:
        topic = getattr(cfg.topics, key)
        assert topic.startswith("/") and msgs.dds_topic_name(topic), key
    assert cfg.topics.joint_trajectory == "/fr3_arm_controller/joint_trajectory"
    assert cfg.topics.joint_states == "/joint_states"
    assert set(cfg.cameras) == set(cfg.depth_topics) == set(cfg.camera_info_topics) == {"static", "wrist"}
    for group in (cfg.cameras, cfg.depth_topics, cfg.camera_info_topics):
        assert all(t.startswith("/cameras/") for t in group.values())
    assert cfg.stream.point_hz == cfg.robot.control_hz and cfg.stream.points == 1
    r = cfg.robot
    assert r.name == "fr3" and r.joint_names == [f"fr3_joint{i}" for i in range(1, 8)]
    assert r.finger_joints == ["fr3_finger_joint1", "fr3_finger_joint2"] and r.ee_link == "fr3_hand_tcp"
    for key in r.__dataclass_fields__:
        assert getattr(r, key) is not None, key
    r.validate()
    check_robot(r)  # the URDF exists, is a URDF, has the joints (with limits) and the EE link
    lower, upper, velocity = urdf_joint_limits(r.urdf, r.joint_names)
    assert np.allclose(r.joint_lower, lower) and np.allclose(r.joint_upper, upper)
    assert np.allclose(r.joint_velocity, velocity)

    node_tr, test_tr = wire
    cfg.enabled, cfg.instruction = True, "pick up the cube"
    node = VlaNode(cfg, make_policy("constant", action=[0.0, 0.0, -0.02, 0, 0, 0, 1.0]), node_tr, r)
    pubs = {c: test_tr.create_publisher(t, msgs.Image, SENSOR_DATA) for c, t in cfg.cameras.items()}
    joints = test_tr.create_publisher("/joint_states", msgs.JointState, SENSOR_DATA)
    traj: list = []
    test_tr.create_subscription(cfg.topics.joint_trajectory, msgs.JointTrajectory, traj.append)
    names = r.joint_names + r.finger_joints
    q = np.array([0.0, -0.4, 0.0, -2.2, 0.0, 1.9, 0.785])

    def tick():
        stamp = convert.now_time()
        joints.publish(convert.joint_state_msg(names, np.r_[q, 0.03, 0.03], stamp=stamp))
        for p in pubs.values():
            p.publish(convert.image_to_msg(np.zeros((8, 8, 3), np.uint8), "rgb8", stamp))

    node.start()
    try:
        assert spin_until(test_tr, lambda: tick() or node.steps >= 3, 10.0), dict(node.safety.counters)
    finally:
        node.stop()
    assert traj == [] and node.safety.counters["hold_no_gripper_width"] == 0
    last = node.commander.last
    assert last["points"] == 1 and last["time_from_start_s"] == [0.1]
    assert np.isclose(last["ee_delta"][2], -r.max_translation)  # the FR3's 1 cm cap

    # the command line: `vla ros2 run config=ros2_run_fr3 dry_run=true` runs; stream.* it cannot serve
    # (a policy without chunks) is one line, exit 2
    summary = tmp_path / "summary.json"
    argv = ["ros2", "run", "config=ros2_run_fr3", "policy=constant", f"domain_id={domain}", "duration_s=0.3"]
    assert cli.main([*argv, "dry_run=true", f"summary={summary}"]) == 0
    assert json.loads(summary.read_text())["dry_run"] is True
    assert "none published (dry run)" in capsys.readouterr().out
    assert cli.main([*argv, "stream.points=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stream.points=3 needs a policy that predicts action chunks" in err[0], err
    assert cli.main(["ros2", "run", "stream.points=2", "stream.replan_every=3"]) == 2
    assert "stream.replan_every must be in [1, stream.points=2]" in capsys.readouterr().err


# ------------------------------------------------------------------ a real chunk checkpoint, streamed
@pytest.fixture(scope="module")
def chunk_run(tmp_path_factory):
    """A real one-camera checkpoint with a continuous head predicting 4-step chunks (2 expert episodes at
    16 px, 3 training steps)."""
    import torch

    from vla import cli

    root = tmp_path_factory.mktemp("chunk_ckpt")
    store, out = root / "pick.zarr", root / "run"
    collect = [
        "collect",
        "task=pick",
        "episodes=2",
        "env.image_size=16",
        "env.cameras=[static]",
        "env.depth=false",
    ]
    assert cli.main([*collect, f"out={store}"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli.main(
            [
                "train", str(store), f"out={out}", "model=tiny_vla_film", "action_head=l1", "use_state=false",
                "cameras=[static]", "chunk_len=4", "val_episodes=1", "model.vision.image_size=16",
                "trainer.steps=3", "trainer.batch_size=4", "trainer.progress=false", "procs=1",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


def test_a_vla_checkpoints_chunk_streams_as_one_trajectory(chunk_run, wire, capture):
    """`policy=vla` (a VLAPolicy behind the registry's ActionChunkQueue): with stream.points=4 the node asks
    the VLA for its chunk [4, 7] and publishes it as one 4-point trajectory, every point safety-checked."""
    node_tr, _ = wire
    policy = make_policy("vla", checkpoint=str(chunk_run))
    assert policy.policy.chunk_len == 4
    with pytest.raises(ValueError, match="exceeds the policy's chunk length 4"):
        check_stream(StreamConfig(points=5), policy)
    cap, now = capture(), [10.0]
    cfg = NodeConfig(
        instruction="pick up the cube",
        enabled=True,
        policy_timeout_s=10.0,  # a loaded CPU: the deadline is not what is tested here
        stream=StreamConfig(points=4, replan_every=4),
    )
    node = VlaNode(cfg, policy, node_tr, LIMITS, recorder=cap, clock=lambda: now[0])
    try:
        for _ in range(2):
            node.on_joint_states(convert.joint_state_msg(WITH_FINGERS, np.r_[HOME_Q, 0.04, 0.04]))
        node.on_image(convert.image_to_msg(np.zeros((16, 16, 3), np.uint8), "rgb8", convert.now_time()))
        assert node.step(), dict(node.safety.counters)
    finally:
        node.kin.close()
    (traj,) = [m for m in cap.sent if isinstance(m, msgs.JointTrajectory)]
    q = np.array([p.positions for p in traj.points])
    assert q.shape == (4, 7) and [_seconds(p.time_from_start) for p in traj.points] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4]
    )
    assert np.all(np.abs(q[0] - HOME_Q) <= node.safety.max_step + EPS)
    assert np.all(np.abs(np.diff(q, axis=0)) <= node.safety.max_step + EPS)
    assert policy.policy.stats["actions"] == 4 and policy.inferences == 0  # one chunk, not the queue
