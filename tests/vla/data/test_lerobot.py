"""LeRobot import (the real v2.1 G1 sample), v3.0 export -> import round trip, clear errors, dataset info."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vla import cli
from vla.data.lerobot_export import ExportLeRobotConfig, export_lerobot
from vla.data.lerobot_format import LeRobotSource
from vla.data.lerobot_import import ImportLeRobotConfig, import_lerobot
from vla.data.store import EpisodeStore
from vla.data.synthetic import episode, features
from vla.data.video import VideoEncoder, decode_video
from vla.data.windows import resize_frames
from vla.core.types import FeatureType

G1 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lerobot_g1_v21"
needs_g1 = pytest.mark.skipif(not G1.is_dir(), reason=f"shared LeRobot sample not present at {G1}")


@needs_g1
def test_import_g1_v21_episodes_1_and_2(tmp_path, capsys):
    out = tmp_path / "g1.zarr"
    argv = ["import", "lerobot", str(G1), f"out={out}", "episodes=[1,2]", "image_size=[48,64]"]
    assert cli.main(argv) == 0
    assert "imported 2 episodes (736 frames)" in capsys.readouterr().out
    s = EpisodeStore.open(out)
    info = json.loads((G1 / "meta" / "info.json").read_text())
    assert s.fps == 30 and s.num_episodes == 2
    assert set(s.features) == {"state", "action", "images/cam_high"}
    assert s.features["state"].names == tuple(info["features"]["observation.state"]["names"][0])
    assert s.meta["lerobot"]["codebase_version"] == "v2.1"
    lengths = {
        json.loads(x)["episode_index"]: json.loads(x)["length"] for x in open(G1 / "meta" / "episodes.jsonl")
    }
    for i, ep_idx in enumerate([1, 2]):
        table = pq.read_table(G1 / "data" / "chunk-000" / f"episode_{ep_idx:06d}.parquet")
        ep = s.episode(i)
        assert len(ep["action"]) == lengths[ep_idx] == table.num_rows
        np.testing.assert_array_equal(
            ep["state"], np.array(table["observation.state"].to_pylist(), np.float32)
        )
        np.testing.assert_array_equal(ep["action"], np.array(table["action"].to_pylist(), np.float32))
        m = s.episode_meta(i)
        assert (
            m["instruction"] == "Pick up the yellow bottle on the table."
            and m["lerobot_episode_index"] == ep_idx
        )
        imgs = ep["images/cam_high"]
        assert imgs.shape == (lengths[ep_idx], 48, 64, 3) and imgs.dtype == np.uint8
        assert imgs.std() > 10 and np.abs(imgs[0].astype(int) - imgs[-1]).mean() > 1  # real, changing frames
    # the first stored frame matches a full-size decode of the AV1 file downscaled independently (torch)
    full = decode_video(
        G1 / "videos/chunk-000/observation.images.cam_high/episode_000001.mp4", 0.0, 1 / 30 + 1e-3
    )
    assert full.shape == (1, 480, 640, 3)
    small = resize_frames(torch.from_numpy(full), [48, 64], FeatureType.VISUAL).numpy()[0]
    assert np.abs(small.astype(int) - s.episode(0)["images/cam_high"][0]).mean() < 4


@needs_g1
def test_import_reports_missing_files_and_bad_requests(tmp_path):
    cfg = ImportLeRobotConfig(path=str(G1), out=str(tmp_path / "x.zarr"), episodes=[0, 1, 5])
    with pytest.raises(FileNotFoundError, match=r"2 file\(s\) missing") as e:
        import_lerobot(cfg)
    assert "episode 0: video 'observation.images.cam_high'" in str(e.value) and "episode_000005.mp4" in str(
        e.value
    )
    assert not (tmp_path / "x.zarr").exists()  # nothing written
    with pytest.raises(ValueError, match="episode 1000 not in the dataset"):
        import_lerobot(ImportLeRobotConfig(path=str(G1), out=str(tmp_path / "y.zarr"), episodes=[1000]))
    with pytest.raises(ValueError, match=r"mapping names features \['nope'\]"):
        import_lerobot(ImportLeRobotConfig(path=str(G1), out=str(tmp_path / "y.zarr"), mapping={"nope": "x"}))
    # state/action only (video dropped by mapping) works for an episode whose video is absent
    cfg = ImportLeRobotConfig(
        path=str(G1), out=str(tmp_path / "z.zarr"), episodes=[7], mapping={"observation.images.cam_high": ""}
    )
    assert import_lerobot(cfg)["episodes"] == 1
    assert set(EpisodeStore.open(tmp_path / "z.zarr").features) == {"state", "action"}


def _smooth_store(path, lengths=(12, 5, 20)):
    feats = features(32, 48, extra=True)
    s = EpisodeStore.create(path, feats, fps=10, meta={"action_space": "ee_delta"})
    yy, xx = np.mgrid[0:32, 0:48]
    eps = []
    for i, t in enumerate(lengths):
        e = episode(feats, t, seed=i)
        frames = [
            np.stack([(xx * 4 + 3 * k) % 256, (yy * 6 + 40 * i) % 256, np.full_like(xx, 100 + k)], -1)
            for k in range(t)
        ]
        e["images/front"] = np.stack(frames).astype(np.uint8)  # smooth: lossy video stays close
        eps.append(e)
        s.append_episode(e, {"instruction": ["pick the cube", "push the ball"][i % 2], "task": "t"})
    return s, eps


def test_v30_export_import_roundtrip(tmp_path, capsys):
    _, eps = _smooth_store(tmp_path / "s.zarr")
    assert (
        cli.main(
            [
                "export",
                "lerobot",
                str(tmp_path / "s.zarr"),
                f"out={tmp_path / 'v3'}",
                "video_file_mb=0.000001",
            ]
        )
        == 0
    )
    assert "exported 3 episodes (37 frames, 2 tasks)" in capsys.readouterr().out
    root = tmp_path / "v3"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 37 and info["fps"] == 10
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    epmeta = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["dataset_from_index"] for r in epmeta] == [0, 12, 17]
    assert len(list((root / "videos").rglob("*.mp4"))) >= 2  # tiny size limit: episodes spread over files
    assert len({r["videos/observation.images.front/file_index"] for r in epmeta}) >= 2
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks["task"].to_pylist() == ["pick the cube", "push the ball"]
    stats = json.loads((root / "meta/stats.json").read_text())
    np.testing.assert_allclose(
        stats["action"]["max"], np.concatenate([e["action"] for e in eps]).max(0), rtol=1e-6
    )

    src = LeRobotSource(root)
    assert src.version == "v3.0" and src.episode_indices == [0, 1, 2]
    out = tmp_path / "back.zarr"
    import_lerobot(ImportLeRobotConfig(path=str(root), out=str(out)))
    back = EpisodeStore.open(out)
    assert back.num_episodes == 3 and back.episode_ends.tolist() == [12, 17, 37]
    for i, e in enumerate(eps):
        b = back.episode(i)
        assert set(b) == set(e) - {"depth/front", "seg/front"}  # depth/seg are not exported
        for k in b:
            if k == "images/front":
                assert np.abs(b[k].astype(int) - e[k]).mean() < 6  # lossy H.264 within a few levels
            else:  # per-frame scalars come back as LeRobot's shape [1]
                np.testing.assert_array_equal(b[k], e[k].astype(b[k].dtype).reshape(b[k].shape), err_msg=k)
        assert b["reward"].shape == (len(e["reward"]), 1) and b["step"].shape == e["step"].shape
        assert back.episode_meta(i)["instruction"] == ["pick the cube", "push the ball"][i % 2]


def test_v30_multi_episode_video_and_frame_count_mismatch(tmp_path):
    _smooth_store(tmp_path / "s.zarr")
    root = tmp_path / "v3"
    export_lerobot(ExportLeRobotConfig(path=str(tmp_path / "s.zarr"), out=str(root), codec="libsvtav1"))
    videos = list((root / "videos").rglob("*.mp4"))
    assert len(videos) == 1  # all episodes back to back in one AV1 file
    assert (
        LeRobotSource(root).read_video(LeRobotSource(root).episode(1), "observation.images.front").shape[0]
        == 5
    )
    # re-encode the file one frame short: the last episode's frame count no longer matches
    frames = decode_video(videos[0])
    with VideoEncoder(videos[0], 10, 32, 48) as enc:
        for f in frames[:-1]:
            enc.write(f)
    with pytest.raises(
        ValueError, match=r"episode 2 key 'observation.images.front': video has 19 frames.*say 20"
    ):
        import_lerobot(ImportLeRobotConfig(path=str(root), out=str(tmp_path / "b.zarr")))
    bad = EpisodeStore.open(tmp_path / "b.zarr")  # the episodes before the bad one are whole
    assert bad.num_episodes == 2 and bad.episode_ends.tolist() == [12, 17]
    # parquet rows disagreeing with the episode metadata
    data = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(data)
    pq.write_table(t.slice(0, 30), data)
    with pytest.raises(ValueError, match=r"file-000.parquet: episode 2 has 13 rows, metadata says 20"):
        import_lerobot(ImportLeRobotConfig(path=str(root), out=str(tmp_path / "c.zarr"), episodes=[2]))
    (root / "meta" / "tasks.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="tasks.parquet"):
        LeRobotSource(root)
    shutil.rmtree(root / "meta")
    with pytest.raises(FileNotFoundError, match="info.json"):
        LeRobotSource(root)


def test_dataset_info_cli(tmp_path, capsys):
    _smooth_store(tmp_path / "s.zarr")
    assert cli.main(["dataset", "info", str(tmp_path / "s.zarr"), "stats=true"]) == 0
    out = capsys.readouterr().out
    assert "3 episodes, 37 frames at 10 fps" in out and "images/front" in out and "stats action:" in out
    assert cli.main(["dataset", "info", str(tmp_path / "missing.zarr")]) == 2  # a bad argument: one line
    assert "episode store not found" in capsys.readouterr().err


def test_column_conversion_variants():
    from vla.data.lerobot_format import column_to_numpy

    fixed = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3)
    np.testing.assert_array_equal(column_to_numpy(fixed, (3,), "x"), np.arange(6).reshape(2, 3))
    varlist = pa.array([[1.0, 2.0], [3.0, 4.0]])
    assert column_to_numpy(varlist, (2,), "x").shape == (2, 2)
    assert column_to_numpy(pa.array([1, 2]), (1,), "x").shape == (2, 1)
    with pytest.raises(ValueError, match="expected 2 rows of shape \\[3\\]"):
        column_to_numpy(varlist, (3,), "file.parquet key 'a'")


def _write_v21_with_png_images(root: Path, lengths=(3, 4), success=None) -> list[dict[str, np.ndarray]]:
    """A small LeRobot v2.1 dataset whose camera is stored as PNG bytes inside the parquet ("image" dtype);
    with `success` (one bool per episode), a per-frame `next.success` column true on the last frame only."""
    import io

    from PIL import Image

    (root / "meta").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    info = {
        "codebase_version": "v2.1",
        "fps": 15,
        "chunks_size": 1000,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": None,
        "features": {
            "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}},
            "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
            "observation.images.top": {
                "dtype": "image",
                "shape": [8, 10, 3],
                "names": ["height", "width", "c"],
            },
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    if success is not None:
        info["features"]["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "stack the cups"}\n')
    rows, eps = [], []
    rng = np.random.default_rng(0)
    for e, n in enumerate(lengths):
        rows.append(json.dumps({"episode_index": e, "tasks": ["stack the cups"], "length": n}))
        ep = {
            "state": rng.standard_normal((n, 2)).astype(np.float32),
            "action": rng.standard_normal((n, 2)).astype(np.float32),
            "images/top": rng.integers(0, 256, (n, 8, 10, 3)).astype(np.uint8),
        }
        pngs = []
        for img in ep["images/top"]:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            pngs.append({"bytes": buf.getvalue(), "path": None})
        columns = {}
        if success is not None:
            # true on the episode's last frame, which is the first row (rows are in reversed order)
            columns["next.success"] = pa.array([bool(success[e]) and i == 0 for i in range(n)])
        table = pa.table(
            {
                **columns,
                "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(ep["state"].reshape(-1)), 2),
                "action": pa.array(ep["action"].tolist(), pa.list_(pa.float32())),
                "observation.images.top": pa.array(
                    pngs, pa.struct([("bytes", pa.binary()), ("path", pa.string())])
                ),
                "frame_index": pa.array(np.arange(n)[::-1].copy()),  # rows out of order: sorted on import
                "episode_index": pa.array(np.full(n, e)),
                "task_index": pa.array(np.zeros(n, dtype=np.int64)),
            }
        )
        pq.write_table(table, root / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        eps.append({k: v[::-1].copy() for k, v in ep.items()})  # frame order = reversed row order
    (root / "meta" / "episodes.jsonl").write_text("\n".join(rows) + "\n")
    return eps


def test_v21_parquet_embedded_images(tmp_path):
    eps = _write_v21_with_png_images(tmp_path / "ds")
    out = tmp_path / "s.zarr"
    summary = import_lerobot(ImportLeRobotConfig(path=str(tmp_path / "ds"), out=str(out), task="stack"))
    assert summary["episodes"] == 2 and summary["frames"] == 7
    s = EpisodeStore.open(out)
    assert s.fps == 15 and s.features["state"].names == ("a", "b")
    for i, e in enumerate(eps):
        got = s.episode(i)
        for k, v in e.items():
            np.testing.assert_array_equal(got[k], v, err_msg=k)  # PNG is lossless
        assert s.episode_meta(i)["instruction"] == "stack the cups" and s.episode_meta(i)["task"] == "stack"
        assert s.episode_meta(i)["success"] is None  # the dataset does not say: unknown, never assumed


def test_success_comes_from_next_success_column(tmp_path):
    _write_v21_with_png_images(tmp_path / "ds", success=[True, False])
    out = tmp_path / "s.zarr"
    import_lerobot(ImportLeRobotConfig(path=str(tmp_path / "ds"), out=str(out)))
    s = EpisodeStore.open(out)
    assert [s.episode_meta(i)["success"] for i in range(2)] == [True, False]
