"""The one mixture implementation: source proportions within tolerance over many batches (step-aware
sampler and the trainer's weighted sampler), schedules, stratified batches, resume, collation by task, and
robot-store mixtures (`build_mixture`) on the same MixtureDataset and per-sample weights, and the early-frame
and motion weights (`weigh_frames`, `vla train early_frames=K early_weight=W motion_weight=M`)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from vla.core.normalizer import compute_stats
from vla.data import synthetic
from vla.data.mixture import (
    MixtureBatchSampler,
    MixtureCollator,
    MixtureDataset,
    MixtureSource,
    Source,
    WeightSchedule,
    build_mixture,
    mixture_normalizer,
    per_sample_weights,
    weigh_frames,
    weighted_loss,
)
from vla.data.store import EpisodeStore
from vla.data.windows import WindowDataset, WindowSpec
from vla.training.sampler import ResumableBatchSampler


def _mix(w_robot=1.0, w_vqa=1.0, n_robot=1000, n_vqa=10):
    robot = TensorDataset(torch.arange(n_robot))
    vqa = [{"id": f"q{i}", "question": f"q{i}?"} for i in range(n_vqa)]
    return MixtureDataset([Source("robot", robot, w_robot), Source("vqa", vqa, w_vqa, loss_weight=0.5)])


def _share(mix, batches, name="vqa"):
    k = mix.names.index(name)
    idx = np.concatenate([np.asarray(b) for b in batches])
    src = np.searchsorted(mix.offsets, idx, side="right") - 1
    return float(np.mean(src == k))


@pytest.mark.parametrize(("w_robot", "w_vqa"), [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0)])
def test_sampler_proportions_within_tolerance(w_robot, w_vqa):
    mix = _mix(w_robot, w_vqa)
    sampler = MixtureBatchSampler(mix, batch_size=32, seed=1)
    it = iter(sampler)
    share = _share(mix, [next(it) for _ in range(400)])
    assert abs(share - w_vqa / (w_robot + w_vqa)) < 0.02, share


def test_trainer_sample_weights_give_the_same_proportions():
    mix = _mix(3.0, 1.0)
    w = mix.sample_weights()
    assert w.shape == (len(mix),) and abs(float(w.sum()) - 1) < 1e-9
    sampler = ResumableBatchSampler(len(mix), 32, seed=0, weights=w)
    it = iter(sampler)
    assert abs(_share(mix, [next(it) for _ in range(400)]) - 0.25) < 0.02
    # explicit weights (e.g. a schedule's value) override the sources' own
    w2 = mix.sample_weights({"robot": 1.0, "vqa": 1.0})
    assert abs(float(w2[-10:].sum()) - 0.5) < 1e-9


def test_items_are_tagged_and_collated_by_task():
    mix = _mix()
    item = mix[len(mix) - 1]
    assert item["task"] == "vqa" and item["id"] == "q9" and item["loss_weight"] == 0.5 and item["source"] == 1
    assert mix[0]["task"] == "robot" and torch.equal(mix[0]["sample"][0], torch.tensor(0))
    collate = MixtureCollator(
        {"robot": lambda xs: torch.stack([x[0] for x in xs]), "vqa": lambda xs: [x["id"] for x in xs]}
    )
    b = collate([mix[i] for i in (0, 1, 1000, 1005)])
    assert b["tasks"]["robot"].tolist() == [0, 1] and b["tasks"]["vqa"] == ["q0", "q5"]
    assert b["counts"] == {"robot": 2, "vqa": 2} and b["loss_weights"] == {"robot": 1.0, "vqa": 0.5}
    loss = weighted_loss(
        {"robot": torch.tensor(1.0), "vqa": torch.tensor(4.0)}, b["loss_weights"], b["counts"]
    )
    assert float(loss) == pytest.approx((2 * 1.0 + 2 * 0.5 * 4.0) / 3.0)
    with pytest.raises(ValueError, match="no collate function for task 'vqa'"):
        MixtureCollator({"robot": list})([mix[1000]])
    with pytest.raises(IndexError, match="out of range"):
        mix[len(mix)]


def test_schedule_interpolates_and_sampler_follows_it():
    sched = WeightSchedule([(0, {"robot": 1, "vqa": 1}), (100, {"robot": 3, "vqa": 1})])
    assert sched.weights_at(0)["vqa"] == pytest.approx(0.5)
    assert sched.weights_at(50) == pytest.approx({"robot": 2 / 3, "vqa": 1 / 3})
    assert sched.weights_at(10_000)["vqa"] == pytest.approx(0.25)
    mix = _mix()
    s = MixtureBatchSampler(mix, 64, schedule=sched, seed=3)
    early = _share(mix, [s.batch(step) for step in range(0, 20)])  # weights 0.5 .. 0.45
    late = _share(mix, [s.batch(step) for step in range(100, 300)])
    assert abs(late - 0.25) < 0.02 and abs(early - 0.475) < 0.04, (early, late)
    step_sched = WeightSchedule.from_config(
        [{"step": 0, "weights": {"robot": 1, "vqa": 1}}, {"step": 60, "weights": {"robot": 1, "vqa": 0}}],
        interpolate="step",
    )
    assert step_sched.segments(100) == [
        (0, 60, {"robot": 0.5, "vqa": 0.5}),
        (60, 100, {"robot": 1.0, "vqa": 0.0}),
    ]
    segs = sched.segments(200, every=50)
    assert [a for a, _, _ in segs] == [0, 50, 100, 150] and segs[0][2]["vqa"] > segs[-1][2]["vqa"]


def test_stratified_batches_hold_every_source_and_resume_exactly():
    mix = _mix(1.0, 1.0)
    s = MixtureBatchSampler(mix, 8, seed=5, stratified=True)
    it = iter(s)
    first = [next(it) for _ in range(6)]
    for b in first:
        assert _share(mix, [b]) == 0.5
    s.set_position(4)
    assert next(iter(s)) == first[4]
    ranks = [
        next(iter(MixtureBatchSampler(mix, 8, seed=5, stratified=True, rank=r, world_size=2))) for r in (0, 1)
    ]
    assert ranks[0] + ranks[1] == first[0]


def test_bad_mixtures_are_clear_errors():
    with pytest.raises(ValueError, match="source names must be unique"):
        MixtureDataset([Source("a", [1]), Source("a", [2])])
    with pytest.raises(ValueError, match="source 'b' is empty"):
        MixtureDataset([Source("a", [1]), Source("b", [])])
    with pytest.raises(ValueError, match="knot at step 5 names"):
        WeightSchedule([(0, {"a": 1}), (5, {"b": 1})])
    with pytest.raises(ValueError, match="schedule names"):
        MixtureBatchSampler(_mix(), 4, schedule=WeightSchedule.constant({"robot": 1}))
    with pytest.raises(ValueError, match="no weight for sources \\['vqa'\\]"):
        _mix().sample_weights({"robot": 1.0})


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=2, max_size=5).filter(lambda w: sum(w) > 0.1),
    batch=st.integers(1, 64),
    step=st.integers(0, 10_000),
)
def test_stratified_counts_are_the_exact_shares(weights, batch, step):
    mix = MixtureDataset([Source(f"s{i}", [0] * (i + 1), w) for i, w in enumerate(weights)])
    s = MixtureBatchSampler(mix, batch, stratified=True)
    n = s.counts(step, np.random.default_rng(0))
    exact = np.array(weights) / sum(weights) * batch
    assert n.sum() == batch and np.all(np.abs(n - exact) < 1.0)
    b = s.batch(step)
    assert len(b) == batch and all(0 <= i < len(mix) for i in b)


def test_per_sample_weights_draw_sources_in_proportion():
    w = per_sample_weights([100, 10], [1.0, 3.0])  # 100 samples of A, 10 of B; B drawn 3x as often
    assert w.shape == (110,) and float(w.sum()) == pytest.approx(1.0)
    sampler = ResumableBatchSampler(110, 10, seed=0, weights=w)
    it = iter(sampler)
    drawn = torch.tensor([i for _ in range(400) for i in next(it)])
    assert float((drawn >= 100).float().mean()) == pytest.approx(0.75, abs=0.03)
    assert float(per_sample_weights([5, 5], [1.0, 0.0])[5:].sum()) == 0.0  # a source can pause
    with pytest.raises(ValueError, match="positive sum"):
        per_sample_weights([5, 5], [0.0, 0.0])
    with pytest.raises(ValueError, match="source 1 has no samples"):
        per_sample_weights([5, 0], [1.0, 1.0])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    feats = synthetic.features(8, 8)
    paths = []
    for n_eps in (2, 1):
        path = tmp_path_factory.mktemp("mix") / f"s{n_eps}.zarr"
        st_ = EpisodeStore.create(path, feats, fps=10)
        for e in range(n_eps):
            st_.append_episode(synthetic.episode(feats, 6, 10 * n_eps + e), {"instruction": "lift it"})
        st_.close()
        paths.append(str(path))
    return paths


def test_store_mixture_is_a_mixture_dataset_of_windows(stores):
    spec = WindowSpec()
    mix, w, norm = build_mixture(
        [MixtureSource(stores[0], 1.0), MixtureSource(stores[1], 3.0)], spec, {"action": "q99"}
    )
    a, b = WindowDataset(stores[0], spec), WindowDataset(stores[1], spec)
    assert isinstance(mix, MixtureDataset) and mix.names == stores and len(mix) == len(a) + len(b)
    item, want = mix[len(a) + 1], b[1]
    assert item["task"] == stores[1] and item["source"] == 1
    for k, v in want.items():
        assert torch.equal(item[k], v) if isinstance(v, torch.Tensor) else item[k] == v, k
    assert torch.equal(w, per_sample_weights([len(a), len(b)], [1.0, 3.0]))
    assert float(w[len(a) :].sum()) == pytest.approx(0.75)
    assert norm.to_dict() == mixture_normalizer(stores, {"action": "q99"}).to_dict()  # below
    same, _, _ = build_mixture([MixtureSource(stores[0]), MixtureSource(stores[0])], spec, {})
    assert same.names == [f"{stores[0]}[0]", f"{stores[0]}[1]"]  # a store listed twice stays two sources
    with pytest.raises(ValueError, match="source 1 weight must be > 0"):
        build_mixture([MixtureSource(stores[0]), MixtureSource(stores[1], 0.0)], spec, {})


def test_a_mixture_is_normalised_with_the_statistics_of_all_its_frames(stores):
    """Not the first store's alone: with those, another store's actions outside the first's q01..q99 were
    clipped in the targets, and a policy could never output them."""
    modes = {"action": "q99", "state": "meanstd"}
    a, b = EpisodeStore.open(stores[0]), EpisodeStore.open(stores[1])
    norm = mixture_normalizer(stores, modes)
    for key in modes:
        union = np.concatenate([a.read(key, 0, a.num_frames), b.read(key, 0, b.num_frames)])  # [N,D]
        want = compute_stats(union)
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            np.testing.assert_allclose(norm.stats[key][name], want[name], rtol=1e-9, atol=1e-12)
    first_only = a.normalizer(modes)
    assert not np.array_equal(first_only.stats["action"]["q99"], norm.stats["action"]["q99"])
    # each distinct store once; one store gives its own (cached) statistics
    assert mixture_normalizer([stores[0], stores[1], stores[0]], modes).to_dict() == norm.to_dict()
    assert mixture_normalizer([stores[0]], modes).to_dict() == first_only.to_dict()
    with pytest.raises(KeyError, match="no feature 'aux/scene'"):
        mixture_normalizer(stores, {"aux/scene": "meanstd"})


def test_early_frames_weigh_more_and_every_source_keeps_its_share(stores):
    """Episodes of 6 frames; the first 2 of each at weight 3: 2 x 3 / (2 x 3 + 4) = 60% of a store's draws."""
    spec = WindowSpec()
    one = WindowDataset(stores[0], spec)  # 2 episodes
    pos = one.frame_positions()
    assert pos.tolist() == [0, 1, 2, 3, 4, 5] * 2
    assert pos.tolist() == [int(one[i]["frame_index"]) for i in range(len(one))]
    w = weigh_frames(one, None, early_frames=2, early_weight=3.0)
    assert w.shape == (12,) and float(w.sum()) == pytest.approx(1.0)
    assert float(w[torch.as_tensor(pos < 2)].sum()) == pytest.approx(0.6)
    assert torch.equal(weigh_frames(one, None, 0, 3.0), torch.full((12,), 1 / 12, dtype=torch.float64))
    mix, base, _ = build_mixture([MixtureSource(stores[0], 1.0), MixtureSource(stores[1], 3.0)], spec, {})
    w = weigh_frames(mix, base, early_frames=2, early_weight=3.0)
    assert float(w[12:].sum()) == pytest.approx(0.75)  # the sources' shares are those of `base`
    early = torch.as_tensor(np.concatenate([s.dataset.frame_positions() for s in mix.sources]) < 2)
    assert float(w[:12][early[:12]].sum() / w[:12].sum()) == pytest.approx(0.6)
    sampler = ResumableBatchSampler(len(mix), 6, seed=0, weights=w)
    it = iter(sampler)
    drawn = torch.tensor([i for _ in range(500) for i in next(it)])
    assert float(early[drawn].float().mean()) == pytest.approx(0.6, abs=0.03)
    with pytest.raises(ValueError, match="early_weight > 0"):
        weigh_frames(one, None, 2, 0.0)
    with pytest.raises(ValueError, match=r"weights \(5,\) for 12 samples"):
        weigh_frames(one, torch.ones(5, dtype=torch.float64), 2, 3.0)
    with pytest.raises(ValueError, match="needs episode windows"):
        weigh_frames(_mix(), None, 2, 3.0)


def test_motion_weights_follow_the_xy_action_and_keep_each_sources_share(stores):
    """motion_weight M: each frame weighs 1 + M x min(1, |(dx, dy)| / the store's 99th percentile)."""
    spec = WindowSpec()
    one = WindowDataset(stores[0], spec)
    acts = np.asarray(EpisodeStore.open(stores[0]).read("action", 0, 12))  # the 2 episodes' 12 frames
    assert np.array_equal(one.current_actions(), acts)
    xy = one.current_actions(("dx", "dy"))
    assert np.array_equal(xy, acts[:, :2])
    size = np.linalg.norm(xy, axis=1)
    factor = 1 + 2.0 * np.minimum(size / np.quantile(size, 0.99), 1.0)
    w = weigh_frames(one, None, motion_weight=2.0)
    np.testing.assert_allclose(w.numpy(), factor / factor.sum(), rtol=1e-6)
    both = weigh_frames(one, None, early_frames=1, early_weight=3.0, motion_weight=2.0)
    both_factor = factor * np.where(one.frame_positions() < 1, 3.0, 1.0)
    np.testing.assert_allclose(both.numpy(), both_factor / both_factor.sum(), rtol=1e-6)
    mix, base, _ = build_mixture([MixtureSource(stores[0], 1.0), MixtureSource(stores[1], 3.0)], spec, {})
    assert float(weigh_frames(mix, base, motion_weight=2.0)[12:].sum()) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"no dimension named \['yaw'\]"):
        one.current_actions(("dx", "yaw"))
    with pytest.raises(ValueError, match="motion_weight >= 0"):
        weigh_frames(one, None, motion_weight=-1.0)
