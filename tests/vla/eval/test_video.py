"""The video recorder observer: depth keys grey-mapped, a missing key named, and in a rollout the video ends
with the state after the last action (the writer itself: tests/vla/data/test_video.py); captions: `annotate`
writes wrapped text in a darkened top band of a copy, `caption_episode` adds steps and the outcome."""

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest

import sim
from sim.experts import make_expert
from vla.core.rollout import run_episode
from vla.eval.video import VideoRecorder, annotate, caption_episode


def test_recorder_observer_with_depth_key(tmp_path):
    rec = VideoRecorder(tmp_path / "d.gif", key="depth/static")
    rec.on_episode_start({}, {})
    for i in range(3):
        rec.on_step({"depth/static": np.full((8, 8), 0.3 + 0.4 * i, np.float32)}, None, 0.0, False, False, {})
    rec.on_episode_end(None)
    assert rec.written is not None and iio.imread(rec.written, index=None).shape[0] == 3
    with pytest.raises(ValueError, match="no key 'images/wrist'"):
        VideoRecorder(tmp_path / "e.mp4", camera="wrist").on_step({"state": 0}, None, 0, False, False, {})


def test_recorder_in_a_rollout_ends_with_the_final_state(tmp_path):
    env = gym.make(sim.ENV_ID, task="pick", cameras=("wrist",), image_size=32, depth=False)
    rec = VideoRecorder(tmp_path / "pick.gif", camera="wrist")
    res = run_episode(env, make_expert("pick"), 0, observers=[rec])
    env.close()
    assert res.success and len(rec.frames) == res.length + 1 and rec.written.is_file()


def _text_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.nonzero((before != after).any(axis=(1, 2)))[0]


def test_annotate_writes_wrapped_text_in_a_top_band_of_a_copy():
    frame = np.full((256, 256, 3), 150, np.uint8)
    out = annotate(frame, ["pick up the red cube", "step 3/10"])
    assert (frame == 150).all() and out.shape == frame.shape and out.dtype == np.uint8  # input untouched
    rows = _text_rows(frame, out)
    assert rows[0] == 0 and rows[-1] < 64 and (out[rows[-1] + 1 :] == 150).all()  # only a top band changes
    band = out[: rows[-1] + 1]
    assert (band.min(axis=2) > 200).sum() > 50 and (band == 60).mean() > 0.5  # white text on 40% grey
    long = annotate(frame, ["put the small green cylinder on the large blue block next to the bowl " * 2])
    assert _text_rows(frame, long)[-1] > rows[-1]  # wrapped onto more lines than two short ones
    red = annotate(frame, ["failure at step 9"], [(255, 0, 0)])
    assert ((red[..., 0] > 200) & (red[..., 1] < 80)).sum() > 20
    with pytest.raises(ValueError, match="colors"):
        annotate(frame, ["a", "b"], [(255, 0, 0)])
    with pytest.raises(ValueError, match="uint8"):
        annotate(frame.astype(np.float32), ["a"])


def test_caption_episode_holds_the_outcome():
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (10, 20, 30)]
    out = caption_episode(frames, "pick it", "success", success=True, hold=4)
    assert len(out) == 3 + 4 and all(f.shape == (64, 64, 3) for f in out)
    assert all((o[-1] == f[-1]).all() for o, f in zip(out, frames))  # the bottom row is the scene's
    assert all((o == out[-1]).all() for o in out[2:]) and not (out[0] == out[1]).all()
    assert ((out[-1][..., 1] > 150) & (out[-1][..., 0] < 150)).any()  # green outcome text
