"""The episode store checks itself (issue 21, item 3): two writers of one new store never lose or mix
episodes (real processes), `open` refuses attributes that disagree with the data (episode lengths vs
meta/episode_ends, dtypes, fps, fractional lengths), a missing chunk is an error naming the array and
chunk (never zeros) while a genuinely all-zero episode round-trips, `vla dataset verify` finds every
damaged chunk against the checksums recorded at append, tampered cached statistics are recomputed, and
stores written before checksums still open and verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vla.commands.dataset import verify_main
from vla.data.store import EpisodeStore, lock_path, verify_store
from vla.data.synthetic import episode, features

ROOT = Path(__file__).resolve().parents[3]
OLD = ROOT / "tests" / "fixtures" / "pick_store_db29c6d.zarr"


def _store(path: Path, n: int = 3, t: int = 5) -> tuple[EpisodeStore, list[dict]]:
    feats = features(extra=True)
    s = EpisodeStore.create(path, feats, fps=10)
    eps = [episode(feats, t + i, seed=i) for i in range(n)]
    for i, ep in enumerate(eps):
        s.append_episode(ep, {"task": "pick", "i": i})
    s.close()
    return s, eps


def _tamper(path: Path, change) -> None:
    """Edit the root attributes the way a careless tool (or a disk) would: straight in zarr.json."""
    meta = json.loads((path / "zarr.json").read_text())
    change(meta["attributes"])
    (path / "zarr.json").write_text(json.dumps(meta))


# ---------------------------------------------------------------------------------------- two writers
WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from vla.data.store import EpisodeStore
    from vla.data.synthetic import episode, features
    path, me, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    feats = features(16, 16)
    while time.time() < start:  # both writers start together
        pass
    try:
        try:  # what `vla collect out=SAME` does: create, or append to the store that exists
            store = EpisodeStore.create(path, feats, fps=10)
        except FileExistsError:
            store = EpisodeStore.open(path, mode="a")
        for k in range(6):
            ep = episode(feats, 4, seed=10 * me + k)
            ep["action"][:] = me  # whose episode it is, in every key
            ep["images/front"][:] = me
            store.append_episode(ep, {"writer": me, "k": k})
            time.sleep(0.01)
        store.close()
    except ValueError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    """
)


def test_two_writers_of_one_new_store_lose_and_mix_nothing(tmp_path):
    """Two real processes create-or-append the same new store at the same instant, three times: every
    writer either stores all its episodes or fails with one line naming the other writer, no episode
    holds another writer's frames, and no lock file is left behind."""
    for round_ in range(3):
        path = tmp_path / f"s{round_}.zarr"
        start = time.time() + 1.5  # after both interpreters have imported numpy and zarr
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), str(me), str(start)],
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for me in (1, 2)
        ]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        ok = [me for me, (code, _) in zip((1, 2), results) if code == 0]
        for code, err in results:
            if code != 0:
                assert code == 1 and len(err.strip().splitlines()) == 1, err
                assert "another writer has this store open" in err, err
        assert ok, results
        store = EpisodeStore.open(path)
        writers = [store.episode_meta(i)["writer"] for i in range(store.num_episodes)]
        assert sorted(writers) == sorted(me for me in ok for _ in range(6)), (writers, results)
        for i, me in enumerate(writers):
            ep = store.episode(i)
            assert np.all(ep["action"] == me) and np.all(ep["images/front"] == me), (i, me)
        assert verify_store(path).ok
        assert not lock_path(path).exists()


def test_the_lock_lives_beside_the_store_and_one_writer_holds_it(tmp_path):
    path = tmp_path / "s.zarr"
    s = EpisodeStore.create(path, features(), fps=10)
    assert lock_path(path) == tmp_path / "s.zarr.lock" and lock_path(path).is_file()
    with pytest.raises(ValueError, match="another writer has this store open"):
        EpisodeStore.open(path, mode="a")
    with pytest.raises(ValueError, match="another writer has this store open"):
        EpisodeStore.create(path, features(), fps=10, overwrite=True)  # never replaced under a writer
    s.append_episode(episode(features(), 3, seed=0))
    s.delete_episodes([0])  # the rewrite keeps the lock held
    with pytest.raises(ValueError, match="another writer"):
        EpisodeStore.open(path, mode="a")
    s.close()
    assert not lock_path(path).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
    EpisodeStore.open(path, mode="a").close()


# ---------------------------------------------------------------------------------------- open checks
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: [a["episodes"][0].update(length=6), a["episodes"][1].update(length=5)],
            "episode_ends says",
        ),
        (lambda a: a["episodes"][0].update(length=3.5), "length 3.5 is not a whole number"),
        (lambda a: a["episodes"][0].update(length=0), "length 0 is not a whole number"),
        (lambda a: a.update(fps=-5), "fps must be a finite number > 0, got -5"),
        (lambda a: a.update(fps=float("nan")), "fps must be a finite number > 0"),
        (lambda a: a.update(fps="10"), "fps must be a finite number > 0"),
        (lambda a: a["features"]["action"].update(dtype="complex128"), "dtype 'complex128' is not stored"),
        (lambda a: a["features"]["action"].update(dtype="float64"), "holds float32, features say float64"),
        (lambda a: a["features"]["action"].update(shape=[7.5]), r"shape \[7.5\] must hold whole numbers"),
        (lambda a: a["checksums"].pop(), "checksums list has 2 entries for 3 episodes"),
    ],
)
def test_open_refuses_attributes_that_disagree_with_the_data(tmp_path, change, message):
    path = tmp_path / "s.zarr"
    _store(path)
    _tamper(path, change)
    with pytest.raises(ValueError, match=message):
        EpisodeStore.open(path)


def test_create_refuses_bad_fps_and_dtypes(tmp_path):
    from vla.core.types import FeatureSpec, FeatureType

    with pytest.raises(ValueError, match="fps must be a finite number > 0"):
        EpisodeStore.create(tmp_path / "a.zarr", features(), fps=-5)
    bad = {**features(), "x": FeatureSpec(FeatureType.STATE, (2,), "complex128")}
    with pytest.raises(ValueError, match="'complex128' is not stored"):
        EpisodeStore.create(tmp_path / "b.zarr", bad, fps=10)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------- chunks
def test_a_missing_chunk_is_an_error_never_zeros(tmp_path):
    path = tmp_path / "s.zarr"
    _store(path)
    (path / "data/action/c/0/0").unlink()  # the probe: every action of the store, deleted
    with pytest.raises(ValueError, match=r"data/action: chunk c/0/0 \(frames 0-17\) is missing"):
        EpisodeStore.open(path)
    path2 = tmp_path / "t.zarr"
    _store(path2)
    (path2 / "data/images/front/c/7/0/0/0").unlink()  # one image frame
    store = EpisodeStore.open(path2)  # frame chunks are checked as they are read
    np.testing.assert_array_equal(store.episode(0)["action"], episode(features(extra=True), 5, 0)["action"])
    with pytest.raises(ValueError, match=r"data/images/front: chunk c/7/0/0/0 \(frames 7-7\) is missing"):
        store.episode(1)
    with pytest.raises(ValueError, match="chunk file for frame 7 is missing"):
        store.frame_reader("images/front").read(7)


def test_an_all_zero_episode_is_stored_whole(tmp_path):
    """zarr 3 skips writing a chunk equal to the fill value; the store writes it, so all-zero data is
    neither lost nor mistaken for a missing chunk."""
    feats = features(extra=True)
    s = EpisodeStore.create(tmp_path / "z.zarr", feats, fps=10)
    zero = {k: np.zeros_like(v) for k, v in episode(feats, 4, seed=0).items()}
    s.append_episode(zero)
    s.close()
    assert (tmp_path / "z.zarr/data/action/c/0/0").is_file()
    assert (tmp_path / "z.zarr/data/images/front/c/3/0/0/0").is_file()
    ro = EpisodeStore.open(tmp_path / "z.zarr")
    for k, v in ro.episode(0).items():
        np.testing.assert_array_equal(v, zero[k])
    assert verify_store(tmp_path / "z.zarr").ok


# ---------------------------------------------------------------------------------------- verify
def test_verify_finds_every_damaged_chunk(tmp_path, capsys):
    path = tmp_path / "s.zarr"
    _store(path)
    assert verify_main([str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{path}: 3 episodes, 18 frames, 10 arrays, 61 chunks checked, 3 episodes against their "
                   "checksums: OK"]  # fmt: skip
    img = path / "data/images/front/c"
    shutil.copyfile(img / "9/0/0/0", img / "2/0/0/0")  # a whole chunk with another frame's pixels
    (path / "data/depth/front/c/12/0/0").unlink()
    assert verify_main([str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"{path}: data/depth/front: chunk c/12/0/0 (frames 12-12) is missing"
    assert out[1].startswith(
        f"{path}: data/images/front: episode 0 (frames 0-4, chunk rows 0-4) does not match"
    )
    assert out[-1].endswith("1 episodes against their checksums: 2 problems") and len(out) == 3


def test_verify_of_an_unopenable_store_is_one_problem(tmp_path, capsys):
    path = tmp_path / "s.zarr"
    _store(path)
    _tamper(path, lambda a: a.update(fps=0))
    assert verify_main([str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"{path}: fps must be a finite number > 0, got 0" and out[-1].endswith(": 1 problem")


def test_an_old_store_opens_and_verifies_without_checksums(tmp_path, capsys):
    assert verify_main([str(OLD)]) == 0
    out = capsys.readouterr().out
    assert "no checksums recorded" in out and out.strip().endswith("0 episodes against their checksums: OK")
    copy = tmp_path / "old.zarr"
    shutil.copytree(OLD, copy)
    with EpisodeStore.open(copy, mode="a") as s:  # appending records checksums for the new episode only
        s.append_episode(s.episode(0), {"task": "pick"})
    report = verify_store(copy)
    assert report.ok and report.checksummed == 1
    assert "2 of 3 episodes were appended before checksums" in report.notes
    (copy / "data/state/c/0/0").unlink()  # even an old store's state chunks must exist (never all zero)
    with pytest.raises(ValueError, match="data/state: chunk c/0/0"):
        EpisodeStore.open(copy)


# ---------------------------------------------------------------------------------------- stats
def test_tampered_or_stale_cached_stats_are_recomputed(tmp_path):
    path = tmp_path / "s.zarr"
    _, eps = _store(path)
    true_mean = np.concatenate([e["action"] for e in eps]).astype(np.float64).mean(0)
    with EpisodeStore.open(path, mode="a") as s:
        np.testing.assert_allclose(s.stats("action")["mean"], true_mean, rtol=1e-6)
    assert EpisodeStore.open(path).cached_stats_valid("action") is True

    def nonsense(a):
        a["stats"]["action"]["values"]["mean"] = [99.9] * 7

    _tamper(path, nonsense)
    ro = EpisodeStore.open(path)
    assert ro.cached_stats_valid("action") is False
    np.testing.assert_allclose(ro.stats("action")["mean"], true_mean, rtol=1e-6)
    assert any("cached statistics of 'action' do not match" in p for p in verify_store(path).problems)

    def stale(a):  # statistics of other data under the same episode and frame counts
        a["checksums"][0]["action"] ^= 1

    _tamper(path, lambda a: a["stats"]["action"]["values"].update(mean=true_mean.tolist()))
    with EpisodeStore.open(path, mode="a") as s:
        s.stats("action")  # re-cached with a valid checksum
    _tamper(path, stale)
    assert EpisodeStore.open(path).cached_stats_valid("action") is False
