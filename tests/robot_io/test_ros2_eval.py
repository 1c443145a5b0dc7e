"""`vla ros2 eval` end to end: the sim robot and the node as two processes over loopback DDS run the
scripted expert on the first two held-out seeds of `vla eval` (sim.tasks.task_seeds), and results.json
holds success with its Wilson interval, image -> command latency, the achieved command rate, the safety
interventions and the frame-set skew; a second run into the same out= is refused in one line."""

import json

from sim.tasks import task_seeds
from vla import cli
from vla.commands.ros2 import INTERVENTIONS


def test_ros2_eval_runs_the_expert_on_vla_evals_seeds(tmp_path, domain, capsys):
    out = tmp_path / "eval"
    args = ["ros2", "eval", "policy=expert", "tasks=[pick]", "episodes=2", "env.image_size=32", "rate_hz=20"]
    assert cli.main([*args, f"domain_id={domain}", f"out={out}"]) == 0
    summary = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    m = res["tasks"]["pick"]
    assert m["seeds"] == task_seeds("pick", "heldout", 2) == [e["seed"] for e in m["episode_results"]]
    assert m["episodes"] == 2 and m["successes"] == 2, (m, (out / "node_pick.log").read_text()[-2000:])
    assert m["success_ci95"][0] > 0.3 and m["success_ci95"][1] == 1.0
    lat = m["latency_ms"]
    assert lat["n"] >= 10 and 0 < lat["p50"] <= lat["p99"] < 1000
    assert 10 < m["command_rate_hz"] < 30 and m["commands_per_step"] > 0.5  # a 20 Hz sim
    assert m["skew_ms"]["p50"] == 0.0 and m["skew_ms"]["max"] <= 50.0  # one stamp per tick; max_skew_s
    assert set(m["interventions"]) <= set(INTERVENTIONS) and m["holds"]["hold_disabled"] > 0
    assert res["node_args"] == [
        "robot.max_translation=0.0867",
        "robot.max_rotation=0.52",
        "ee_target=commanded",
        "robot.velocity_scale=1.0",
        "robot.joint_jump_tolerance=0.2",
        "robot.command_tolerance=0.3",
    ]
    assert all(e["wait_s"] is not None and e["commands"] > 0 for e in m["episode_results"])
    assert "[ros2 eval] pick: expert through ROS 2" in summary and "2/2 episodes" in summary
    # the same out= again: one line, exit 2, the results kept
    assert cli.main([*args, f"domain_id={domain}", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds another run's results" in err[0]
    assert json.loads((out / "results.json").read_text()) == res
