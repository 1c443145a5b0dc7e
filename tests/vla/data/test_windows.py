"""Windows sampler: exact windows, padding masks at episode edges, filters, resize, DataLoader workers."""

import pickle
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from vla.data.store import EpisodeStore
from vla.data.synthetic import episode, features
from vla.data.windows import WindowDataset, WindowSpec, resize_frames, window_indices
from vla.core.types import FeatureType

LENGTHS = [5, 1, 8]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("win") / "s.zarr"
    feats = features(extra=True)
    s = EpisodeStore.create(path, feats, fps=10)
    for i, t in enumerate(LENGTHS):
        s.append_episode(
            episode(feats, t, seed=i + 1),
            {"instruction": f"task {i}", "split": "val" if i == 1 else "train", "task": "pick"},
        )
    return path


def test_window_indices_edges():
    obs, obs_pad, act, act_pad = window_indices(t=10, start=10, end=13, n_obs=3, n_action=5)
    assert obs.tolist() == [10, 10, 10] and obs_pad.tolist() == [True, True, False]
    assert act.tolist() == [10, 11, 12, 12, 12] and act_pad.tolist() == [False, False, False, True, True]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 50), st.integers(1, 30), st.integers(1, 6), st.integers(1, 10), st.data())
def test_window_indices_properties(start, length, n_obs, n_action, data):
    t = data.draw(st.integers(start, start + length - 1))
    obs, obs_pad, act, act_pad = window_indices(t, start, start + length, n_obs, n_action)
    assert obs[-1] == t and act[0] == t and obs.shape == (n_obs,) and act.shape == (n_action,)
    assert np.all((obs >= start) & (obs < start + length)) and np.all((act >= start) & (act < start + length))
    assert np.all(np.diff(obs) >= 0) and np.all(np.diff(act) >= 0)
    # padding marks exactly the clamped steps, and only at the edges
    assert obs_pad.sum() == max(0, n_obs - (t - start + 1)) and not obs_pad[-1]
    assert act_pad.sum() == max(0, n_action - (start + length - t)) and not act_pad[0]
    assert np.all(obs[obs_pad] == start) and np.all(act[act_pad] == start + length - 1)


def test_every_window_is_exact(store_path):
    spec = WindowSpec(n_obs=3, n_action=4)
    ds = WindowDataset(store_path, spec)
    assert len(ds) == sum(LENGTHS)
    seen = 0
    for i in range(len(ds)):
        s = ds[i]
        ep, f = s["episode_index"], s["frame_index"]
        t = LENGTHS[ep]
        obs_frames = [max(f - 2 + j, 0) for j in range(3)]
        act_frames = [min(f + j, t - 1) for j in range(4)]
        assert s["state"].shape == (3, 15) and s["action"].shape == (4, 7)
        assert s["images/front"].shape == (3, 16, 16, 3) and s["images/front"].dtype == torch.uint8
        assert s["state"][:, 0].tolist() == [(ep + 1) * 1000 + x for x in obs_frames]
        assert s["action"][:, 0].tolist() == [(ep + 1) * 1000 + x for x in act_frames]
        assert s["images/front"][:, 0, 0, 0].tolist() == obs_frames
        assert s["obs_is_pad"].tolist() == [f - 2 + j < 0 for j in range(3)]
        assert s["action_is_pad"].tolist() == [f + j >= t for j in range(4)]
        assert s["instruction"] == f"task {ep}"
        assert s["seg/front"].dtype == torch.int32 and s["depth/front"].shape == (3, 16, 16)
        seen += 1
    assert seen == 14
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_filters_keys_and_resize(store_path):
    ds = WindowDataset(
        store_path, WindowSpec(obs_keys=["images/front", "seg/front"], image_size=[8, 12]), split="train"
    )
    assert sorted({ds[i]["episode_index"] for i in range(len(ds))}) == [0, 2]
    s = ds[0]
    assert set(s) == {
        "images/front",
        "seg/front",
        "action",
        "obs_is_pad",
        "action_is_pad",
        "instruction",
        "episode_index",
        "frame_index",
    }
    assert s["images/front"].shape == (1, 8, 12, 3) and s["seg/front"].shape == (1, 8, 12)
    assert len(WindowDataset(store_path, episodes=[1, 2])) == 9
    assert len(WindowDataset(store_path, episodes=[1], split="train")) == 0
    with pytest.raises(ValueError, match="obs key 'images/left' is not a feature"):
        WindowDataset(store_path, WindowSpec(obs_keys=["images/left"]))
    with pytest.raises(ValueError, match="n_obs and n_action must be >= 1"):
        WindowDataset(store_path, WindowSpec(n_obs=0))


def test_resize_frames_values():
    img = torch.full((2, 10, 10, 3), 200, dtype=torch.uint8)
    out = resize_frames(img, [5, 4], FeatureType.VISUAL)
    assert out.shape == (2, 5, 4, 3) and torch.all(out == 200)
    seg = torch.arange(16, dtype=torch.int32).reshape(1, 4, 4) + 2_000_000_001
    out = resize_frames(seg, [2, 2], FeatureType.SEGMENTATION)
    assert set(out.flatten().tolist()) <= set(seg.flatten().tolist())  # nearest: only existing ids


def test_dataloader_with_workers_matches_single_process(store_path):
    ds = WindowDataset(store_path, WindowSpec(n_obs=2, n_action=3))
    single = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2)
    batches = list(loader)
    assert sum(b["action"].shape[0] for b in batches) == len(ds)
    act = torch.cat([b["action"] for b in batches])
    img = torch.cat([b["images/front"] for b in batches])
    assert act.shape == (len(ds), 3, 7) and img.shape == (len(ds), 2, 16, 16, 3)
    assert torch.equal(act, torch.stack([s["action"] for s in single]))
    assert torch.equal(img, torch.stack([s["images/front"] for s in single]))
    assert [x for b in batches for x in b["instruction"]] == [s["instruction"] for s in single]
    shipped = pickle.loads(pickle.dumps(ds))  # what a worker receives: no open handles, no cached arrays
    assert shipped._pid is None and shipped._lowdim == {} and shipped._readers == {}
    assert torch.equal(shipped[3]["action"], single[3]["action"])
    np.testing.assert_array_equal(batches[0]["obs_is_pad"][0].numpy(), [True, False])


def test_data_config_group_builds_dataset_and_normalizer(store_path, tmp_path, monkeypatch):
    from vla.core.config import compose, config_dir
    from vla.data.config import make_dataset, make_normalizer

    (tmp_path / "data").mkdir()
    shutil.copy(config_dir() / "data" / "store.yaml", tmp_path / "data" / "store.yaml")
    (tmp_path / "train_demo.yaml").write_text("defaults:\n  - data: store\n  - _self_\n")
    monkeypatch.setenv("VLA_CONFIG_DIR", str(tmp_path))
    cfg = compose(
        "train_demo", [f"data.path={store_path}", "data.n_obs=2", "data.n_action=3", "data.split=train"]
    )
    ds = make_dataset(cfg.data)
    assert ds.spec.n_obs == 2 and ds.spec.n_action == 3 and len(ds) == 13  # episodes 0 and 2
    norm = make_normalizer(cfg.data)
    assert norm.mode("action") == "q99" and norm.mode("state") == "meanstd"
    assert torch.all(norm.normalize("action", ds[0]["action"]).abs() <= 1)


def test_goal_cloud_per_sample_from_episode_clouds(tmp_path):
    """The episode's goal cloud (stored once, beside the store) comes with every window of that episode;
    files of another recording (seed/length mismatch) and stores without clouds are clear errors."""
    from vla.pointcloud.episode_clouds import write_episode_clouds

    feats = features()
    path = tmp_path / "g.zarr"
    s = EpisodeStore.create(path, feats, fps=10)
    rng = np.random.default_rng(0)
    goals = [rng.uniform(0, 1, (16, 3)).astype(np.float32) for _ in range(2)]
    for i, t in enumerate([4, 6]):
        write_episode_clouds(
            path, i, seed=10 + i, length=t, clouds={"goal": (goals[i], np.full((16, 3), i, np.uint8))}
        )
        s.append_episode(episode(feats, t, seed=i), {"instruction": "arrange", "seed": 10 + i})
    ds = WindowDataset(path, WindowSpec(n_obs=2, goal_cloud="auto"))
    for i in range(len(ds)):
        item = ds[i]
        e = item["episode_index"]
        np.testing.assert_array_equal(item["goal/points"].numpy(), goals[e])
        assert item["goal/colors"].shape == (16, 3) and int(item["goal/colors"][0, 0]) == e
    assert "goal/points" not in WindowDataset(path, WindowSpec())[0]
    with pytest.raises(KeyError, match="no 'final' cloud"):
        WindowDataset(path, WindowSpec(goal_cloud="final"))
    with pytest.raises(ValueError, match="goal_cloud must be"):
        WindowDataset(path, WindowSpec(goal_cloud="best"))
    write_episode_clouds(path, 1, seed=99, length=6, clouds={"goal": (goals[1], np.zeros((16, 3), np.uint8))})
    with pytest.raises(ValueError, match="seed 99 .* episode 1 of the store has seed 11"):
        WindowDataset(path, WindowSpec(goal_cloud="auto"))
    plain = tmp_path / "p.zarr"
    EpisodeStore.create(plain, feats, fps=10).append_episode(episode(feats, 3, seed=0), {"instruction": "x"})
    with pytest.raises(ValueError, match="no episode goal clouds"):
        WindowDataset(plain, WindowSpec(goal_cloud="auto"))


def test_cached_frames_give_the_samples_read_from_disk(store_path):
    """Frames decoded once into memory (cache_mb) and frames read per sample are the same windows."""
    spec = WindowSpec(n_obs=2, n_action=3)
    cached = WindowDataset(store_path, spec, episodes=[0, 2])
    disk = WindowDataset(store_path, spec, episodes=[0, 2], cache_mb=0)
    for i in range(len(cached)):
        a, b = cached[i], disk[i]
        for k in a:
            assert torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k], k
    assert set(cached._cached) == {k for k in cached._readers} and not disk._cached
    # only the selected episodes are held: 5 + 8 frames per image key
    assert all(v.shape[0] == LENGTHS[0] + LENGTHS[2] for v in cached._cached.values())
    tiny = WindowDataset(store_path, spec, cache_mb=1e-4)  # over the budget: read per sample
    tiny[0]
    assert not tiny._cached
    again = pickle.loads(pickle.dumps(cached))  # a worker's copy decodes its own cache
    assert not again._cached and torch.equal(again[3]["images/front"], cached[3]["images/front"])
