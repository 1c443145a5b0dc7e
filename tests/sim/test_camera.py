"""Cameras: intrinsics/extrinsics match the renderer, depth -> point cloud lands on known geometry."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.camera import depth_to_pointcloud, intrinsics, look_at_extrinsics, view_matrix_from_extrinsics
from sim.env import TabletopEnv


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv(task="place", cameras=("static", "wrist"), image_size=64, segmentation=True)
    e.reset(seed=0)
    yield e
    e.close()


@pytest.mark.parametrize("cam", ["static", "wrist"])
def test_table_height_from_point_cloud(env, cam):
    obs, info = env.reset(seed=0)
    if cam == "wrist":  # look down at the table from 25 cm
        for _ in range(3):
            obs, *_ = env.step(np.array([0, 0, -0.04, 0, 0, 0, 1], np.float32))
    K, T = env.camera_intrinsics(cam), env.camera_extrinsics(cam)
    assert K.shape == (3, 3) and T.shape == (4, 4)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    pts, cols = depth_to_pointcloud(obs[f"depth/{cam}"], K, T, rgb=obs[f"images/{cam}"])
    assert pts.shape[1] == 3 and pts.dtype == np.float32
    assert cols.shape == pts.shape and cols.dtype == np.uint8
    table = obs[f"seg/{cam}"] == env.table_id
    valid = np.isfinite(obs[f"depth/{cam}"]) & (obs[f"depth/{cam}"] < 4.9)
    table_pts = depth_to_pointcloud(np.where(table & valid, obs[f"depth/{cam}"], np.inf), K, T)
    assert len(table_pts) > 100
    assert abs(float(np.median(table_pts[:, 2]))) < 0.01  # table top is z = 0 within 1 cm
    assert np.percentile(np.abs(table_pts[:, 2]), 95) < 0.01


def test_object_centre_from_point_cloud(env):
    obs, info = env.reset(seed=3)
    priv = info["privileged"]
    K, T = env.camera_intrinsics("static"), env.camera_extrinsics("static")
    i = priv["target_index"]
    mask = obs["seg/static"] == priv["object_ids"][i]
    pts = depth_to_pointcloud(np.where(mask, obs["depth/static"], np.inf), K, T)
    assert len(pts) > 5
    # visible surface points lie within the object's bounding sphere
    centre = np.asarray(priv["object_poses"][i][:3])
    radius = np.linalg.norm(priv["object_sizes"][i]) / 2 + 0.01
    assert np.all(np.linalg.norm(pts - centre, axis=1) < radius)


@settings(max_examples=50, deadline=None)
@given(
    eye=st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(0.3, 2)),
    u=st.floats(0, 63.0),
    v=st.floats(0, 47.0),
    z=st.floats(0.1, 3.0),
)
def test_projection_roundtrip(eye, u, v, z):
    """A point back-projected from pixel (u, v) at depth z projects back onto (u, v)."""
    K = intrinsics(50.0, 64, 48)
    T = look_at_extrinsics(eye, (0.4, 0.1, 0.0), (0, 0, 1))
    depth = np.full((48, 64), np.inf, np.float32)
    ui, vi = int(u), int(v)
    depth[vi, ui] = z
    (p,) = depth_to_pointcloud(depth, K, T)
    cam = np.linalg.inv(T) @ np.append(p, 1.0)
    px = K @ cam[:3] / cam[2]
    np.testing.assert_allclose(px[:2], [ui + 0.5, vi + 0.5], atol=1e-3)
    # and the OpenGL view matrix agrees: the camera looks down its -z axis at the point
    view = np.array(view_matrix_from_extrinsics(T)).reshape(4, 4).T
    assert (view @ np.append(p, 1.0))[2] < 0


def test_bad_inputs():
    K, T = intrinsics(60, 8, 8), np.eye(4)
    with pytest.raises(ValueError, match="depth: expected shape"):
        depth_to_pointcloud(np.zeros(8), K, T)
    with pytest.raises(ValueError, match="K: expected shape"):
        depth_to_pointcloud(np.ones((8, 8)), np.eye(4), T)
    with pytest.raises(ValueError, match="rgb: expected shape"):
        depth_to_pointcloud(np.ones((8, 8)), K, T, rgb=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="parallel"):
        look_at_extrinsics((0, 0, 1), (0, 0, 0), (0, 0, 1))
