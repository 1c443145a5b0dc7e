"""`vla dataset view`: on a real store from the real collector (PyBullet, 32-px cameras, 2 pick episodes),
the contact sheet decodes with the size its layout implies and shows the store's frames where the layout
says, each episode's mp4 has one frame per step with the cursor of the action plot moving right, depth
cameras are grey-mapped, a second view refuses a non-empty output unless `overwrite=true`, and bad
arguments name the problem.

    python -m pytest tests/vla/commands/test_dataset_view.py
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vla.cli import main as cli
from vla.commands.dataset import view_main
from vla.core.config import ConfigError
from vla.data.store import EpisodeStore
from vla.data.video import decode_video, video_info
from vla.eval.dataset_view import CURSOR, SEPARATOR, sample_steps

THUMB, SIZE, FRAMES = 48, 64, 4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "pick.zarr"
    args = ["collect", "task=pick", "episodes=2", "env.image_size=32", "env.depth=true", f"out={path}"]
    assert cli(args) == 0
    return path


@pytest.fixture(scope="module")
def view(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("view_out") / "v"
    args = [str(store), "episodes=[0,1]", f"out={out}", f"thumb={THUMB}", f"size={SIZE}", f"frames={FRAMES}"]
    assert view_main(args) == 0
    return out


def test_contact_sheet_has_one_row_per_episode_with_the_store_frames(store, view):
    sheet = np.asarray(Image.open(view / "contact_sheet.png").convert("RGB"))
    band = max(18, THUMB // 5)
    tile = 2 * THUMB + SEPARATOR  # static | wrist, each resized to THUMB (square 32-px frames)
    width = FRAMES * tile + (FRAMES - 1) * 3 * SEPARATOR
    assert sheet.shape == (2 * (band + THUMB) + 4, width, 3)
    with EpisodeStore.open(store) as st:
        for row, ep in enumerate((0, 1)):
            frames = st.episode(ep, ["images/static", "images/wrist"])
            length = st.episode_meta(ep)["length"]
            top = row * (band + THUMB + 4) + band
            for col, t in enumerate(sample_steps(length, FRAMES)):
                left = col * (tile + 3 * SEPARATOR)
                for cam, key in enumerate(("images/static", "images/wrist")):
                    want = np.asarray(Image.fromarray(frames[key][t]).resize((THUMB, THUMB), Image.BILINEAR))
                    x = left + cam * (THUMB + SEPARATOR)
                    got = sheet[top : top + THUMB, x : x + THUMB]
                    # below the darkened step label the tile is the store's frame, pixel for pixel
                    np.testing.assert_array_equal(got[THUMB // 2 :], want[THUMB // 2 :])


def test_sample_steps_spans_the_episode():
    assert sample_steps(15, 4) == [0, 5, 9, 14]
    assert sample_steps(3, 6) == [0, 1, 2]
    assert sample_steps(1, 6) == [0] and sample_steps(0, 6) == []


def test_one_video_per_episode_with_a_frame_per_step_and_a_moving_cursor(store, view):
    with EpisodeStore.open(store) as st:
        lengths = [st.episode_meta(i)["length"] for i in (0, 1)]
    for ep, length in zip((0, 1), lengths):
        path = view / f"episode_{ep:04d}.mp4"
        info = video_info(path)
        frames = decode_video(path)
        assert info["frames"] == length == len(frames)
        # cameras (2 x 64 px + separator, centred over a plot at least 320 px wide) above a 120-px plot
        assert frames.shape[1:] == (SIZE + 120, 320, 3)
        plot = frames[:, SIZE:].astype(np.int16)
        red = (np.abs(plot - np.array(CURSOR)).sum(-1) < 90).sum(axis=1)  # [T, W]: cursor pixels per column
        columns = red.argmax(axis=-1)
        assert red.max(axis=-1).min() > 20, "every frame shows the cursor"
        assert np.all(np.diff(columns) > 0), f"cursor columns {columns} must move right step by step"


def test_a_second_view_refuses_the_output_unless_overwrite(store, tmp_path):
    out = tmp_path / "v"
    assert view_main([str(store), "episodes=[0]", f"out={out}", f"thumb={THUMB}", f"size={SIZE}"]) == 0
    stale = out / "episode_0000.mp4"
    assert stale.is_file()
    args = [str(store), "episodes=[1]", f"out={out}", "video=false", f"thumb={THUMB}"]
    with pytest.raises(ConfigError, match="overwrite=true"):
        view_main(args)
    assert view_main([*args, "overwrite=true"]) == 0
    assert not stale.exists(), "an earlier view's videos are not left beside the new sheet"
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png"]
    assert Image.open(out / "contact_sheet.png").size[1] == max(18, THUMB // 5) + THUMB  # one row


def test_depth_cameras_are_grey_mapped(store, tmp_path):
    out = tmp_path / "v"
    args = [str(store), "episodes=[0]", f"out={out}", "cameras=[depth/static,images/static]", "video=false"]
    assert view_main([*args, f"thumb={THUMB}", "frames=1"]) == 0
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB")).astype(int)
    top = max(18, THUMB // 5) + THUMB // 2  # below the step label
    depth, rgb = sheet[top:, :THUMB], sheet[top:, THUMB + SEPARATOR :]
    assert sheet.shape[1] == 2 * THUMB + SEPARATOR
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 1] == depth[..., 2]).all()
    assert depth.std() > 5, "the depth tile shows the scene, not a flat grey"
    assert not (rgb[..., 0] == rgb[..., 2]).all(), "the colour camera keeps its colours"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["episodes=[2]"], "index 2 out of range; .* holds 2 episodes"),
        (["cameras=[state]"], "'state' is not an image or depth feature"),
        (["frames=0"], "expected frames >= 1"),
    ],
)
def test_bad_arguments_name_the_problem(store, tmp_path, args, message):
    with pytest.raises(ConfigError, match=message):
        view_main([str(store), f"out={tmp_path / 'v'}", *args])
    assert not (tmp_path / "v").exists(), "nothing is written for a bad argument"


def test_a_missing_store_or_path_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="episode store not found"):
        view_main([str(tmp_path / "nope.zarr"), f"out={tmp_path / 'v'}"])
    with pytest.raises(ConfigError, match="missing value for 'path'") as e:
        view_main([f"out={tmp_path / 'v'}"])
    assert e.value.kind == "missing" and not (tmp_path / "v").exists()
