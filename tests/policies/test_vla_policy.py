"""VLAPolicy end to end: collect a tiny pick store -> `vla train` a few steps -> `vla eval checkpoint=...`,
plus the policy's own contract (history, chunk queue from the registry) and env-mismatch errors that come
before the first episode."""

import json

import numpy as np
import pytest
import torch

from vla.core.policy import make_policy
from policies.vla import VLAPolicy
from policies.wrappers import ActionChunkQueue
from vla.cli import main as cli
from vla.models.checkpoint import Checkpoint

ENV = ["env.image_size=32", "env.depth=false"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    store, run = root / "pick.zarr", root / "run"
    assert cli(["collect", "task=pick", "episodes=2", *ENV, f"out={store}"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli(
            [
                "train",
                str(store),
                f"out={run}",
                "chunk_len=2",
                "val_episodes=1",
                "model.vision.image_size=32",
                "model.vision.hf.patch_size=8",
                "trainer.steps=6",
                "trainer.batch_size=8",
                "trainer.progress=false",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return run


def test_collect_train_eval_end_to_end(trained_run, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", f"checkpoint={trained_run}", "episodes=2", "references=[]", *ENV]
    args += ["max_episode_steps=8", "failure_videos=1", "success_videos=0", "progress=false", f"out={out}"]
    assert cli(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["policy"] == "vla" and list(res["per_policy"]) == ["vla"]
    eps = res["episodes"]
    assert len(eps) == 2 and all(e["error"] is None for e in eps)
    assert all(1 <= e["length"] <= 8 for e in eps)
    m = res["per_policy"]["vla"]["tasks"]["pick"]
    assert m["episodes"] == 2 and m["control_rate_hz"] > 0
    assert (out / "report.md").is_file()


def test_env_mismatch_fails_before_the_first_episode(trained_run, tmp_path, capsys):
    out = tmp_path / "bad"
    code = cli(
        ["eval", f"checkpoint={trained_run}", "env.cameras=[static]", *ENV, f"out={out}", "episodes=1"]
    )
    assert code == 2  # a checkpoint that does not fit the env is a bad argument: one line, exit 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wrist" in err[0]
    assert not (out / "results.json").exists()
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        Checkpoint.open(tmp_path)


def test_policy_contract_history_and_queue(trained_run):
    from vla.data.windows import WindowDataset, WindowSpec

    policy = VLAPolicy.from_pretrained(trained_run)  # a run dir resolves to checkpoints/latest
    assert policy.chunk_len == 2
    ds = WindowDataset(
        trained_run.parent / "pick.zarr", WindowSpec(obs_keys=["images/static", "images/wrist", "state"])
    )
    s = ds[3]
    obs = {k: s[k][0].numpy() for k in ("images/static", "images/wrist", "state")}
    obs["instruction"] = s["instruction"]
    frozen = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in obs.items()}
    policy.reset()
    a = policy.select_action(obs)
    assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert all(np.array_equal(obs[k], frozen[k]) for k in obs)  # obs never mutated
    assert np.array_equal(policy.predict_chunk(obs)[0], a)  # deterministic
    wrapped = make_policy("vla", checkpoint=str(trained_run))  # default: execute the whole chunk
    assert isinstance(wrapped, ActionChunkQueue) and wrapped.execute_steps == 2
    wrapped.reset()
    first, second = wrapped.select_action(obs), wrapped.select_action(obs)
    np.testing.assert_array_equal(np.stack([first, second]), policy.predict_chunk(obs))
    assert wrapped.inferences == 1


def _an_observation(trained_run):
    from vla.data.windows import WindowDataset, WindowSpec

    keys = ("images/static", "images/wrist", "state")
    s = WindowDataset(trained_run.parent / "pick.zarr", WindowSpec(obs_keys=list(keys)))[3]
    return {**{k: s[k][0].numpy() for k in keys}, "instruction": s["instruction"]}


def test_action_bounds_are_the_env_action_space():
    import gymnasium as gym

    import sim
    from policies.vla import action_bounds

    for space in ("ee_delta", "joint_pos"):
        env = gym.make(sim.ENV_ID, task="pick", cameras=[], image_size=16, depth=False, action_space=space)
        try:
            low, high = action_bounds(space)
            np.testing.assert_array_equal(low, env.action_space.low)
            np.testing.assert_array_equal(high, env.action_space.high)
        finally:
            env.close()


def test_actions_leave_inside_the_bounds_and_clips_are_counted(trained_run):
    """A checkpoint whose normaliser spans 10x its data's action range (as if fitted on another robot's
    wider steps) predicts actions outside the env's box: the policy clips them into it (the gripper into
    [0, 1]) and counts them in `stats`; clip=False passes them through, counted the same."""
    from policies.vla import action_bounds
    from vla.core.normalizer import Normalizer

    obs = _an_observation(trained_run)
    low, high = action_bounds("ee_delta")
    plain = VLAPolicy.from_pretrained(trained_run)
    assert plain.stats == {"actions": 0, "clipped": 0, "clipped_per_dim": [0] * 7}
    chunk = plain.predict_chunk(obs)
    assert plain.stats["actions"] == 2 and np.all((chunk >= low) & (chunk <= high))

    def widened(policy: VLAPolicy) -> VLAPolicy:
        d = policy.processor.normalizer.to_dict()
        st = d["stats"]["action"]
        lo, hi = np.array(st["q01"]), np.array(st["q99"])
        mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.01)
        st["q01"], st["q99"] = (mid - 10 * half).tolist(), (mid + 10 * half).tolist()
        policy.processor.normalizer = Normalizer.from_dict(d)
        return policy

    raw_policy = widened(VLAPolicy.from_pretrained(trained_run, clip=False))
    raw = raw_policy.predict_chunk(obs)
    outside = (raw < low) | (raw > high)  # [T,D]
    assert outside.any() and outside[:, 6].any()  # the gripper too
    assert raw_policy.stats["clipped"] == int(outside.any(axis=1).sum())
    assert raw_policy.stats["clipped_per_dim"] == outside.sum(axis=0).tolist()

    policy = widened(VLAPolicy.from_pretrained(trained_run))
    clipped = policy.predict_chunk(obs)
    np.testing.assert_array_equal(clipped, np.clip(raw, low, high))
    assert policy.stats == raw_policy.stats
    a = policy.select_action(obs)
    assert np.all((a >= low) & (a <= high)) and 0.0 <= a[6] <= 1.0
    assert policy.stats["actions"] == 4 and policy.stats["clipped"] == 2 * raw_policy.stats["clipped"]
    policy.reset()  # the counts are the policy's lifetime's
    assert policy.stats["actions"] == 4
