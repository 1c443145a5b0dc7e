"""3D tokens in the VLA: goal and observation point clouds reach the model, the processor saves and loads
them, checkpoints and processor files without points still load, bad clouds are clear errors, and a
goal-conditioned tiny VLA trains on a real `arrange_one` store and runs through `vla eval`."""

import json
import shutil

import numpy as np
import pytest
import torch

from action_tokenizers import make_tokenizer
from vla.backbones.config import compose_model_config
from vla.core.normalizer import Normalizer, compute_stats
from vla.models.vla import VLA
from vla.pointcloud.model_inputs import check_env_provides_clouds
from vla.processor import ProcessorConfig

RNG = np.random.default_rng(0)
ACTIONS = (RNG.standard_normal((200, 7)) * 0.05).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(RNG.standard_normal((200, 15)))},
    {"action": "q99", "state": "meanstd"},
)
N = 48


def _vla(goal=True, obs=False, colors=True, seed=0):
    torch.manual_seed(seed)
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=1).fit(ACTIONS.reshape(-1, 1, 7))
    cfg = ProcessorConfig(
        cameras=["static"], state_dim=15, goal_points=N if goal else 0, obs_points=N if obs else 0,
        point_colors=colors,
    )  # fmt: skip
    over = (["goal_points.num_groups=8"] if goal else []) + (["points.num_groups=8"] if obs else [])
    return VLA.build(compose_model_config("tiny", over), cfg, tok, NORM).eval()


def _obs(seed, goal_shift=0.0):
    r = np.random.default_rng(seed)
    goal = r.uniform([0.3, -0.2, 0.0], [0.7, 0.2, 0.1], (N, 3)).astype(np.float32)
    goal[:, 0] += goal_shift
    return {
        "images/static": r.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "state": r.standard_normal(15).astype(np.float32),
        "instruction": "arrange the objects as the goal shows",
        "goal/points": goal,
        "goal/colors": r.integers(0, 256, (N, 3), dtype=np.uint8),
        "pointcloud/points": r.uniform(0.3, 0.7, (N, 3)).astype(np.float32),
        "pointcloud/colors": r.integers(0, 256, (N, 3), dtype=np.uint8),
    }


def _logits(vla, obs):
    inputs = vla.processor.preprocess([obs])
    out = vla.vlm(
        inputs["input_ids"], inputs["attention_mask"], images=inputs["images"], state=inputs["state"],
        points=inputs.get("points"), goal_points=inputs.get("goal_points"),
    )  # fmt: skip
    return out.logits[0, -1], out.num_prefix_tokens


def test_goal_and_observation_clouds_reach_the_model():
    vla = _vla(goal=True, obs=True)
    base, m = _logits(vla, _obs(1))
    assert m == 16 + 1 + 8 + 8  # [visual 16][state 1][obs points 8][goal points 8]
    moved, _ = _logits(vla, _obs(1, goal_shift=0.1))  # only the goal cloud differs
    assert (moved - base).abs().max() > 1e-4
    other = _obs(1)
    other["pointcloud/points"] = (
        other["pointcloud/points"][::-1].copy() + 0.05
    )  # only the scene cloud differs
    assert (_logits(vla, other)[0] - base).abs().max() > 1e-4
    recoloured = _obs(1)
    recoloured["goal/colors"] = 255 - recoloured["goal/colors"]
    assert (_logits(vla, recoloured)[0] - base).abs().max() > 1e-4
    # normalised by the fixed workspace box, colours in [0, 1]
    inputs = vla.processor.preprocess([_obs(1)])
    assert inputs["goal_points"].shape == (1, N, 6) and inputs["points"].shape == (1, N, 6)
    np.testing.assert_allclose(
        inputs["goal_points"][0, :, :3].numpy(), (_obs(1)["goal/points"] - [0.5, 0.0, 0.05]) / 0.25, atol=1e-6
    )
    assert (
        0.0 <= float(inputs["goal_points"][..., 3:].min())
        and float(inputs["goal_points"][..., 3:].max()) <= 1
    )


def test_bad_clouds_are_clear_errors():
    vla = _vla(goal=True, colors=True)
    obs = _obs(2)
    del obs["goal/points"]
    with pytest.raises(ValueError, match=r"goal-conditioned but there is no 'goal/points' \[N=48, 3\]"):
        vla.predict_action(obs)
    obs = _obs(2)
    obs["goal/points"] = obs["goal/points"][:10]
    with pytest.raises(ValueError, match=r"goal/points must be \[N=48, 3\].*got \(10, 3\)"):
        vla.predict_action(obs)
    obs = _obs(2)
    obs["goal/points"][0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        vla.predict_action(obs)
    obs = _obs(2)
    del obs["goal/colors"]
    with pytest.raises(ValueError, match="missing 'goal/colors'"):
        vla.predict_action(obs)
    with pytest.raises(ValueError, match="processor goal_points=48 but model goal_points.num_groups=0"):
        VLA(_vla(goal=False).vlm, vla.processor)


def test_save_load_round_trip_with_points(tmp_path):
    vla = _vla(goal=True, obs=True, colors=False)
    vla.save_pretrained(tmp_path / "ck")
    data = json.loads((tmp_path / "ck" / "processor.json").read_text())["config"]
    assert data["goal_points"] == N and data["obs_points"] == N and data["point_colors"] is False
    assert data["point_center"] == [0.5, 0.0, 0.05] and data["point_scale"] == 0.25
    back = VLA.from_pretrained(tmp_path / "ck")
    assert back.vlm.cfg.goal_points.in_features == 3 and back.processor.cfg.goal_points == N
    obs = _obs(3)
    np.testing.assert_array_equal(back.predict_action(obs), vla.predict_action(obs))
    a, _ = _logits(vla, obs)
    b, _ = _logits(back, obs)
    torch.testing.assert_close(a, b)


def test_checkpoint_written_before_point_tokens_still_loads(tmp_path):
    """Older processor.json / config.json have no point fields at all: they load as 'no clouds'."""
    vla = _vla(goal=False)
    vla.save_pretrained(tmp_path / "old")
    proc = json.loads((tmp_path / "old" / "processor.json").read_text())
    for k in ("obs_points", "goal_points", "point_colors", "point_center", "point_scale", "point_pipeline",
              "point_cameras"):  # fmt: skip
        proc["config"].pop(k)
    (tmp_path / "old" / "processor.json").write_text(json.dumps(proc))
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    cfg["model"].pop("goal_points")
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    back = VLA.from_pretrained(tmp_path / "old")
    assert back.vlm.goal_encoder is None and not back.processor.points.enabled
    obs = {k: v for k, v in _obs(4).items() if not k.startswith(("goal/", "pointcloud/"))}
    np.testing.assert_array_equal(back.predict_action(obs), vla.predict_action(obs))


def test_env_check_before_the_first_episode():
    proc = {"goal_points": 64, "obs_points": 0}
    check_env_provides_clouds(proc, {"goal_points": 64}, ["arrange", "stack_goal"])
    with pytest.raises(ValueError, match=r"tasks \['pick'\] give no goal cloud"):
        check_env_provides_clouds(proc, {"goal_points": 64}, ["pick"])
    check_env_provides_clouds(proc, {"goal_points": 64}, ["pick"], goal_given=True)
    with pytest.raises(ValueError, match="set env.goal_points=64"):
        check_env_provides_clouds(proc, {"goal_points": 1024}, ["arrange"])
    cam = {
        "name": "static",
        "K": np.eye(3).tolist(),
        "width": 128,
        "height": 128,
        "base_T_cam": np.eye(4).tolist(),
    }
    obs_proc = {"obs_points": 64, "point_cameras": [cam]}
    check_env_provides_clouds(obs_proc, {"depth": True, "cameras": ["static"], "image_size": 128}, ["pick"])
    with pytest.raises(ValueError, match="set env.depth=true.*set env.image_size=128"):
        check_env_provides_clouds(
            obs_proc, {"depth": False, "cameras": ["static"], "image_size": 64}, ["pick"]
        )


@pytest.fixture(scope="module")
def goal_store(tmp_path_factory):
    from vla.commands.collect import main as collect

    out = tmp_path_factory.mktemp("arrange") / "a.zarr"
    args = [
        "task.name=arrange_one", "episodes=3", "env.image_size=32", "env.cameras=[static]", "env.depth=true",
        "env.goal_points=64", "env.goal_image_size=64", "record_clouds=true", "per_frame_clouds=true",
        "pointcloud.num_points=64", f"out={out}",
    ]  # fmt: skip
    assert collect(args) == 0
    return out


def test_goal_conditioned_vla_trains_on_a_goal_store_and_runs_through_vla_eval(goal_store, tmp_path):
    from vla.cli import main as cli
    from vla.core.config import compose, to_dataclass
    from vla.data.store import EpisodeStore
    from vla.data.windows import WindowDataset, WindowSpec
    from vla.commands.eval import EvalConfig, evaluate
    from vla.pointcloud.episode_clouds import EpisodeClouds

    store = EpisodeStore.open(goal_store)
    assert "goal/points" not in store.features and "pointcloud/points" in store.features
    clouds = EpisodeClouds.open(store)
    assert clouds.names(0) == ["goal", "final"] and clouds.get(0, "goal")[0].shape == (64, 3)
    ds = WindowDataset(goal_store, WindowSpec(goal_cloud="auto"), episodes=[1])
    np.testing.assert_array_equal(ds[3]["goal/points"].numpy(), clouds.get(1, "goal")[0])

    run = tmp_path / "run"
    args = [
        str(goal_store), f"out={run}", "cameras=[static]", "threads=1", "val_episodes=0", "trainer.steps=3",
        "trainer.batch_size=4", "trainer.save_every=3", "trainer.progress=false",
        "model.vision.image_size=32", "model.goal_points.num_groups=8", "model.goal_points.in_features=6",
        "model.points.num_groups=8", "model.points.in_features=6",
    ]  # fmt: skip
    assert cli(["train", *args]) == 0
    ck = next((run / "checkpoints").glob("step_*"))
    proc = json.loads((ck / "processor.json").read_text())["config"]
    assert proc["goal_points"] == 64 and proc["obs_points"] == 64 and proc["point_cameras"][0]["width"] == 32
    env = [
        "env.image_size=32",
        "env.cameras=[static]",
        "env.depth=true",
        "env.goal_points=64",
        "env.goal_image_size=64",
    ]
    out = tmp_path / "eval"
    eval_args = [
        "tasks=[arrange_one]",
        "episodes=1",
        "max_episode_steps=4",
        "references=[]",
        "failure_videos=0",
    ]
    assert cli(["eval", f"checkpoint={run}", *env, *eval_args, f"out={out}", "progress=false"]) == 0
    results = json.loads((out / "results.json").read_text())
    ep = results["episodes"][0]
    assert ep["error"] is None and ep["length"] == 4
    # no depth, or a task without a goal cloud: `vla eval` stops before the first episode with the fix
    shutil.rmtree(out)
    no_depth = [a for a in env if not a.startswith("env.depth")] + ["env.depth=false"]
    with pytest.raises(ValueError, match="env.depth=true"):
        evaluate(to_dataclass(compose("eval", [f"checkpoint={run}", *no_depth, *eval_args]), EvalConfig))
    no_goal = [a if a != "tasks=[arrange_one]" else "tasks=[pick]" for a in eval_args]
    with pytest.raises(ValueError, match="no goal cloud"):
        evaluate(to_dataclass(compose("eval", [f"checkpoint={run}", *env, *no_goal]), EvalConfig))
    assert not out.exists()
