"""`vla eval`: Wilson intervals, the expert's known success through the policy path, reproducibility
(same seeds, 1 or 2 env processes), per-episode errors that don't stop the run, report == JSON."""

import json
import re

import numpy as np
import pytest

from vla.cli import main as cli_main
from vla.commands.eval import EvalConfig, evaluate
from vla.core.config import compose, to_dataclass
from vla.core.policy import POLICIES
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
    from vla.commands.eval import EvalConfig, evaluate
    from vla.core.config import compose, to_dataclass

    cfg = to_dataclass(compose("eval", ["env.cameras=[wrist]", "video_camera=static"]), EvalConfig)
    with pytest.raises(ValueError, match="video_camera"):
        evaluate(cfg)
