"""Point clouds in the episode store: the final-scene goal cloud once per episode (beside the store),
per-frame clouds on request, real expert rollouts; stores of the previous per-frame goal layout still read."""

import numpy as np
import pytest

from sim.env import TabletopEnv
from sim.experts import make_expert
from vla.data.recorder import EpisodeRecorder, features_from_spaces
from vla.data.store import EpisodeStore
from vla.core.rollout import run_episode
from vla.pointcloud import PointCloudConfig, PointCloudPipeline, frames_from_env
from vla.pointcloud.episode_clouds import EpisodeClouds, clouds_file
from vla.pointcloud.goals import GoalCapture
from vla.pointcloud.recording import (
    COLORS_KEY,
    GOAL_COLORS_KEY,
    GOAL_POINTS_KEY,
    POINTS_KEY,
    PointCloudRecorder,
    fixed_cameras,
    live_cameras,
    pointcloud_features,
    read_goal_cloud,
)
from vla.core.types import FeatureType


@pytest.fixture(scope="module")
def pick_env():
    env = TabletopEnv(task="pick", cameras=("static", "wrist"), image_size=64)
    yield env
    env.close()


def _store(path, env, n, per_frame):
    feats = {
        **features_from_spaces(env.observation_space, env.action_space),
        **pointcloud_features(n, per_frame),
    }
    return EpisodeStore.create(path, feats, fps=10)


def test_goal_cloud_is_the_final_scene(tmp_path, pick_env):
    pipe = PointCloudPipeline(PointCloudConfig(num_points=128))
    store = _store(tmp_path / "s.zarr", pick_env, 128, per_frame=False)
    assert GOAL_POINTS_KEY not in store.features  # per episode now, not a frame feature
    rec = PointCloudRecorder(EpisodeRecorder(store), pipe, fixed_cameras(pick_env, ["static"]))
    result = run_episode(pick_env, make_expert("pick"), seed=0, observers=[rec])
    assert result.success and result.error is None
    final_obs = pick_env.unwrapped._observe()  # the env has not moved since the episode ended
    expected = pipe.process(frames_from_env(pick_env, final_obs, ["static"]), seed=99_999)
    ro = EpisodeStore.open(tmp_path / "s.zarr")
    assert ro.num_episodes == 1 and POINTS_KEY not in ro.features
    goal = read_goal_cloud(ro, 0)
    np.testing.assert_allclose(goal.points, expected.points, atol=1e-6)
    assert clouds_file(ro.path, 0).is_file() and EpisodeClouds.open(ro).names(0) == ["final"]
    with pytest.raises(KeyError, match="no 'goal' cloud"):
        read_goal_cloud(ro, 0, source="goal")  # pick gives no goal cloud of its own
    # the lifted object is above the table in the goal, not in the initial scene
    first = pipe.process(frames_from_env(pick_env, pick_env.reset(seed=0)[0], ["static"]), seed=0)
    assert goal.points[:, 2].max() > first.points[:, 2].max() + 0.03


def test_per_frame_clouds_with_a_moving_wrist_camera(tmp_path, pick_env):
    pipe = PointCloudPipeline(PointCloudConfig(num_points=64, cameras=["static", "wrist"]))
    store = _store(tmp_path / "w.zarr", pick_env, 64, per_frame=True)
    rec = PointCloudRecorder(
        EpisodeRecorder(store), pipe, live_cameras(pick_env, ["static", "wrist"]), per_frame=True
    )
    result = run_episode(pick_env, make_expert("pick"), seed=1, observers=[rec], max_steps=6)
    assert not result.success  # cut short; the recorder keeps successful episodes only
    assert store.num_episodes == 0
    rec = PointCloudRecorder(
        EpisodeRecorder(store, keep_failed=True),
        pipe,
        live_cameras(pick_env, ["static", "wrist"]),
        per_frame=True,
    )
    result = run_episode(pick_env, make_expert("pick"), seed=1, observers=[rec], max_steps=6)
    ep = EpisodeStore.open(tmp_path / "w.zarr").episode(0)
    assert ep[POINTS_KEY].shape == (6, 64, 3) and ep[COLORS_KEY].dtype == np.uint8
    assert ep[POINTS_KEY][0].std() > 0.01 and store.features[POINTS_KEY].type is FeatureType.POINT_CLOUD
    assert np.all(np.isfinite(ep[POINTS_KEY])) and not np.array_equal(ep[POINTS_KEY][0], ep[POINTS_KEY][5])


def test_mismatched_store_is_a_clear_error(tmp_path, pick_env):
    pipe = PointCloudPipeline(PointCloudConfig(num_points=32))
    store = _store(tmp_path / "a.zarr", pick_env, 64, per_frame=False)
    with pytest.raises(ValueError, match="lacks features"):
        PointCloudRecorder(EpisodeRecorder(store), pipe, {}, True)
    store.close()
    store = _store(tmp_path / "b.zarr", pick_env, 64, per_frame=True)
    with pytest.raises(ValueError, match=r"pointcloud/points.*shape \(64, 3\).*\(32, 3\)"):
        PointCloudRecorder(EpisodeRecorder(store), pipe, fixed_cameras(pick_env, ["static"]), True)
    with pytest.raises(ValueError, match="move with the hand"):
        fixed_cameras(pick_env, ["wrist"])
    store.close()
    plain = EpisodeStore.create(
        tmp_path / "p.zarr", features_from_spaces(pick_env.observation_space, pick_env.action_space), 10
    )
    with pytest.raises(KeyError, match="recorded with PointCloudRecorder"):
        read_goal_cloud(plain, 0)


def test_previous_layout_store_still_reads(tmp_path, pick_env):
    """A store with goal/points repeated on every frame (the earlier layout) opens and gives its goal."""
    feats = features_from_spaces(pick_env.observation_space, pick_env.action_space)
    legacy = pointcloud_features(16, per_frame=True)
    feats = {**feats, GOAL_POINTS_KEY: legacy[POINTS_KEY], GOAL_COLORS_KEY: legacy[COLORS_KEY]}
    store = EpisodeStore.create(tmp_path / "old.zarr", feats, fps=10)
    obs, _ = pick_env.reset(seed=0)
    goal = np.random.default_rng(0).uniform(0, 1, (16, 3)).astype(np.float32)
    frames = {k: np.stack([np.asarray(obs[k])] * 3) for k in feats if k in obs}
    frames.update(
        {
            GOAL_POINTS_KEY: np.stack([goal] * 3),
            GOAL_COLORS_KEY: np.zeros((3, 16, 3), np.uint8),
            "action": np.zeros((3, 7), np.float32),
        }
    )
    store.append_episode(frames, {"instruction": "pick", "seed": 0})
    np.testing.assert_array_equal(read_goal_cloud(EpisodeStore.open(store.path), 0).points, goal)
    with pytest.raises(ValueError, match="previous layout"):
        PointCloudRecorder(EpisodeRecorder(store), None)


def test_goal_capture_records_why_a_scene_is_unusable(pick_env):
    empty_box = PointCloudConfig(workspace_min=[5, 5, 5], workspace_max=[6, 6, 6])
    cap = GoalCapture(pick_env, PointCloudPipeline(empty_box), ["static"])
    result = run_episode(pick_env, make_expert("pick"), seed=0, observers=[cap], max_steps=2)
    assert result.error is None and result.length == 2
    assert cap.initial is None and cap.goal is None and "only 0 points" in cap.problem
    ok = GoalCapture(pick_env, PointCloudPipeline(PointCloudConfig(num_points=32)), ["static"])
    run_episode(pick_env, make_expert("pick"), seed=0, observers=[ok], max_steps=2)
    assert ok.problem is None and ok.initial.points.shape == ok.goal.points.shape == (32, 3)
