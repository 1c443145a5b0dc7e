"""Goal imagination: permutation symmetry, checkpoints, bad input, and a tiny model that fits goal clouds."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla import cli
from vla.backbones.config import PointEncoderConfig
from vla.models.goal_diffusion import (
    GoalDiffusion,
    GoalDiffusionConfig,
    align_goal_to_initial,
    goal_config_from_dict,
)
from vla.models.point_transformer import PointTransformer
from vla.pointcloud import PointCloudConfig, chamfer_distance
from vla.training.goal_diffusion import evaluate_goals, train_goal_diffusion
from vla.pointcloud.goals import GoalSet, generate_goal_scenes

N = 64


def tiny_config(**kw) -> GoalDiffusionConfig:
    pts = PointEncoderConfig(name="pointnet", num_groups=16, group_size=16, width=32)
    return GoalDiffusionConfig(num_points=N, width=64, depth=2, heads=4, points=pts, scale=0.1, **kw)


@pytest.fixture(scope="module")
def goals(tmp_path_factory) -> GoalSet:
    """Three expert goal scenes (pick, place, stack), 64 points each, from the real simulator."""
    cfg = PointCloudConfig(num_points=N, workspace_max=[0.9, 0.5, 0.15], voxel_size=0.003)
    g = generate_goal_scenes(["pick", "place", "stack"], 1, pointcloud=cfg, image_size=64, progress=False)
    path = g.save(tmp_path_factory.mktemp("goals") / "train.npz")
    return GoalSet.load(path)


def _clouds(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, N, 3, generator=g) * torch.tensor([0.3, 0.4, 0.1]) + torch.tensor([0.35, -0.2, 0.0])


def test_denoiser_is_permutation_equivariant():
    torch.manual_seed(0)
    net = PointTransformer(3, width=32, depth=2, heads=4)
    for p in net.output.parameters():  # the zero-initialised head would make the test trivial
        torch.nn.init.normal_(p)
    x, t, cond = torch.randn(2, 50, 3), torch.tensor([3, 700]), torch.randn(2, 5, 32)
    perm = torch.randperm(50)
    out = net(x, t, cond)
    assert out.shape == (2, 50, 3) and out.abs().sum() > 0
    torch.testing.assert_close(net(x[:, perm], t, cond), out[:, perm], atol=1e-5, rtol=1e-4)


def test_imagined_goal_does_not_depend_on_the_initial_clouds_point_order():
    torch.manual_seed(0)
    model = GoalDiffusion(tiny_config()).eval()
    for p in model.denoiser.output.parameters():  # untrained zero head: every sample would be the centre
        torch.nn.init.normal_(p, std=0.1)
    init = _clouds()
    perm = torch.randperm(N)
    a = model.sample(init, ["lift the red cube", "push it"], steps=4, seed=3)
    b = model.sample(init[:, perm], ["lift the red cube", "push it"], steps=4, seed=3)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    c = model.sample(init, ["lift the red cube", "push it"], steps=4, seed=4)
    assert not torch.allclose(a, c)


def test_checkpoint_roundtrip_and_bad_input(tmp_path):
    torch.manual_seed(0)
    model = GoalDiffusion(tiny_config(use_color=True)).eval()
    init = torch.cat([_clouds(1), torch.rand(1, N, 3)], dim=-1)  # xyz + rgb
    path = model.save_pretrained(tmp_path / "ckpt")
    back = GoalDiffusion.from_pretrained(path)
    torch.testing.assert_close(back.sample(init, ["stack"], steps=3), model.sample(init, ["stack"], steps=3))
    assert back.cfg == model.resolved_config()
    with pytest.raises(ValueError, match=r"initial must be float \[B,64,6\]"):
        model.sample(init[..., :3], ["stack"])
    with pytest.raises(ValueError, match="1 clouds but 2 instructions"):
        model.sample(init, ["a", "b"])
    with pytest.raises(ValueError, match=r"unknown keys \['depthh'\]"):
        goal_config_from_dict({"depthh": 3})
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        GoalDiffusion.from_pretrained(tmp_path / "missing")


def test_goal_set_roundtrip_and_errors(goals, tmp_path):
    assert len(goals) == 3 and goals.initial_points.shape == (3, N, 3) and goals.goal_colors.dtype == np.uint8
    assert list(goals.task) == ["pick", "place", "stack"] and goals.success.all()
    assert all(len(s) > 5 for s in goals.instruction)
    np.savez(tmp_path / "bad.npz", initial_points=goals.initial_points)
    with pytest.raises(ValueError, match=r"bad.npz: not a goal-scene file, missing keys"):
        GoalSet.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=r"key 'goal_points': expected float32 \[E=3, N=64, 3\]"):
        GoalSet(**{**goals.__dict__, "goal_points": goals.goal_points[:, :10]})
    with pytest.raises(ValueError, match="model expects 64"):
        train_goal_diffusion(
            GoalDiffusion(tiny_config()),
            goals.subset([0]).__class__(
                **{
                    k: (v[:, :32] if k.endswith(("points", "colors")) else v)
                    for k, v in goals.__dict__.items()
                }
            ),
            steps=1,
        )


@pytest.mark.slow  # 18 s; benchmarks/goal_diffusion.py trains and scores the model on held-out scenes
def test_tiny_model_fits_a_few_goal_clouds(goals):
    """After a short training on three expert scenes, the imagined goal of each scene is closer to its
    true goal than the unchanged initial scene is (the copy-initial baseline: what a model that imagines
    nothing would score) and closer to it than to the other scenes' goals (it follows the conditioning)."""
    torch.manual_seed(0)
    model = GoalDiffusion(tiny_config())
    losses = train_goal_diffusion(model, goals, steps=400, batch_size=8, lr=2e-3, seed=0, progress=False)
    assert np.mean(losses[-50:]) < 0.7 * np.mean(losses[:20])
    report = evaluate_goals(model, goals, steps=25)
    imagined = report.pop("imagined_clouds")
    assert imagined.shape == (3, N, 3) and np.all(np.isfinite(imagined))
    assert report["imagined"]["chamfer"] < report["copy_initial"]["chamfer"], report
    cross = np.array(
        [[float(chamfer_distance(imagined[i], goals.goal_points[j])) for j in range(3)] for i in range(3)]
    )
    assert np.all(np.argmin(cross, axis=1) == np.arange(3)), cross


def test_cli_train_and_sample(goals, tmp_path, capsys):
    data = goals.save(tmp_path / "g.npz")
    common = [
        "pointcloud.num_points=64",
        "model.width=32",
        "model.depth=1",
        "model.points.num_groups=8",
        "model.points.width=16",
        f"train.out={tmp_path / 'ckpt'}",
    ]
    assert (
        cli.main(["goals", "train", *common, f"train.data={data}", "train.steps=3", "train.batch_size=2"])
        == 0
    )
    assert "trained" in capsys.readouterr().out
    out = tmp_path / "samples"
    argv = ["goals", "sample", *common, f"sample.data={data}", "sample.steps=2", "sample.episodes=1"]
    assert cli.main([*argv, f"sample.out={out}", "sample.ply=true"]) == 0
    assert "copy-initial Chamfer" in capsys.readouterr().out
    assert len(list(out.glob("*.png"))) == 1 and len(list(out.glob("*.ply"))) == 2
    assert (out / "metrics.json").is_file()
    assert cli.main(["goals", "sample", *common, f"sample.data={tmp_path / 'nope.npz'}"]) == 2
    assert "goal-scene file not found" in capsys.readouterr().err
    assert cli.main(["goals"]) == 2
    gen = ["goals", "generate", "generate.tasks=[pick]", "generate.episodes=1", "generate.image_size=48"]
    assert cli.main([*gen, "pointcloud.num_points=32", f"generate.out={tmp_path / 'new.npz'}"]) == 0
    assert "wrote 1 goal scenes (32 points each)" in capsys.readouterr().out
    assert GoalSet.load(tmp_path / "new.npz").goal_points.shape == (1, 32, 3)


def test_low_strength_sampling_starts_from_the_initial_cloud():
    """SDEdit-style sampling: with the (zero-initialised) epsilon head predicting no noise, DDIM from the
    initial cloud noised to a small timestep returns that cloud up to the injected noise."""
    torch.manual_seed(0)
    model = GoalDiffusion(tiny_config(prediction="epsilon")).eval()
    init = _clouds(1)
    near = model.sample(init, ["push the cube"], steps=5, seed=0, strength=0.02)
    far = model.sample(init, ["push the cube"], steps=5, seed=0, strength=1.0)
    d_near, d_far = float(chamfer_distance(near[0], init[0])), float(chamfer_distance(far[0], init[0]))
    assert d_near < 0.02 and d_near < 0.2 * d_far, (d_near, d_far)
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        model.sample(init, ["push the cube"], strength=0.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 24))
def test_alignment_is_an_optimal_matching(seed, n):
    """align_goal_to_initial permutes each goal cloud (nothing lost or duplicated) and no swap of two
    assigned partners lowers the total squared distance (a property of the optimal assignment)."""
    g = torch.Generator().manual_seed(seed)
    initial, goal = torch.rand(2, n, 3, generator=g), torch.rand(2, n, 6, generator=g)
    aligned = align_goal_to_initial(initial, goal)
    for b in range(2):
        assert sorted(map(tuple, aligned[b].tolist())) == sorted(map(tuple, goal[b].tolist()))
        d = torch.cdist(initial[b], aligned[b, :, :3]).square()  # [N,N]
        diag = d.diagonal()
        swap = diag[:, None] + diag[None, :] - d - d.T  # gain of swapping partners i, j
        assert float(swap.max()) < 1e-5


def test_displacement_model_starts_at_the_copy_baseline_and_fits_goals(goals):
    """Displacement prediction: untrained, it imagines the initial scene exactly (zero displacement);
    trained briefly on three expert scenes, it beats that copy baseline on them."""
    torch.manual_seed(0)
    cfg = tiny_config(prediction="displacement", initial_point_tokens=False)
    model = GoalDiffusion(cfg).eval()
    init = torch.from_numpy(goals.initial_points[:2])
    torch.testing.assert_close(model.sample(init, ["pick", "stack"], steps=3, seed=0), init)
    losses = train_goal_diffusion(model, goals, steps=150, batch_size=8, lr=2e-3, seed=0, progress=False)
    assert np.mean(losses[-50:]) < 0.7 * np.mean(losses[:20])
    report = evaluate_goals(model, goals, steps=25)
    assert report["imagined"]["chamfer"] < report["copy_initial"]["chamfer"], report
    moved = model.sample(init, ["pick", "stack"], steps=3, seed=0)
    assert float((moved - init).norm(dim=-1).max()) > 0.01
    torch.testing.assert_close(model.sample(init, ["pick", "stack"], steps=3, seed=0, snap=10.0), init)
    with pytest.raises(ValueError, match="prediction: expected one of"):
        GoalDiffusion(tiny_config(prediction="flow"))


def test_radius_alignment_keeps_unmoved_objects_in_place():
    """With a radius, points of an object that did not move target their nearby resampled goal points and
    only the moved object's points travel; an optimal permutation sends some of the unmoved object's
    points across the scene when the goal cloud spreads its points differently over the objects."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 3, generator=g) * 0.01 + torch.tensor([0.4, -0.1, 0.0])  # stays
    b = torch.rand(24, 3, generator=g) * 0.04 + torch.tensor([0.5, 0.1, 0.0])  # moves by +0.2 m in x
    initial = torch.cat([a, b])[None]
    shift = torch.tensor([0.2, 0.0, 0.0])
    goal = torch.cat([a[:30] + 0.002, b + shift, b[:10] + shift + 0.003])  # 30 + 34 points
    targets = align_goal_to_initial(initial, goal[None], radius=0.01)[0]
    moved = (targets - initial[0]).norm(dim=-1)
    assert float(moved[:40].max()) <= 0.01 and float(moved[40:].min()) > 0.15
    assert float(chamfer_distance(targets, goal)) < 0.01
    shuffled = (align_goal_to_initial(initial, goal[None])[0] - initial[0]).norm(dim=-1)
    assert int((shuffled[:40] > 0.15).sum()) == 10
