"""VLAProcessor: action round trip (normalised once, for "normalized" and "raw" tokenizers), the torch
decoding the model's metrics use (equal to the tokenizer's), postprocess of both heads' outputs,
observation assembly with history, training collate layout (float32 tensors, normalised targets, the same
batch from tensors or arrays, inputs untouched), save/load identity and clear errors on bad input."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from action_tokenizers import make_tokenizer
from vla.backbones.language import load_text_tokenizer
from vla.backbones.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from vla.core.normalizer import Normalizer, compute_stats
from vla.backbones.text import IGNORE_INDEX
from vla.processor import ProcessorConfig, VLAProcessor

RNG = np.random.default_rng(0)
ACTIONS = (RNG.standard_normal((500, 7)) * [0.01, 0.01, 0.01, 0.05, 0.05, 0.05, 0.4]).astype(np.float32)
STATES = RNG.standard_normal((500, 15)).astype(np.float32)
NORM = Normalizer(
    {"action": compute_stats(ACTIONS), "state": compute_stats(STATES)}, {"action": "q99", "state": "meanstd"}
)


def _proc(tokenizer="uniform", chunk_len=2, n_obs=1, cameras=("static",), use_state=True):
    tok = make_tokenizer(tokenizer, action_dim=7, chunk_len=chunk_len).fit(
        ACTIONS[: (len(ACTIONS) // chunk_len) * chunk_len]
    )
    cfg = ProcessorConfig(cameras=list(cameras), use_state=use_state, state_dim=15, n_obs=n_obs)
    return VLAProcessor.build(
        cfg, load_text_tokenizer("builtin:tiny"), tok, NORM, ImageTransform(32, IMAGENET_MEAN, IMAGENET_STD)
    )


def _obs(seed, cams=("static",), size=48):
    r = np.random.default_rng(seed)
    o = {f"images/{c}": r.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams}
    return {**o, "state": r.standard_normal(15).astype(np.float32), "instruction": "lift the red cube"}


IN_RANGE = arrays(np.float64, (3, 2, 7), elements=st.floats(-0.9, 0.9))


@settings(max_examples=25, deadline=None)
@given(norm_actions=IN_RANGE)
def test_uniform_round_trip_within_half_a_bin_in_raw_units(norm_actions):
    proc = _proc("uniform")
    raw = NORM.unnormalize("action", norm_actions)  # [3,2,7] inside the q01..q99 range
    ids = proc.action_token_ids(raw)  # [3,14] LM ids
    assert ids.shape == (3, 14) and np.isin(ids, proc.action_lm_ids.numpy()).all()
    back, valid = proc.decode_actions(ids)
    assert valid.all() and back.shape == (3, 2, 7) and back.dtype == np.float32
    lo, hi = NORM.stats["action"]["q01"], NORM.stats["action"]["q99"]
    half_bin = (hi - lo) / 512  # half of a 2/256-wide bin of [-1, 1], in raw units
    assert np.all(np.abs(back - raw) <= half_bin + 1e-6)


def test_raw_tokenizer_is_not_normalised_twice():
    proc = _proc("openvla", chunk_len=1)
    assert not proc.normalize_actions
    raw = ACTIONS[:20, None]  # [20,1,7]
    back, valid = proc.decode_actions(proc.action_token_ids(raw))
    # openvla's own q01/q99 bins over raw units: error bounded by one bin of (q99 - q01) / 255
    lo, hi = np.quantile(ACTIONS, 0.01, axis=0), np.quantile(ACTIONS, 0.99, axis=0)
    inside = (raw[:, 0] > lo) & (raw[:, 0] < hi)
    assert valid.all() and np.all(
        np.abs(back[:, 0] - raw[:, 0])[inside] <= (hi - lo)[None].repeat(20, 0)[inside] / 255 + 1e-6
    )
    # a normalised-input processor on the same data gives different ids: the input space matters
    assert not np.array_equal(proc.action_token_ids(raw), _proc("uniform", 1).action_token_ids(raw))


def test_non_action_ids_make_the_chunk_invalid():
    proc = _proc("uniform", chunk_len=1)
    ids = proc.action_token_ids(ACTIONS[:2, None])
    ids[1, 3] = 5  # an ordinary text id
    _, valid = proc.decode_actions(ids)
    assert valid.tolist() == [True, False]
    acts, valid = proc.decode_actions([ids[0], ids[0][:4]])  # a row too short for the chunk
    assert acts.shape == (2, 1, 7) and valid.tolist() == [True, False]


def test_observation_history_and_cameras():
    proc = _proc(n_obs=2, cameras=("static", "wrist"))
    out = proc.preprocess([_obs(0, ("static", "wrist"))])  # one frame: repeated to fill the history
    assert out["images"].shape == (1, 4, 3, 32, 32)
    assert torch.equal(out["images"][0, 0], out["images"][0, 2])  # (t0 static) == (t1 static)
    assert out["state"].shape == (1, 30) and torch.equal(out["state"][0, :15], out["state"][0, 15:])
    ids = out["input_ids"][0].tolist()
    assert ids[0] == proc.text_tokenizer.bos_token_id
    assert "What action should the robot take to lift the red cube?" in proc.text_tokenizer.decode(ids)
    two = proc.preprocess([_obs(0, ("static", "wrist")), _obs(1, ("static", "wrist"))])
    assert not torch.equal(two["images"][0, 0], two["images"][0, 2])
    with pytest.raises(ValueError, match="images/wrist"):
        proc.preprocess([_obs(0, ("static",))])
    with pytest.raises(ValueError, match="instruction"):
        proc.preprocess([{k: v for k, v in _obs(0, ("static", "wrist")).items() if k != "instruction"}])


def _samples(n=2):
    out = []
    for i, text in enumerate(["lift the red cube", "pick up the blue block and raise it high"][:n]):
        o = _obs(i)
        out.append(
            {
                "images/static": o["images/static"][None],
                "state": o["state"][None],
                "action": ACTIONS[i : i + 2],
                "instruction": text,
            }
        )
    return out


def test_collate_labels_only_on_action_tokens_and_eos():
    proc = _proc(chunk_len=2)
    samples = _samples()
    b = proc.collate(samples)
    assert (
        b["images"].shape == (2, 1, 3, 32, 32)
        and b["state"].shape == (2, 15)
        and b["actions"].shape == (2, 2, 7)
    )
    for row in range(2):
        lab = b["labels"][row][b["attention_mask"][row].bool()]
        answer = lab[lab != IGNORE_INDEX].tolist()
        assert len(answer) == 15 and answer[-1] == proc.text_tokenizer.eos_token_id
        assert np.isin(answer[:-1], proc.action_lm_ids.numpy()).all()
    assert b["attention_mask"][0].sum() < b["attention_mask"][1].sum()  # right padding of the shorter row
    with pytest.raises(ValueError, match=r"action \[B, T=2, D=7\]"):
        proc.collate([{**samples[0], "action": ACTIONS[:3]}])


def test_collate_gives_normalised_float32_targets_from_tensors_or_arrays():
    """The model gets normalised targets (the processor normalises, for both heads) and the raw chunk for
    raw-unit metrics, all float32 tensors; window tensors and numpy arrays collate to the same batch."""
    proc = _proc(chunk_len=2)
    arrays = _samples()
    tensors = [{k: torch.as_tensor(v) if k != "instruction" else v for k, v in s.items()} for s in arrays]
    before = [{k: np.array(v, copy=True) for k, v in s.items() if k != "instruction"} for s in arrays]
    a, b = proc.collate(arrays), proc.collate(tensors)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    raw = torch.as_tensor(np.stack([s["action"] for s in arrays]))  # [2,2,7]
    assert torch.equal(a["raw_actions"], raw)
    assert torch.equal(a["actions"], NORM.normalize("action", raw))
    assert float(a["actions"].abs().max()) <= 1.0
    assert all(v.dtype in (torch.float32, torch.long) for v in a.values())
    for s, kept in zip(arrays, before, strict=True):  # the samples are not changed
        assert all(np.array_equal(s[k], kept[k]) for k in kept)
    # the ids are the tokenizer's ids of exactly these normalised targets
    tok_ids = proc.action_tokenizer.encode(a["actions"].numpy())
    assert np.array_equal(proc.action_token_ids(raw), proc.vocab.to_lm(tok_ids))


@pytest.mark.parametrize("tokenizer", ["uniform", "quantile", "openvla"])
def test_torch_bin_decoding_equals_the_tokenizers(tokenizer):
    """actions_from_token_ids (torch, the model's teacher-forced action_l1) == decode_actions (numpy)."""
    proc = _proc(tokenizer, chunk_len=2)
    assert proc.has_bins
    raw = torch.as_tensor(ACTIONS[:40].reshape(20, 2, 7))
    lm_ids = proc.action_token_ids(raw)  # [20,14]
    token_ids, _ = proc.vocab.from_lm(lm_ids)
    got = proc.actions_from_token_ids(torch.as_tensor(token_ids))
    want, valid = proc.decode_actions(lm_ids)
    assert valid.all() and got.dtype == torch.float32 and got.shape == (20, 2, 7)
    np.testing.assert_array_equal(got.numpy(), want)
    assert not _proc("fast", chunk_len=4).has_bins


def test_postprocess_decodes_either_head():
    proc = _proc(chunk_len=2)
    raw = torch.as_tensor(ACTIONS[:6].reshape(3, 2, 7))
    normed = proc.normalize_action(raw)
    back = proc.postprocess({"actions": normed})  # continuous head: normalised chunks
    assert isinstance(back, np.ndarray) and back.dtype == np.float32 and back.shape == (3, 2, 7)
    np.testing.assert_array_equal(back, NORM.unnormalize("action", normed.numpy()))
    ids = torch.as_tensor(proc.action_token_ids(raw))  # token head: LM ids
    np.testing.assert_array_equal(proc.postprocess({"action_ids": ids}), proc.decode_actions(ids)[0])
    with pytest.raises(ValueError, match="'actions' or 'action_ids'"):
        proc.postprocess({"logits": ids})


def test_save_load_identical(tmp_path):
    """to_dict -> JSON -> from_dict (what a checkpoint's processor.json holds) rebuilds the same processor;
    the checkpoint module (tests/vla/models/test_checkpoint.py) owns the files."""
    proc = _proc("fast", chunk_len=4)
    proc.text_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    data = json.loads(json.dumps(proc.to_dict()))
    tok = load_text_tokenizer(str(tmp_path / "tokenizer"))
    back = VLAProcessor.from_dict(data, tok, proc.action_tokenizer, proc.normalizer)
    assert back.to_dict() == proc.to_dict()
    obs = _obs(3)
    a, b = proc.preprocess([obs]), back.preprocess([obs])
    assert all(torch.equal(a[k], b[k]) for k in a)
    chunk = ACTIONS[None, :4]
    assert [list(x) for x in proc.action_token_ids(chunk)] == [list(x) for x in back.action_token_ids(chunk)]
    with pytest.raises(ValueError, match="processor.json: expected format_version 1"):
        VLAProcessor.from_dict({**data, "format_version": 9}, tok, proc.action_tokenizer, proc.normalizer,
                               where="ck/processor.json")  # fmt: skip
    with pytest.raises(ValueError, match="malformed processor config"):
        VLAProcessor.from_dict({**data, "config": {"colour": 1}}, tok, proc.action_tokenizer, proc.normalizer)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="instruction"):
        ProcessorConfig(prompt="no placeholder").check()
    unfitted = make_tokenizer("fast", action_dim=7, chunk_len=4)
    with pytest.raises(ValueError, match="not fitted"):
        VLAProcessor.build(
            ProcessorConfig(cameras=["static"]),
            load_text_tokenizer("builtin:tiny"),
            unfitted,
            NORM,
            ImageTransform(32),
        )


def test_state_parts_select_normalised_parts_in_the_order_named():
    """`state_parts` keeps the named parts of the normalised state (vla.core.state's layout), in the order
    named, for every history frame: [gripper_width] is one feature; [gripper_width, ee_position] four."""
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=2).fit(ACTIONS)
    full, parts = (
        VLAProcessor.build(
            ProcessorConfig(cameras=["static"], state_dim=15, n_obs=2, state_parts=sp),
            load_text_tokenizer("builtin:tiny"),
            tok,
            NORM,
            ImageTransform(32, IMAGENET_MEAN, IMAGENET_STD),
        )
        for sp in ([], ["gripper_width", "ee_position"])
    )
    assert (full.cfg.model_state_dim, parts.cfg.model_state_dim) == (15, 4)
    history = [_obs(1), _obs(2)]
    a, b = full.preprocess(history)["state"], parts.preprocess(history)["state"]  # [1,30], [1,8]
    assert a.shape == (1, 30) and b.shape == (1, 8)
    frames = a.view(2, 15)
    assert torch.equal(b.view(2, 4), torch.cat([frames[:, 7:8], frames[:, 0:3]], dim=1))
    samples = [  # two-frame windows
        {**s, "state": np.repeat(s["state"], 2, 0), "images/static": np.repeat(s["images/static"], 2, 0)}
        for s in _samples()
    ]
    assert parts.collate(samples)["state"].shape == (2, 8)
    for bad in (["elbow"], ["gripper_width", "gripper_width"]):
        with pytest.raises(ValueError, match="state_parts must name distinct parts"):
            ProcessorConfig(state_parts=bad).check()
    with pytest.raises(ValueError, match="15-D state layout"):
        ProcessorConfig(state_parts=["gripper_width"], state_dim=8).check()
