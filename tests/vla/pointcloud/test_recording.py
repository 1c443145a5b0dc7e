"""Point clouds in the episode store: goal cloud always, per-frame clouds on request, real expert rollouts."""

import numpy as np
import pytest

from sim.env import TabletopEnv
from sim.experts import make_expert
from vla.data.recorder import EpisodeRecorder, features_from_spaces
from vla.data.store import EpisodeStore
from vla.eval.rollout import run_episode
from vla.pointcloud import PointCloudConfig, PointCloudPipeline, frames_from_env
from vla.pointcloud.goals import GoalCapture
from vla.pointcloud.recording import (
    COLORS_KEY,
    GOAL_POINTS_KEY,
    POINTS_KEY,
    PointCloudRecorder,
    fixed_cameras,
    live_cameras,
    pointcloud_features,
    read_goal_cloud,
)
from vla.types import FeatureType


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
    assert store.features[GOAL_POINTS_KEY].type is FeatureType.POINT_CLOUD
    rec = PointCloudRecorder(EpisodeRecorder(store), pipe, fixed_cameras(pick_env, ["static"]))
    result = run_episode(pick_env, make_expert("pick"), seed=0, observers=[rec])
    assert result.success and result.error is None
    final_obs = pick_env.unwrapped._observe()  # the env has not moved since the episode ended
    expected = pipe.process(frames_from_env(pick_env, final_obs, ["static"]), seed=99_999)
    ro = EpisodeStore.open(tmp_path / "s.zarr")
    assert ro.num_episodes == 1 and POINTS_KEY not in ro.features
    goal = read_goal_cloud(ro, 0)
    np.testing.assert_allclose(goal.points, expected.points, atol=1e-6)
    ep = ro.episode(0)
    assert ep[GOAL_POINTS_KEY].shape == (result.length, 128, 3)
    assert np.all(ep[GOAL_POINTS_KEY] == ep[GOAL_POINTS_KEY][:1])  # the same goal on every frame
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
    assert np.all(np.isfinite(ep[POINTS_KEY])) and not np.array_equal(ep[POINTS_KEY][0], ep[POINTS_KEY][5])


def test_mismatched_store_is_a_clear_error(tmp_path, pick_env):
    pipe = PointCloudPipeline(PointCloudConfig(num_points=32))
    store = _store(tmp_path / "a.zarr", pick_env, 64, per_frame=False)
    with pytest.raises(ValueError, match=r"goal/points.*shape \(64, 3\).*\(32, 3\)"):
        PointCloudRecorder(EpisodeRecorder(store), pipe, fixed_cameras(pick_env, ["static"]))
    with pytest.raises(ValueError, match="lacks features"):
        PointCloudRecorder(
            EpisodeRecorder(store), PointCloudPipeline(PointCloudConfig(num_points=64)), {}, True
        )
    with pytest.raises(ValueError, match="move with the hand"):
        fixed_cameras(pick_env, ["wrist"])
    store.close()
    plain = EpisodeStore.create(
        tmp_path / "p.zarr", features_from_spaces(pick_env.observation_space, pick_env.action_space), 10
    )
    with pytest.raises(KeyError, match="recorded with PointCloudRecorder"):
        read_goal_cloud(plain, 0)


def test_goal_capture_records_why_a_scene_is_unusable(pick_env):
    empty_box = PointCloudConfig(workspace_min=[5, 5, 5], workspace_max=[6, 6, 6])
    cap = GoalCapture(pick_env, PointCloudPipeline(empty_box), ["static"])
    result = run_episode(pick_env, make_expert("pick"), seed=0, observers=[cap], max_steps=2)
    assert result.error is None and result.length == 2
    assert cap.initial is None and cap.goal is None and "only 0 points" in cap.problem
    ok = GoalCapture(pick_env, PointCloudPipeline(PointCloudConfig(num_points=32)), ["static"])
    run_episode(pick_env, make_expert("pick"), seed=0, observers=[ok], max_steps=2)
    assert ok.problem is None and ok.initial.points.shape == ok.goal.points.shape == (32, 3)
