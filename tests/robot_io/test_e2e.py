"""End to end over loopback DDS in two processes: the node drives the simulated robot through a `pick`
episode with the scripted expert, records a rosbag2, and the bag imports into the episode store."""

import json
import os
import signal
import subprocess
import sys

import numpy as np

from robot_io.dds import loopback_config
from vla import cli


def _vla(*args: str, log) -> subprocess.Popen:
    env = {**os.environ, "CYCLONEDDS_URI": os.environ.get("CYCLONEDDS_URI", loopback_config())}
    return subprocess.Popen(
        [sys.executable, "-m", "vla.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def test_node_drives_sim_robot_through_pick_and_bag_imports(tmp_path, domain):
    result, bag, store = tmp_path / "result.json", tmp_path / "bag", tmp_path / "store.zarr"
    with open(tmp_path / "sim.log", "w") as sim_log, open(tmp_path / "node.log", "w") as node_log:
        sim = _vla(
            "ros2", "sim-robot", f"domain_id={domain}", "task=pick", "seed=0", "env.image_size=64",
            "rate_hz=20", "task.max_episode_steps=120", "wait_for_command_s=30", f"result={result}",
            log=sim_log,
        )  # fmt: skip
        node = _vla(
            "ros2", "run", f"domain_id={domain}", "policy=expert", "+policy_kwargs.task=pick",
            "use_sim_info=true", "enabled=true", "rate_hz=20", "duration_s=60", f"record={bag}", log=node_log,
        )  # fmt: skip
        try:
            assert sim.wait(timeout=60) == 0, (tmp_path / "sim.log").read_text()[-3000:]
        finally:
            node.send_signal(signal.SIGTERM)
            node_rc = node.wait(timeout=20)
            sim.kill()
    node_out = (tmp_path / "node.log").read_text()
    assert node_rc == 0, node_out[-3000:]
    out = json.loads(result.read_text())
    assert out["results"][0]["success"], (out, node_out[-2000:])
    assert out["commands"] > 10 and out["malformed"] == 0
    assert "commands in" in node_out and bag.is_dir()

    assert cli.main(["import", "rosbag", str(bag), f"out={store}", "camera=static"]) == 0
    from vla.data.store import EpisodeStore

    st = EpisodeStore.open(store)
    assert st.num_episodes == 1 and st.episode_meta(0)["instruction"]
    assert st.episode_meta(0)["success"] is True  # as the recorded sim info says, not assumed
    ep = st.episode(0)
    t = ep["action"].shape[0]
    assert t >= 10 and ep["images/static"].shape == (t, 64, 64, 3) and ep["state"].shape == (t, 15)
    assert np.all(np.linalg.norm(ep["action"][:, :3], axis=1) <= 0.025 + 1e-6)  # the safety-passed commands
