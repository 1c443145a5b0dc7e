"""The video recorder observer: depth keys grey-mapped, a missing key named, and in a rollout the video ends
with the state after the last action (the writer itself: tests/vla/data/test_video.py)."""

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest

import sim
from sim.experts import make_expert
from vla.core.rollout import run_episode
from vla.eval.video import VideoRecorder


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
