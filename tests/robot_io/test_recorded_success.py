"""`robot_io.convert.recorded_success`: an episode's outcome comes from what the recording holds (the
simulator's info messages, as the sim robot publishes them from the real env), or is unknown (None), never
assumed to be a success."""

import json

import gymnasium as gym
import numpy as np

import sim
from robot_io import msgs
from robot_io.convert import recorded_success
from robot_io.sim_robot import info_to_json


def _info_messages(seed: int, steps: int, t0: int, episode: int) -> list[tuple[int, msgs.String]]:
    """The sim robot's info messages of `steps` steps of the real pick env holding still (a failure so
    far), one per step, 100 ms apart from `t0` ns."""
    env = gym.make(sim.ENV_ID, task="pick", cameras=[], image_size=16, depth=False)
    try:
        env.reset(seed=seed)
        out = []
        for k in range(steps):
            _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1], np.float32))
            out.append((t0 + k * 100_000_000, msgs.String(data=info_to_json(info, episode))))
        return out
    finally:
        env.close()


def _with_success(message: msgs.String, value: object) -> msgs.String:
    info = json.loads(message.data)
    info["is_success"] = value
    return msgs.String(data=json.dumps(info))


def test_outcome_is_read_from_the_recording_or_unknown():
    first = _info_messages(seed=0, steps=3, t0=1_000_000_000, episode=0)
    second = _info_messages(seed=1, steps=3, t0=2_000_000_000, episode=1)
    assert recorded_success(first, 1_000_000_000, 2_000_000_000) is False  # the env said: not (yet) lifted
    # the last message of the span decides; the second episode's messages are outside the first's span
    lifted = [*first[:-1], (first[-1][0], _with_success(first[-1][1], True))]
    assert recorded_success([*lifted, *second], 1_000_000_000, 2_000_000_000) is True
    assert recorded_success([*lifted, *second], 2_000_000_000) is False
    # no info in the span (a real robot's bag): unknown, not a success
    assert recorded_success([], 0) is None
    assert recorded_success(first, 5_000_000_000) is None
    # messages that say nothing are skipped: not JSON, not an object, no boolean is_success
    junk = [(3_000_000_000, msgs.String(data=d)) for d in ("not json", "[1, 2]", '{"is_success": "yes"}')]
    assert recorded_success(junk, 0) is None
    assert recorded_success([*first, *junk], 0) is False
