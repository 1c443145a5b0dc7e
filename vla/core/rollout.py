"""The one rollout loop: a Policy acting in an env for an episode, with observers attached.

Collection (a recorder observer), evaluation (metrics/video observers) and tests all run through here.
`run_episode` drives one gymnasium env; `run_episodes_vector` drives a `gymnasium.vector.AsyncVectorEnv`
over a list of seeds with one policy per sub-env (from a factory) and fresh observers per episode (from a
factory); `run_rollouts` takes either kind of env and picks the loop (what `vla collect` and `vla eval`
call). An exception raised by the policy or the env ends that episode with `error` set and the run
goes on; a physics blow-up reported by the env (`info["error"]`) ends it the same way. `reset_options`
(e.g. `{"swap_instruction": True}`, the language check) go to every episode's `env.reset(options=...)`;
without them every reset is exactly `reset(seed=s)` (a vector env's: `options={"reset_mask": ...}`).

    result = run_episode(env, expert, seed=3, observers=[VideoRecorder("ep3.mp4")])
    results = run_episodes_vector(venv, lambda i: make_expert("pick"), seeds=[0, 1, 2, 3])
    results = run_rollouts(env_or_venv, lambda i: make_expert("pick"), seeds, progress="pick")
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.core.types import check_action


@dataclass
class EpisodeResult:
    """Outcome of one episode."""

    task: str
    seed: int
    split: str
    instruction: str
    success: bool
    length: int
    error: str | None
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Observer(Protocol):
    """Sees every episode: the first observation, every (obs, action, outcome) step, the result.

    `on_step` receives the observation the action was chosen from (not the one after it). An observer
    may also define `on_final_observation(obs)`: it then receives the observation after the episode's
    last action, just before `on_episode_end`."""

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None: ...

    def on_step(
        self,
        obs: Mapping[str, Any],
        action: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None: ...

    def on_episode_end(self, result: EpisodeResult) -> None: ...


class ReplayPolicy:
    """A Policy that plays back recorded actions [T, A] in order, for replays of a deterministic env:
    `run_episode(env, ReplayPolicy(actions), seed, max_steps=len(actions))`. Asking for action T+1 is an
    IndexError (the episode then ends with that error)."""

    def __init__(self, actions: Sequence[np.ndarray] | np.ndarray):
        self.actions = [np.array(a, dtype=np.float32) for a in actions]  # copies: never the caller's
        self.t = 0

    def reset(self, seed: int | None = None) -> None:
        self.t = 0

    def select_action(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> np.ndarray:
        if self.t >= len(self.actions):
            raise IndexError(f"ReplayPolicy: only {len(self.actions)} recorded actions")
        self.t += 1
        return self.actions[self.t - 1]


def _format_error(e: BaseException, where: str) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    loc = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{where} raised {type(e).__name__}: {e}{loc}"


def _reset_policy(policy: Any, seed: int) -> None:
    policy.reset(seed)


def run_episode(
    env: Any,
    policy: Any,
    seed: int,
    observers: Iterable[Observer] = (),
    max_steps: int | None = None,
    reset_options: Mapping[str, Any] | None = None,
) -> EpisodeResult:
    """Run one episode of `policy` in `env` from `reset(seed=seed)` (plus `options=reset_options` when
    given); never raises for policy/env errors."""
    observers = list(observers)
    t0 = time.perf_counter()
    task = str(getattr(env.unwrapped, "task_name", "") or "")
    split = str(getattr(env.unwrapped, "split", "") or "")
    instruction, length, success, error = "", 0, False, None
    obs = None
    try:
        if reset_options is None:
            obs, info = env.reset(seed=int(seed))
        else:
            obs, info = env.reset(seed=int(seed), options=dict(reset_options))
        task, split = str(info.get("task", task)), str(info.get("split", split))
        instruction = str(info.get("instruction", obs.get("instruction", "")))
        _reset_policy(policy, int(seed))
        for o in observers:
            o.on_episode_start(obs, info)
        while max_steps is None or length < max_steps:
            try:
                action = np.asarray(policy.select_action(obs, info), dtype=np.float32)
            except Exception as e:  # a broken policy ends its episode, not the run
                error = _format_error(e, "policy")
                break
            next_obs, reward, terminated, truncated, info = env.step(action)
            length += 1
            for o in observers:
                o.on_step(obs, action, float(reward), bool(terminated), bool(truncated), info)
            obs = next_obs
            success = bool(info.get("is_success", False))
            if info.get("error"):
                error = str(info["error"])
            if terminated or truncated:
                break
    except Exception as e:
        error = _format_error(e, "env")
    result = EpisodeResult(
        task=task,
        seed=int(seed),
        split=split,
        instruction=instruction,
        success=success and error is None,
        length=length,
        error=error,
        wall_time_s=time.perf_counter() - t0,
    )
    if obs is not None:
        _final_observation(observers, obs)
    for o in observers:
        o.on_episode_end(result)
    return result


def _final_observation(observers: Sequence[Any], obs: Mapping[str, Any]) -> None:
    """Optional hook: observers with `on_final_observation(obs)` see the observation after the last
    action (e.g. a video recorder shows the end state); the Observer protocol does not require it."""
    for o in observers:
        hook = getattr(o, "on_final_observation", None)
        if hook is not None:
            hook(obs)


# ---- vector envs ------------------------------------------------------------------------------------
def unbatch(tree: Any, i: int) -> Any:
    """Sub-env `i`'s entry of a batched observation or info dict (gymnasium's `_key` masks dropped)."""
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            if isinstance(k, str) and k.startswith("_"):
                continue
            mask = tree.get(f"_{k}")
            if mask is not None and not bool(np.asarray(mask)[i]):
                continue
            out[k] = unbatch(v, i)
        return out
    if isinstance(tree, tuple):
        return tree[i]
    if isinstance(tree, np.ndarray):
        item = tree[i]
        return item.item() if isinstance(item, np.generic) else item
    return tree


@dataclass
class _Slot:
    seed: int
    policy: Any
    observers: list
    obs: Any = None
    info: Any = None
    instruction: str = ""
    length: int = 0
    t0: float = 0.0


def run_episodes_vector(
    venv: Any,
    policy_factory: Callable[[int], Any],
    seeds: Sequence[int],
    observer_factory: Callable[[int], Sequence[Observer]] | None = None,
    stop: Callable[[], bool] | None = None,
    reset_options: Mapping[str, Any] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed on an AsyncVectorEnv (autoreset disabled); results in `seeds` order.

    `policy_factory(i)` builds sub-env i's policy once; `observer_factory(seed)` builds fresh observers
    for each episode. Sub-envs take the next pending seed when their episode ends; idle ones step with
    their last action and are ignored. A crash in one sub-env's policy ends only that episode. Once
    `stop()` is true no sub-env starts another episode (the running ones finish; the seeds left over have
    no result). `reset_options` join the `reset_mask` option of every reset.
    """
    from gymnasium.vector import AutoresetMode

    mode = venv.metadata.get("autoreset_mode")
    if mode is not None and AutoresetMode(mode) is not AutoresetMode.DISABLED:
        raise ValueError(f"run_episodes_vector: expected autoreset_mode=DISABLED, got {mode}")
    n = venv.num_envs
    policies = [policy_factory(i) for i in range(n)]
    pending = list(enumerate(int(s) for s in seeds))
    results: dict[int, EpisodeResult] = {}
    slots: list[tuple[int, _Slot] | None] = [None] * n
    last_action = np.zeros(venv.single_action_space.shape, dtype=np.float32)
    last_action[-1] = 1.0
    actions = np.stack([last_action] * n)

    def start(idxs: list[int]) -> None:
        if not idxs:
            return
        mask = np.zeros(n, dtype=bool)
        mask[idxs] = True
        seed_list: list[int | None] = [None] * n
        for i in idxs:
            seed_list[i] = slots[i][1].seed
        obs, info = venv.reset(seed=seed_list, options={**(reset_options or {}), "reset_mask": mask})
        for i in idxs:
            slot = slots[i][1]
            slot.obs, slot.info = unbatch(obs, i), unbatch(info, i)
            slot.instruction = str(slot.info.get("instruction", slot.obs.get("instruction", "")))
            slot.t0 = time.perf_counter()
            slot.policy.reset(slot.seed)
            for o in slot.observers:
                o.on_episode_start(slot.obs, slot.info)

    def finish(i: int, success: bool, error: str | None) -> None:
        k, slot = slots[i]
        res = EpisodeResult(
            task=str(slot.info.get("task", "")),
            seed=slot.seed,
            split=str(slot.info.get("split", "")),
            instruction=slot.instruction,
            success=success and error is None,
            length=slot.length,
            error=error,
            wall_time_s=time.perf_counter() - slot.t0,
        )
        _final_observation(slot.observers, slot.obs)
        for o in slot.observers:
            o.on_episode_end(res)
        results[k] = res
        slots[i] = None

    def assign() -> None:
        fresh = []
        for i in range(n):
            if slots[i] is None and pending and not (stop is not None and stop()):
                k, seed = pending.pop(0)
                obs_list = list(observer_factory(seed)) if observer_factory else []
                slots[i] = (k, _Slot(seed=seed, policy=policies[i], observers=obs_list))
                fresh.append(i)
        start(fresh)

    assign()
    while any(s is not None for s in slots):
        for i in range(n):
            if slots[i] is None:
                continue
            slot = slots[i][1]
            try:
                a = check_action(slot.policy.select_action(slot.obs, slot.info), actions.shape[1])
                actions[i] = a
            except Exception as e:
                finish(i, False, _format_error(e, "policy"))
        obs, rew, term, trunc, info = venv.step(actions)
        for i in range(n):
            if slots[i] is None:
                continue
            slot = slots[i][1]
            step_info = unbatch(info, i)
            slot.length += 1
            for o in slot.observers:
                o.on_step(
                    slot.obs, actions[i].copy(), float(rew[i]), bool(term[i]), bool(trunc[i]), step_info
                )
            slot.obs, slot.info = unbatch(obs, i), step_info
            error = step_info.get("error") or None
            if term[i] or trunc[i] or error:
                finish(i, bool(step_info.get("is_success", False)), error)
        assign()
    return [results[k] for k in sorted(results)]


class ProgressBar:
    """Observer: advances a shared tqdm bar at each episode end, with `postfix()` (when given) as the bar's
    postfix (e.g. `vla collect`'s kept episodes and frames)."""

    def __init__(self, bar: Any, postfix: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.bar, self.postfix = bar, postfix

    def on_episode_start(self, obs: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        pass

    def on_step(self, *args: Any) -> None:
        pass

    def on_episode_end(self, result: EpisodeResult) -> None:
        self.bar.update(1)
        if self.postfix is not None:
            self.bar.set_postfix(**self.postfix())


def run_rollouts(
    env: Any,
    policy_factory: Callable[[int], Any],
    seeds: Sequence[int],
    observer_factory: Callable[[int], Sequence[Observer]] | None = None,
    progress: str | None = None,
    stop: Callable[[], bool] | None = None,
    reset_options: Mapping[str, Any] | None = None,
) -> list[EpisodeResult]:
    """One episode per seed in `env`, a gymnasium env or a vector env (autoreset disabled); results in
    `seeds` order. The caller owns `env` (and closes it).

    A single env runs the seeds one after another with one policy, `policy_factory(0)`, built once; a
    vector env runs them through `run_episodes_vector` with sub-env i's policy `policy_factory(i)`.
    `observer_factory(seed)` builds each episode's observers. `progress` is the description of a tqdm bar
    (None: no bar). `stop()` is checked before each episode starts: once it is true no further episode
    starts (in a vector env the running ones finish), and the seeds left over have no result.
    `reset_options` go to every episode's reset (None: plain `reset(seed=s)`).
    """
    from gymnasium.vector import VectorEnv

    bar = None
    if progress is not None:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), desc=progress, unit="ep", leave=False)

    def observers(seed: int) -> list[Observer]:
        own = list(observer_factory(seed)) if observer_factory is not None else []
        return own + ([ProgressBar(bar)] if bar is not None else [])

    try:
        if isinstance(env, VectorEnv):
            return run_episodes_vector(env, policy_factory, seeds, observers, stop, reset_options)
        policy = policy_factory(0)
        results = []
        for seed in seeds:
            if stop is not None and stop():
                break
            results.append(run_episode(env, policy, seed, observers(seed), reset_options=reset_options))
        return results
    finally:
        if bar is not None:
            bar.close()

