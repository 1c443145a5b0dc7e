"""`vla eval`: Wilson intervals, the expert's known success through the policy path, reproducibility
(same seeds, 1 or 2 env processes), per-episode errors that don't stop the run, report == JSON, and the
kept videos: replayed at 256 px with captions (a diverging replay warns once), or at video_size=0 the
policy's own camera."""

import json
import re

import gymnasium as gym
import numpy as np
import pytest

import sim
from sim.config import EnvConfig, env_kwargs
from vla.cli import main as cli_main
from vla.commands.eval import EvalConfig, evaluate
from vla.core.config import compose, to_dataclass
from vla.core.policy import POLICIES
from vla.core.rollout import EpisodeResult
from vla.core.types import CONTROL_HZ
from vla.data.video import decode_video
from vla.eval.metrics import wilson_interval
from vla.eval.report import write_report

FAST_ENV = ["env.image_size=64", "env.cameras=[static]", "progress=false"]


class CrashyPolicy:
    """Holds still; raises on its 3rd call in episodes with an odd seed."""

    def __init__(self):
        self.calls, self.seed = 0, 0

    def reset(self, seed=None):
        self.calls, self.seed = 0, int(seed or 0)

    def select_action(self, obs, info=None):
        self.calls += 1
        if self.seed % 2 and self.calls == 3:
            raise RuntimeError("simulated policy crash")
        a = np.zeros(7, np.float32)
        a[-1] = 1.0
        return a


POLICIES.register("_test_crashy", CrashyPolicy)  # a user plugin: an object, not a "module:attr"


def _cfg(tmp_path, *overrides):
    return to_dataclass(compose("eval", [*FAST_ENV, f"out={tmp_path}", *overrides]), EvalConfig)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(10, 20)
    assert (round(lo, 3), round(hi, 3)) == (0.299, 0.701)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_expert_success_is_reproduced_and_deterministic(tmp_path):
    a = evaluate(
        _cfg(tmp_path / "a", "episodes=3", "references=[random]", "failure_videos=0", "success_videos=1")
    )
    b = evaluate(
        _cfg(
            tmp_path / "b",
            "episodes=3",
            "references=[random]",
            "num_envs=2",
            "failure_videos=0",
            "success_videos=0",
        )
    )
    expert, random_ = a["per_policy"]["expert"]["tasks"]["pick"], a["per_policy"]["random"]["tasks"]["pick"]
    assert expert["successes"] == 3 and random_["successes"] == 0
    key = [(r["policy"], r["seed"], r["success"], r["length"]) for r in a["episodes"]]
    assert key == [(r["policy"], r["seed"], r["success"], r["length"]) for r in b["episodes"]]
    assert {r["seed"] for r in a["episodes"]} == {1_000_000, 1_000_001, 1_000_002}  # held-out seeds
    assert len(a["videos"]) == 1 and a["videos"][0].endswith("pick_success_seed1000000.mp4")


def test_episode_errors_are_recorded_and_the_run_goes_on(tmp_path):
    res = evaluate(
        _cfg(
            tmp_path,
            "policy=_test_crashy",
            "episodes=2",
            "references=[]",
            "max_episode_steps=5",
            "failure_videos=1",
            "success_videos=0",
        )
    )
    eps = res["episodes"]
    assert [e["seed"] for e in eps] == [1_000_000, 1_000_001]
    assert eps[0]["error"] is None and eps[0]["length"] == 5
    assert "simulated policy crash" in eps[1]["error"]
    assert res["per_policy"]["_test_crashy"]["tasks"]["pick"]["errors"] == 1


def test_report_and_json_agree_and_cli_runs(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli_main(
            [
                "eval",
                *FAST_ENV,
                f"out={out}",
                "episodes=2",
                "references=[random]",
                "failure_videos=0",
                "success_videos=0",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "expert pick" in printed and "report:" in printed
    results = json.loads((out / "results.json").read_text())
    md = (out / "report.md").read_text()
    rows = re.findall(r"^\| (\w+) \| (\w+) \| (\d+)/(\d+) ", md, flags=re.M)
    assert len(rows) == 2
    for policy, task, k, n in rows:
        m = results["per_policy"][policy]["tasks"][task]
        assert (m["successes"], m["episodes"]) == (int(k), int(n))
    assert (out / "success_rate.png").stat().st_size > 5000 and (out / "config.yaml").is_file()
    write_report(results, tmp_path / "again")  # the report is a pure function of the results
    assert (tmp_path / "again" / "report.md").read_text() == md


def test_bad_input_fails_before_the_first_episode(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(_cfg(tmp_path, "tasks=[juggle]"))
    with pytest.raises(ValueError, match="split"):
        evaluate(_cfg(tmp_path, "split=nope"))
    with pytest.raises(ValueError, match="unknown policy"):
        evaluate(_cfg(tmp_path, "policy=nope"))


def test_video_camera_must_be_rendered():
    def cfg(*overrides: str) -> EvalConfig:
        return to_dataclass(compose("eval", list(overrides)), EvalConfig)

    with pytest.raises(ValueError, match="video_camera"):  # video_size=0 films the observations
        evaluate(cfg("env.cameras=[wrist]", "video_camera=static", "video_size=0"))
    with pytest.raises(ValueError, match="video_camera"):  # a replay renders any camera, if it exists
        evaluate(cfg("video_camera=ceiling"))
    with pytest.raises(ValueError, match="video_size"):
        evaluate(cfg("video_size=4"))


def _reset_image(seed: int, size: int) -> np.ndarray:
    kw = {"task": "pick", "split": "heldout", "cameras": ("static",), "depth": False}
    env = gym.make(sim.ENV_ID, image_size=size, **kw)
    try:
        return env.reset(seed=seed)[0]["images/static"]
    finally:
        env.close()


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def _far(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of pixels more than 48 levels apart in some channel (edges, text; not codec noise)."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > 48).mean())


def test_kept_videos_are_replayed_at_video_size_with_captions(tmp_path, capsys):
    res = evaluate(_cfg(tmp_path, "episodes=1", "references=[]", "failure_videos=0", "success_videos=1"))
    (ep,) = res["episodes"]
    assert ep["success"] and res["videos"] == [f"{tmp_path}/videos/pick_success_seed{ep['seed']}.mp4"]
    frames = decode_video(res["videos"][0])
    assert frames.shape[1:] == (256, 256, 3) and len(frames) == ep["length"] + 1 + CONTROL_HZ  # + 1 s hold
    assert "diverged" not in capsys.readouterr().out
    first = frames[0]
    sharp, small = _reset_image(ep["seed"], 256), _reset_image(ep["seed"], 64)  # policy input: 64 px
    upscaled = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    below = slice(64, None)  # under the caption band
    assert _diff(first[below], sharp[below]) < 4.0  # a 256-px render, up to codec noise
    assert _far(first[below], upscaled[below]) > max(0.003, 5 * _far(first[below], sharp[below]))
    band = slice(0, 24)  # the instruction line: the scene darkened to 40% (<= 102), with white text on it
    assert _diff(first[band], sharp[band]) > 20 and np.median(first[band]) < 0.5 * np.median(sharp[band])
    assert (first[band].min(axis=2) > 180).sum() > 30  # text pixels: brighter than any darkened pixel
    last = frames[-1][:48].astype(int)
    assert ((last[..., 1] > 160) & (last[..., 0] < 140)).sum() > 20  # the outcome, in green


def test_a_diverging_replay_still_writes_its_video_with_one_warning(tmp_path, capsys):
    from vla.commands.eval import _KeptEpisode, _write_replays

    seed = sim.task_seeds("pick", "heldout", 1)[0]
    claimed = EpisodeResult("pick", seed, "heldout", "pick it up", True, 4, None, 0.0)  # never happened
    still = np.array([0, 0, 0, 0, 0, 0, 1], np.float32)
    kw = env_kwargs(EnvConfig(cameras=[]), {"name": "pick", "split": "heldout"})
    paths = _write_replays([_KeptEpisode(claimed, "success", (still,) * 4)], kw, "static", 96, tmp_path)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "diverged" in lines[0] and "success True -> False" in lines[0]
    assert paths == [str(tmp_path / f"pick_success_seed{seed}.mp4")]
    assert decode_video(paths[0]).shape == (4 + 1 + CONTROL_HZ, 96, 96, 3)


def test_video_size_zero_films_the_policy_camera(tmp_path):
    res = evaluate(
        _cfg(tmp_path, "episodes=1", "references=[]", "failure_videos=0", "success_videos=1", "video_size=0")
    )
    frames = decode_video(res["videos"][0])
    assert frames.shape[1:] == (64, 64, 3) and len(frames) == res["episodes"][0]["length"] + 1


def test_language_check_is_reported_beside_success(tmp_path, capsys):
    """`language_check=true`: the main policy runs again on each seed with a swapped instruction; the
    expert follows the new words every time and the old ones never, in results.json, report.md and the
    console; references are not language-checked."""
    out = tmp_path / "run"
    args = ["eval", *FAST_ENV, f"out={out}", "tasks=[place]", "episodes=2", "references=[random]"]
    assert cli_main([*args, "failure_videos=0", "success_videos=0", "language_check=true"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    m = results["language"]["place"]
    assert (m["episodes"], m["follows_new"], m["follows_old"], m["skipped"]) == (2, 2, 0, 0)
    assert "follows the new instruction 2/2 (100%" in printed and "the old one 0/2 (0%" in printed
    md = (out / "report.md").read_text()
    assert "## Language check" in md and "| place | 2/2 (100%" in md
    plain = json.loads(json.dumps(evaluate(_cfg(tmp_path / "plain", "tasks=[place]", "episodes=1",
                                                "references=[]", "failure_videos=0", "success_videos=0"))))
    assert "language" not in plain
    # language_episodes: the check on the first seeds only, success still on every one
    few = evaluate(_cfg(tmp_path / "few", "tasks=[place]", "episodes=2", "references=[]", "failure_videos=0",
                        "success_videos=0", "language_check=true", "language_episodes=1"))  # fmt: skip
    assert few["language"]["place"]["episodes"] == 1 and len(few["episodes"]) == 2


def test_outputs_are_per_run_and_never_clobbered(tmp_path, monkeypatch, capsys):
    """Without out= every run gets its own directory (tasks, policy, timestamp); an explicit out= holding
    another run's results is refused in one line (exit 2, its files untouched) unless overwrite=true,
    which deletes the old results first (no old video beside the new report)."""
    monkeypatch.chdir(tmp_path)
    quick = ["eval", *FAST_ENV, "policy=random", "episodes=1", "references=[]", "max_episode_steps=3"]
    assert cli_main([*quick, "failure_videos=0", "success_videos=0"]) == 0
    assert cli_main([*quick, "failure_videos=0", "success_videos=0"]) == 0
    runs = sorted((tmp_path / "outputs" / "eval").iterdir())
    assert len(runs) == 2 and all(re.fullmatch(r"pick-random-\d{8}-\d{6}(-2)?", r.name) for r in runs)
    assert all((r / "results.json").is_file() for r in runs)
    out = tmp_path / "mine"
    assert cli_main([*quick, f"out={out}", "failure_videos=1", "video_size=0"]) == 0
    (video,) = (out / "videos").iterdir()
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert cli_main([*quick, f"out={out}", "failure_videos=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "overwrite=true" in err[0], err
    assert video.is_file() and (out / "results.json").read_text() == before
    assert cli_main([*quick, f"out={out}", "failure_videos=0", "overwrite=true"]) == 0
    assert not (out / "videos").exists() and json.loads((out / "results.json").read_text())["videos"] == []
