"""Point-cloud pipeline: geometry against the simulator's known objects, bad input, sizes, determinism."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.camera import depth_to_pointcloud
from vla.core.config import compose, to_dataclass
from vla.pointcloud import CameraFrame, CameraModel, PointCloudConfig, PointCloudPipeline, frames_from_env
from vla.pointcloud.pipeline import farthest_point_indices, voxel_downsample


def _box_distance(points, pose, size):
    """Distance [N] of points to an object's oriented box (pose = box centre + quaternion; 0 inside)."""
    import pybullet as p

    R = np.array(p.getMatrixFromQuaternion(pose[3:])).reshape(3, 3)
    local = (points - pose[:3]) @ R  # world -> object frame
    return np.linalg.norm(np.maximum(np.abs(local) - np.asarray(size) / 2, 0.0), axis=1)


@pytest.mark.parametrize("cameras", [("static",), ("static", "wrist")])
def test_cloud_lies_on_known_objects(stack_env, cameras):
    obs, info = stack_env.reset(seed=4)
    if "wrist" in cameras:  # bring the wrist camera down to look at the table
        for _ in range(4):
            obs, *_ = stack_env.step(np.array([0, 0, -0.04, 0, 0, 0, 1], np.float32))
        info = {"privileged": stack_env.unwrapped.privileged()}
    priv = info["privileged"]
    cfg = PointCloudConfig(num_points=256, workspace_max=[0.9, 0.5, 0.12], voxel_size=0.003)
    cloud = PointCloudPipeline(cfg).process(frames_from_env(stack_env, obs, cameras), seed=0)
    assert cloud.points.shape == (256, 3) and cloud.points.dtype == np.float32
    assert cloud.colors.shape == (256, 3) and cloud.colors.dtype == np.uint8
    poses = np.asarray(priv["object_poses"])
    dist = np.min(
        [_box_distance(cloud.points, poses[k], priv["object_sizes"][k]) for k in range(len(poses))], 0
    )
    # every point above the table lies on a known object (within 1 cm), and every object is seen
    assert np.max(dist) < 0.01, np.sort(dist)[-5:]
    for k in range(len(poses)):
        near = _box_distance(cloud.points, poses[k], priv["object_sizes"][k]) < 0.01
        assert near.sum() >= 5, (priv["object_names"][k], near.sum())


def test_table_plane_and_matches_sim_backprojection(stack_env):
    obs, _ = stack_env.reset(seed=1)
    model = CameraModel.from_env(stack_env, "static")
    pts, cols = model.backproject(obs["depth/static"], obs["images/static"])
    ref, ref_cols = depth_to_pointcloud(obs["depth/static"], model.K, model.base_T_cam, obs["images/static"])
    np.testing.assert_allclose(pts, ref, atol=1e-5)
    np.testing.assert_array_equal(cols, ref_cols)
    table = obs["seg/static"].reshape(-1)[np.isfinite(obs["depth/static"].reshape(-1))] == stack_env.table_id
    assert abs(float(np.median(pts[table[: len(pts)], 2]))) < 0.01  # the table top is z = 0 within 1 cm


def test_camera_info_and_tf_give_the_same_cloud(stack_env):
    obs, _ = stack_env.reset(seed=2)
    env_model = CameraModel.from_env(stack_env, "static")
    K = env_model.K.reshape(-1).tolist()
    ros_model = CameraModel.from_camera_info(
        {"k": K, "width": 96, "height": 96}, env_model.base_T_cam, "front"
    )
    a, _ = env_model.backproject(obs["depth/static"])
    b, _ = ros_model.backproject(obs["depth/static"] * 1000.0, depth_scale=1e-3)  # 16UC1-style millimetres
    np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"camera info 'x': missing keys \['width'\]"):
        CameraModel.from_camera_info({"K": K, "height": 96}, np.eye(4), "x")
    with pytest.raises(ValueError, match="not a rigid transform"):
        CameraModel.from_camera_info({"K": K, "width": 96, "height": 96}, np.ones((4, 4)))


def test_bad_images_are_clear_errors(stack_env):
    obs, _ = stack_env.reset(seed=0)
    model = CameraModel.from_env(stack_env, "static")
    wrong = CameraModel(model.K, 128, 96, model.base_T_cam, "static")
    with pytest.raises(ValueError, match=r"camera 'static': depth has shape \(96, 96\).*width=128"):
        wrong.backproject(obs["depth/static"])
    with pytest.raises(ValueError, match="rgb has shape"):
        model.backproject(obs["depth/static"], obs["images/static"][:, :50])
    pipe = PointCloudPipeline(PointCloudConfig(workspace_min=[5, 5, 5], workspace_max=[6, 6, 6]))
    with pytest.raises(ValueError, match=r"only 0 points of cameras \['static'\].*workspace"):
        pipe.process([CameraFrame(model, obs["depth/static"])])
    with pytest.raises(ValueError, match="no camera frames"):
        pipe.process([])
    with pytest.raises(ValueError, match="table_removal"):
        PointCloudPipeline(PointCloudConfig(table_removal="floor"))


def test_robot_pixels_can_be_dropped(stack_env):
    obs, _ = stack_env.reset(seed=0)
    for _ in range(3):  # bring the hand down into the workspace box
        obs, *_ = stack_env.step(np.array([0, 0, -0.05, 0, 0, 0, 1], np.float32))
    cfg = PointCloudConfig(num_points=128, voxel_size=0.0)
    pipe = PointCloudPipeline(cfg)
    with_arm, _ = pipe.crop(*pipe.fuse(frames_from_env(stack_env, obs, ["static"])))
    without, _ = pipe.crop(*pipe.fuse(frames_from_env(stack_env, obs, ["static"], drop_robot=True)))
    robot = obs["seg/static"] == stack_env.robot.uid
    assert robot.sum() > 0 and len(without) < len(with_arm)
    hand_z = float(stack_env.unwrapped.privileged()["ee_position"][2])
    assert np.max(without[:, 2]) < hand_z - 0.02 < np.max(with_arm[:, 2])  # nothing left up at the hand
    with pytest.raises(ValueError, match="keep mask must be bool"):
        CameraModel.from_env(stack_env, "static").backproject(obs["depth/static"], keep=robot.astype(int))
    with pytest.raises(ValueError, match="make the env with segmentation=True"):
        frames_from_env(stack_env, {"depth/static": obs["depth/static"]}, ["static"], drop_robot=True)


def test_holes_are_masked(stack_env):
    obs, _ = stack_env.reset(seed=0)
    model = CameraModel.from_env(stack_env, "static")
    depth = obs["depth/static"].copy()
    seen = np.isfinite(depth[40:]) & (depth[40:] < 4.95)  # the rows left intact (some see the sky)
    depth[:20] = np.nan
    depth[20:30] = 0.0
    depth[30:35] = -1.0
    depth[35:40] = np.inf
    holed, cols = model.backproject(depth)
    assert np.all(np.isfinite(holed)) and len(holed) == seen.sum() and len(cols) == len(holed)
    everything_missing = np.full_like(depth, np.nan)
    with pytest.raises(ValueError, match="only 0 points"):
        PointCloudPipeline().process([CameraFrame(model, everything_missing)])


def test_sizes_determinism_and_padding(stack_env):
    obs, _ = stack_env.reset(seed=5)
    frames = frames_from_env(stack_env, obs, ["static"])
    pipe = PointCloudPipeline(PointCloudConfig(table_removal="none", num_points=512))
    a, b, c = pipe.process(frames, seed=0), pipe.process(frames, seed=0), pipe.process(frames, seed=1)
    assert a.points.shape == (512, 3) and a.num_unique == 512
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.colors, b.colors)
    assert not np.array_equal(a.points, c.points)
    assert len(np.unique(a.points, axis=0)) == 512
    # few points survive: all of them are kept and some repeated
    small = PointCloudPipeline(PointCloudConfig(num_points=4096, voxel_size=0.01)).process(frames, seed=0)
    assert small.points.shape == (4096, 3) and 16 <= small.num_unique < 4096
    assert len(np.unique(small.points, axis=0)) == small.num_unique
    # ransac removes the table plane like the height rule does
    ransac = PointCloudPipeline(PointCloudConfig(table_removal="ransac", num_points=256)).process(
        frames, seed=0
    )
    assert np.mean(ransac.points[:, 2] > 0.004) > 0.9


def test_voxel_grid_keeps_one_point_per_voxel():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 0.1, (5000, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (5000, 3)).astype(np.uint8)
    v, vc = voxel_downsample(pts, cols, 0.02)
    assert len(v) == len(vc) and 100 <= len(v) <= 216  # 5 x 5 x 5 occupied (open3d's grid may shift by one)
    assert v.dtype == np.float32 and vc.dtype == np.uint8


@settings(max_examples=25, deadline=None)
@given(n=st.integers(8, 300), k=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_farthest_point_sampling_covers(n, k, seed):
    """FPS: every point lies within the smallest pairwise distance of the chosen set (k-centre)."""
    pts = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    pts = np.unique(pts, axis=0)
    k = min(k, len(pts))
    idx = farthest_point_indices(pts, k, start=seed % len(pts))
    assert len(set(idx.tolist())) == k and idx[0] == seed % len(pts)
    chosen = pts[idx]
    cover = np.max(np.min(np.linalg.norm(pts[:, None] - chosen[None], axis=2), axis=1))
    if k > 1:
        pair = np.linalg.norm(chosen[:, None] - chosen[None], axis=2)
        assert cover <= pair[~np.eye(k, dtype=bool)].min() + 1e-5


def test_config_presets_compose():
    for name in ("default", "scene"):
        cfg = to_dataclass(compose(f"pointcloud/{name}").pointcloud, PointCloudConfig)
        assert cfg.num_points == 1024
        PointCloudPipeline(cfg)
