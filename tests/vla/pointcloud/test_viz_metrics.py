"""Chamfer / F-score properties (hypothesis), PNG panels and PLY files that open3d reads back."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla.pointcloud import Cloud, chamfer_distance, f_score
from vla.pointcloud.viz import render_clouds_png, write_ply

clouds = arrays(np.float32, st.tuples(st.integers(1, 40), st.just(3)), elements=st.floats(-1, 1, width=32))


@settings(max_examples=40, deadline=None)
@given(a=clouds, b=clouds, seed=st.integers(0, 1000))
def test_chamfer_and_fscore_properties(a, b, seed):
    rng = np.random.default_rng(seed)
    cd = float(chamfer_distance(a, b))
    assert cd >= 0 and cd == pytest.approx(float(chamfer_distance(b, a)), abs=1e-5)
    assert float(chamfer_distance(a, a)) == 0.0 and float(f_score(a, a)) == 1.0
    # invariant to the order of points in either cloud
    assert float(chamfer_distance(rng.permutation(a), rng.permutation(b))) == pytest.approx(cd, abs=1e-5)
    fs = float(f_score(a, b, tau=0.05))
    assert 0.0 <= fs <= 1.0 and fs == pytest.approx(float(f_score(b, a, tau=0.05)), abs=1e-6)
    # a shift of the whole cloud by d costs at most 2 d
    shifted = a + np.float32([0.1, 0, 0])
    assert float(chamfer_distance(a, shifted)) <= 0.2 + 1e-5


def test_metrics_known_values_and_batches():
    a = np.zeros((1, 3), np.float32)
    b = np.array([[0.03, 0, 0], [0.0, 0.04, 0]], np.float32)
    # a -> b: 0.03; b -> a: mean(0.03, 0.04) = 0.035
    assert float(chamfer_distance(a, b)) == pytest.approx(0.065, abs=1e-6)
    assert float(f_score(a, b, tau=0.035)) == pytest.approx(2 * 1 * 0.5 / 1.5, abs=1e-6)
    batch = chamfer_distance(torch.zeros(4, 10, 6), torch.ones(4, 7, 3))  # extra channels ignored
    assert batch.shape == (4,) and torch.allclose(batch, torch.full((4,), 2 * 3**0.5))
    with pytest.raises(ValueError, match=r"a: expected a point cloud"):
        chamfer_distance(np.zeros((0, 3)), b)
    with pytest.raises(ValueError, match="batch sizes differ"):
        f_score(np.zeros((2, 5, 3)), np.zeros((3, 5, 3)))


def test_png_panels_and_ply_roundtrip(tmp_path):
    import matplotlib.image as mpimg
    import open3d as o3d

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 0.2, (200, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (200, 3)).astype(np.uint8)
    png = render_clouds_png(
        tmp_path / "g.png",
        {"initial": Cloud(pts, cols, 200), "true goal": (pts + 0.05, cols), "imagined": pts * 0.5},
        title="stack it",
        views=2,
        panel_inches=2.0,
        dpi=60,
    )
    img = mpimg.imread(png)
    assert img.shape[1] == 360 and img.shape[0] > 240 and img.std() > 0.05  # 3 panels wide, 2 views tall
    ply = write_ply(tmp_path / "g.ply", pts, cols)
    back = o3d.io.read_point_cloud(str(ply))
    np.testing.assert_allclose(np.asarray(back.points), pts, atol=1e-6)
    np.testing.assert_allclose(np.asarray(back.colors) * 255, cols, atol=0.5)
    with pytest.raises(ValueError, match="'bad' must be points"):
        render_clouds_png(tmp_path / "x.png", {"bad": np.zeros((0, 3))})
    with pytest.raises(ValueError, match="views must be"):
        render_clouds_png(tmp_path / "x.png", {"a": pts}, views=9)
    with pytest.raises(ValueError, match="colors must be"):
        write_ply(tmp_path / "x.ply", pts, cols[:5])
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.ply").exists()
