"""TabletopEnv contract: spaces, observation keys/dtypes, info, determinism, bad input, gymnasium checks."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.env import SWAP_INSTRUCTION, TabletopEnv
from sim.tasks import swapped_layout
from vla.core.state import pack_state, unpack_state
from vla.core.types import STATE_DIM

SMALL = dict(cameras=("static",), image_size=32, depth=False)


@pytest.fixture(scope="module")
def pick_env():
    env = TabletopEnv(task="pick", cameras=("static", "wrist"), image_size=48, depth=True, segmentation=True)
    yield env
    env.close()


def test_registered_id_and_observation_layout(pick_env):
    assert sim.ENV_ID in gym.registry
    obs, info = pick_env.reset(seed=5)
    for cam in ("static", "wrist"):
        assert obs[f"images/{cam}"].shape == (48, 48, 3) and obs[f"images/{cam}"].dtype == np.uint8
        assert obs[f"depth/{cam}"].shape == (48, 48) and obs[f"depth/{cam}"].dtype == np.float32
        assert obs[f"seg/{cam}"].dtype == np.int32
        assert np.all(obs[f"depth/{cam}"] > 0)
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert isinstance(obs["instruction"], str) and obs["instruction"] == info["instruction"]
    assert pick_env.observation_space.contains(obs)
    assert info["task"] == "pick" and info["seed"] == 5 and info["split"] == "train"
    assert info["is_success"] is False
    priv = info["privileged"]
    names = priv["object_names"]
    assert names[priv["target_index"]] in info["instruction"]
    assert np.asarray(priv["object_poses"]).shape == (len(names), 7)
    # segmentation sees the target object from the static camera
    assert priv["object_ids"][priv["target_index"]] in np.unique(obs["seg/static"])


def test_state_matches_ee_pose(pick_env):
    obs, info = pick_env.reset(seed=1)
    priv, parts = info["privileged"], unpack_state(obs["state"])
    np.testing.assert_allclose(parts.ee_position, priv["ee_position"], atol=1e-5)
    np.testing.assert_allclose(parts.ee_orientation, priv["ee_quaternion"], atol=1e-6)
    assert parts.gripper_width == np.float32(priv["gripper_width"])
    assert 0.07 < parts.gripper_width <= 0.081  # gripper starts open (two 4 cm fingers)
    robot = pick_env.robot  # the env's state is the one packing of vla.core.state
    pos, quat = robot.ee_pose()
    expected = pack_state(
        ee_position=pos,
        ee_orientation=quat,
        gripper_width=robot.gripper_width(),
        joint_positions=robot.joint_positions(),
    )
    np.testing.assert_array_equal(obs["state"], expected)


def test_ee_delta_moves_the_hand(pick_env):
    obs, _ = pick_env.reset(seed=2)
    z0 = unpack_state(obs["state"]).ee_position[2]
    for _ in range(3):
        obs, *_ = pick_env.step(np.array([0.02, 0, -0.03, 0, 0, 0, 1], np.float32))
    assert unpack_state(obs["state"]).ee_position[2] < z0 - 0.06
    obs, *_ = pick_env.step(np.array([0, 0, 0, 0, 0, 0, 0], np.float32))
    obs, *_ = pick_env.step(np.array([0, 0, 0, 0, 0, 0, 0], np.float32))
    assert unpack_state(obs["state"]).gripper_width < 0.01  # gripper closed on nothing


def test_determinism_per_seed():
    a, b = TabletopEnv(task="pick", **SMALL), TabletopEnv(task="pick", **SMALL)
    try:
        b.reset(seed=3)  # b is reused (robot kept, objects rebuilt): it must not remember episode 3
        b.step(np.array([0.03, 0.02, -0.05, 0, 0, 0.2, 0], np.float32))
        oa, ia = a.reset(seed=11)
        ob, ib = b.reset(seed=11)
        assert ia["privileged"]["object_ids"] == ib["privileged"]["object_ids"]
        act = np.array([0.01, -0.02, -0.02, 0, 0, 0.1, 0.5], np.float32)
        for _ in range(4):
            oa, *_ = a.step(act)
            ob, *_ = b.step(act)
        np.testing.assert_array_equal(oa["images/static"], ob["images/static"])
        np.testing.assert_array_equal(oa["state"], ob["state"])
        assert ia["instruction"] == ib["instruction"]
        o2, _ = a.reset(seed=12)
        assert not np.array_equal(o2["images/static"], oa["images/static"])
    finally:
        a.close()
        b.close()


def test_action_noise_perturbs_the_executed_action_only():
    """DART data: the env adds seeded noise to what it executes; the caller's action is untouched, so a
    recorder stores the commanded action; the same seed gives the same perturbation."""
    act = np.array([0.01, 0.0, -0.02, 0, 0, 0, 1], np.float32)
    ends = []
    for noise, seed in ((0.0, 5), (0.01, 5), (0.01, 5), (0.01, 6)):
        env = TabletopEnv(task="pick", cameras=(), depth=False, action_noise=noise)
        env.reset(seed=seed)
        for _ in range(3):
            before = act.copy()
            obs, *_ = env.step(act)
            np.testing.assert_array_equal(act, before)
        ends.append(unpack_state(obs["state"]).ee_position)
        env.close()
    clean, noisy, again, other = ends
    assert 0.003 < np.linalg.norm(noisy - clean) < 0.08
    np.testing.assert_allclose(noisy, again, atol=1e-6)
    assert np.linalg.norm(other - noisy) > 1e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(task="juggle"), "unknown task"),
        (dict(split="test"), "unknown split"),
        (dict(cameras=("static", "ceiling")), "unknown camera"),
        (dict(action_space="torque"), "unknown action space"),
        (dict(renderer="vulkan"), "unknown renderer"),
        (dict(action_noise=-0.01), "action_noise"),
        (dict(action_noise=float("nan")), "action_noise"),
        (dict(action_noise=0.01, action_space="joint_pos"), "ee_delta"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TabletopEnv(**{**SMALL, **kwargs})


def test_bad_actions_are_clear_errors(pick_env):
    pick_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected shape \(7,\)"):
        pick_env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="finite"):
        pick_env.step(np.array([np.nan, 0, 0, 0, 0, 0, 1], np.float32))


def test_timeout_truncates():
    env = gym.make("vla/Tabletop-v0", task="pick", max_episode_steps=3, **SMALL)
    env.reset(seed=0)
    flags = [env.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))[3] for _ in range(3)]
    assert flags == [False, False, True]
    env.close()


@pytest.mark.parametrize("task", ["pick", "place", "push", "stack"])
def test_gymnasium_check_env(task):
    env = TabletopEnv(task=task, render_mode="rgb_array", **SMALL)
    check_env(env)
    assert env.render().shape == (32, 32, 3)
    env.close()


def test_joint_position_action_space():
    env = TabletopEnv(task="pick", action_space="joint_pos", **SMALL)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (8,)
    q = unpack_state(obs["state"]).joint_positions
    q[0] += 0.3
    for _ in range(3):
        obs, *_ = env.step(np.append(q, 1.0).astype(np.float32))
    assert abs(unpack_state(obs["state"]).joint_positions[0] - q[0]) < 0.02
    with pytest.raises(ValueError, match=r"expected shape \(8,\)"):
        env.step(np.zeros(7, np.float32))
    env.close()


def test_physics_blowup_ends_episode_with_error():
    import pybullet as p

    env = TabletopEnv(task="pick", **SMALL)
    env.reset(seed=0)
    uid = env.object_ids[0]
    p.resetBasePositionAndOrientation(uid, (0.5, 0.0, -3.0), (0, 0, 0, 1), physicsClientId=env.client)
    obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))
    assert terminated and not info["is_success"] and "out of workspace" in info["error"]
    env.close()


def test_wrist_camera_at_224():
    env = TabletopEnv(task="stack", cameras=("wrist",), image_size=224, depth=True)
    obs, _ = env.reset(seed=0)
    assert obs["images/wrist"].shape == (224, 224, 3) and obs["depth/wrist"].shape == (224, 224)
    assert obs["images/wrist"].std() > 5  # not a blank frame
    env.close()


def test_egl_renderer_or_clear_fallback():
    """renderer="egl" loads the plugin before any body; where it cannot load, TinyRenderer renders."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = TabletopEnv(task="pick", cameras=("static",), image_size=32, depth=True, renderer="egl")
    assert env.renderer_name in ("egl", "tiny")
    if env.renderer_name == "tiny":
        assert any("EGL" in str(w.message) for w in caught)
    obs, _ = env.reset(seed=0)
    env.close()
    assert obs["images/static"].std() > 5  # the scene, not only the background
    assert 0.3 < float(np.median(obs["depth/static"])) < 2.0


def test_robot_visuals_options():
    """'simple' (default, collision meshes as visuals) and 'full' (textured meshes) render the same scene."""
    imgs = {}
    for vis in ("simple", "full"):
        env = TabletopEnv(task="pick", robot_visuals=vis, **SMALL)
        obs, info = env.reset(seed=0)
        imgs[vis] = obs["images/static"]
        env.close()
    assert not np.array_equal(imgs["simple"], imgs["full"])  # the arm looks different ...
    assert np.mean(np.all(imgs["simple"] == imgs["full"], axis=-1)) > 0.5  # ... the rest of the scene not
    with pytest.raises(ValueError, match="unknown robot_visuals"):
        TabletopEnv(task="pick", robot_visuals="shiny", **SMALL)


def test_resets_do_not_accumulate_bodies_or_shapes():
    import pybullet as p

    env = TabletopEnv(task="place", **SMALL)
    for seed in range(25):
        env.reset(seed=seed)
        n = len(env.object_ids) + len(env.fixture_ids)
        assert p.getNumBodies(physicsClientId=env.client) == 2 + n  # table + robot + this seed's bodies
    assert len(env._shapes) <= 20  # shapes are shared per (kind, colour), not made per episode
    env.close()


def test_swap_instruction_reset_option():
    env = TabletopEnv(task="place", split="heldout", cameras=(), depth=False)
    seed = 1_000_001
    original, new = swapped_layout("place", "heldout", seed)
    obs, info = env.reset(seed=seed)
    poses = np.asarray(info["privileged"]["object_poses"])
    assert "original_success" not in info and "original_instruction" not in info
    obs, info = env.reset(seed=seed, options={SWAP_INSTRUCTION: True})
    assert obs["instruction"] == info["instruction"] == new.instruction != original.instruction
    assert info["original_instruction"] == original.instruction and info["original_success"] is False
    assert info["privileged"]["goal_index"] == new.goal_index != original.goal_index
    np.testing.assert_allclose(np.asarray(info["privileged"]["object_poses"]), poses)  # the same scene
    obs, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32))
    assert obs["instruction"] == new.instruction and info["original_success"] is False
    _, info = env.reset(seed=seed, options={SWAP_INSTRUCTION: False})  # a plain episode again
    assert info["instruction"] == original.instruction and "original_success" not in info
    env.close()
    concepts = TabletopEnv(task="pick_concepts", cameras=(), depth=False)
    with pytest.raises(ValueError, match="pick_concepts.*no other target or goal"):
        concepts.reset(seed=0, options={SWAP_INSTRUCTION: True})
    concepts.close()


def test_colour_masks_name_each_pixels_palette_colour():
    """`colour_masks=True`: colours/<cam> uint8 [H,W] holds PALETTE index + 1 of the body each pixel
    shows (objects and fixtures), 0 elsewhere; the images are those of an env without it."""
    from sim.scene import PALETTE

    kw = dict(task="push", cameras=("static", "wrist"), image_size=48, depth=False)
    env = TabletopEnv(colour_masks=True, segmentation=True, **kw)
    plain = TabletopEnv(**kw)
    try:
        obs, info = env.reset(seed=4)
        ref, _ = plain.reset(seed=4)
        assert "colours/static" not in ref
        layout = env.layout
        bodies = {**dict(zip(env.object_ids, layout.objects)), **dict(zip(env.fixture_ids, layout.fixtures))}
        for cam in ("static", "wrist"):
            ids, seg = obs[f"colours/{cam}"], obs[f"seg/{cam}"]
            assert ids.shape == (48, 48) and ids.dtype == np.uint8
            np.testing.assert_array_equal(obs[f"images/{cam}"], ref[f"images/{cam}"])
            want = np.zeros_like(ids)
            for uid, spec in bodies.items():
                want[seg == uid] = PALETTE.index(spec.colour) + 1
            np.testing.assert_array_equal(ids, want)
        assert env.observation_space.contains(obs)
        # the named object and both markers are seen by the static camera, each in its own colour
        seen = set(np.unique(obs["colours/static"]).tolist())
        assert {
            PALETTE.index(layout.objects[0].colour) + 1,
            *(PALETTE.index(f.colour) + 1 for f in layout.fixtures),
        } <= seen
        # the next episode's bodies get the next layout's colours
        obs2, _ = env.reset(seed=5)
        first = env.layout.objects[0]
        assert PALETTE.index(first.colour) + 1 in np.unique(obs2["colours/static"])
    finally:
        env.close()
        plain.close()
