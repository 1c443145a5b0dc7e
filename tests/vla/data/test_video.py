"""The one video writer: mp4/gif files that decode back to the frames' count and size, atomically, with odd
sizes padded and bad inputs refused; `VideoEncoder` options reach the stream."""

import av
import imageio.v3 as iio
import numpy as np
import pytest

from vla.data.video import VideoEncoder, decode_video, write_video


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
    assert decode_video(tmp_path / "c.mp4").shape == (4, 32, 34, 3)
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
    assert list(tmp_path.iterdir()) == []


def test_encoder_options_and_even_sizes(tmp_path):
    with pytest.raises(ValueError, match="even height and width"):
        VideoEncoder(tmp_path / "odd.mp4", 10, 31, 32)
    with VideoEncoder(tmp_path / "g.mp4", 10, 32, 32, gop=2, preset="veryfast") as enc:
        assert enc._stream.options.get("g") == "2" and enc._stream.options.get("preset") == "veryfast"
        for f in _frames(n=5, h=32, w=32):
            enc.write(f)
    assert enc.frames == 5 and decode_video(tmp_path / "g.mp4").shape == (5, 32, 32, 3)
