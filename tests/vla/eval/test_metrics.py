"""The one episode summary: `summarize` is `task_metrics` per task; report.md, the console lines and
`vla demo`'s table format a task's success and interval with the same cells."""

import math

import pytest

from vla.core.rollout import EpisodeResult
from vla.eval.metrics import summarize, task_metrics, wilson_interval
from vla.eval.report import ci_cell, markdown, success_cell, summary_lines


def _result(task, seed, success, length=10, error=None):
    return EpisodeResult(task, seed, "train", "lift it", success, length, error, wall_time_s=0.5)


def test_summarize_is_task_metrics_per_task():
    rs = [_result("push", 0, True), _result("pick", 1, False, 20), _result("push", 2, False, error="boom")]
    summary = summarize(rs)
    assert list(summary) == ["pick", "push"]
    assert summary["push"] == task_metrics([rs[0], rs[2]])
    push = summary["push"]
    assert (push["episodes"], push["successes"], push["errors"]) == (2, 1, 1)
    assert (push["ci95_low"], push["ci95_high"]) == pytest.approx(wilson_interval(1, 2))
    assert summary["pick"]["mean_length"] == 20 and summary["pick"]["control_rate_hz"] == 40.0
    assert summarize([]) == {}


def test_tables_share_the_cells():
    m = {**task_metrics([_result("pick", 0, True), _result("pick", 1, False)]), "latency_p50_ms": math.nan}
    m["latency_p95_ms"] = math.nan
    assert success_cell(m) == "1/2 (50%)" and ci_cell(m) == "9%-91%"
    results = {
        "policy": "expert",
        "split": "heldout",
        "episodes_per_task": 2,
        "seed_rule": "first n",
        "per_policy": {"expert": {"tasks": {"pick": m}}},
        "wall_time_s": 1.0,
        "episodes_per_min": 120.0,
        "episodes": [],
    }
    (line,) = summary_lines(results)
    assert "expert pick" in line and "1/2 (50%)" in line and "95% CI 9%-91%" in line and "p50 n/a ms" in line
    assert "| expert | pick | 1/2 (50%) | 9%-91% |" in markdown(results)
    # an episode of the language check that errored is listed with the run's own errored episodes
    from vla.eval.language import language_summary

    class Watched:  # what language_check's observers hold once an episode ends
        followed, result = False, _result("pick", 7, False, error="RuntimeError: policy exploded")

    results["language"] = {"pick": language_summary("pick", "heldout", [Watched()], 0)}
    md = markdown(results)
    assert "## Episode errors" in md and "pick seed 7: RuntimeError: policy exploded" in md
