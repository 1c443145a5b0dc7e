"""Videos: mp4/gif files that decode back to the frames' count and size; the recorder observer; demo."""

import av
import imageio.v3 as iio
import numpy as np
import pytest

from vla.eval.video import VideoRecorder, write_video


def _frames(n=6, h=30, w=40):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 5, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    return [np.full((h, w, 3), i * 30, np.uint8) + noise[i] for i in range(n)]


def test_mp4_roundtrip(tmp_path):
    path = write_video(tmp_path / "a.mp4", _frames(), fps=10)
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.name in ("h264", "libx264", "mpeg4")
    assert len(decoded) == 6 and decoded[0].shape[:2] == (30, 40)
    assert abs(float(decoded[3].mean()) - 92) < 6  # the content survives encoding
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # no temporary leftovers


def test_gif_roundtrip_and_odd_size(tmp_path):
    frames = _frames(n=4, h=31, w=33)
    path = write_video(tmp_path / "b.gif", frames, fps=5)
    arr = iio.imread(path, index=None)
    assert arr.shape[0] == 4 and arr.shape[1:3] == (31, 33)
    write_video(tmp_path / "c.mp4", frames)  # odd sizes are padded for H.264
    assert frames[0].shape == (31, 33, 3)  # the input is not modified


def test_bad_video_inputs(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        write_video(tmp_path / "x.avi", _frames())
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "x.mp4", [])
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        write_video(tmp_path / "x.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", [np.zeros((8, 8, 3), np.float32)])


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
    import gymnasium as gym

    import sim
    from sim.experts import make_expert
    from vla.core.rollout import run_episode

    env = gym.make(sim.ENV_ID, task="pick", cameras=("wrist",), image_size=32, depth=False)
    rec = VideoRecorder(tmp_path / "pick.gif", camera="wrist")
    res = run_episode(env, make_expert("pick"), 0, observers=[rec])
    env.close()
    assert res.success and len(rec.frames) == res.length + 1 and rec.written.is_file()
