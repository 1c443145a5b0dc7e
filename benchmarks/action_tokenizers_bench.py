"""Benchmark of the action tokenizers on scripted-expert trajectories; prints ONE JSON line.

Trajectories: the simulator's scripted experts (`sim.experts.make_expert`) run through the shared rollout
loop (`vla.eval.rollout.run_episode`) on pick/place/push/stack, noise-free and with demonstration noise
0.003; an observer records the actions. 80% of the episodes fit the dataset q99 Normalizer and the
tokenizers, 20% are held out; every figure is measured on held-out 1-s chunks (10 steps at 10 Hz,
7-D EE-delta actions).

Figures per tokenizer (uniform 256, openvla 256, quantile 256, fast at several DCT scales): tokens per
1-s chunk, mean/max reconstruction error in normalised units ([-1, 1] after q99) and in raw units, and
encode/decode throughput on the held-out chunks. FAST compression ratio = 70 tokens of the 256-bin
tokenizer / FAST's mean tokens, at the smallest token count whose mean error is <= the 256-bin mean error
(and, separately, whose max error is <=). FAST's BPE vocabulary is 1024 up to scale 75; larger scales need
a larger coefficient alphabet, so their vocabulary grows (power of two >= twice the alphabet; reported).
Uniform vectorised throughput is measured on 1M actions.

    python benchmarks/action_tokenizers_bench.py [--episodes 8] [--noise 0.0 0.003] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# This file is named like the `tokenizers` library: drop its own folder from the import path (python puts
# it first when the file runs as a script) and add the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from action_tokenizers import make_tokenizer  # noqa: E402
from action_tokenizers.evaluation import TokenizerPipeline, chunk_episodes, evaluate, fit_normalizer  # noqa: E402

TASKS = ("pick", "place", "push", "stack")
FAST_SCALES = (10, 20, 30, 50, 75, 100, 150, 200, 300)


class ActionLog:
    """Rollout observer keeping the actions of one episode."""

    def __init__(self) -> None:
        self.actions: list[np.ndarray] = []

    def on_episode_start(self, obs, info) -> None:
        self.actions = []

    def on_step(self, obs, action, reward, terminated, truncated, info) -> None:
        self.actions.append(np.array(action, dtype=np.float64, copy=True))

    def on_episode_end(self, result) -> None:
        pass


def expert_episodes(n_per_task: int, seed: int, noise: float) -> tuple[list[np.ndarray], dict]:
    """Expert action trajectories [T_e, 7], n_per_task per task, with the rollout outcome counts."""
    import gymnasium as gym
    from tqdm import tqdm

    import sim  # noqa: F401  (registers the env id)
    from sim.experts import make_expert
    from vla.eval.rollout import run_episode

    eps, success = [], 0
    bar = tqdm(total=n_per_task * len(TASKS), desc=f"expert rollouts (noise {noise})", file=sys.stderr)
    for task in TASKS:
        env = gym.make("vla/Tabletop-v0", task=task, cameras=("static",), image_size=8, depth=False)
        for k in range(n_per_task):
            log = ActionLog()
            res = run_episode(
                env, make_expert(task, noise=noise, seed=seed + k), seed=seed + k, observers=[log]
            )
            success += int(res.success)
            if len(log.actions) >= 10:
                eps.append(np.stack(log.actions))
            bar.update(1)
        env.close()
    bar.close()
    return eps, {"episodes": len(eps), "expert_success": success, "steps": int(sum(len(e) for e in eps))}


def uniform_throughput(n_actions: int = 1_000_000) -> dict:
    tok = make_tokenizer("uniform", action_dim=7, chunk_len=10)
    x = np.random.default_rng(0).uniform(-1, 1, (n_actions // 10, 10, 7))  # [N, T, D]
    best_e = best_d = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ids = tok.encode(x)
        t1 = time.perf_counter()
        tok.decode(ids)
        t2 = time.perf_counter()
        best_e, best_d = min(best_e, t1 - t0), min(best_d, t2 - t1)
    return {
        "uniform_encode_actions_per_s": n_actions / best_e,
        "uniform_decode_actions_per_s": n_actions / best_d,
    }


def summary(rep: dict) -> dict:
    keys = ("tokens_per_chunk_mean", "mae_norm", "max_norm", "invalid_decodes")
    out = {k: rep[k] for k in keys}
    out["tokens_per_1s"] = rep["tokens_per_chunk_mean"] * (10 // rep["chunk_len"])
    out["mae_raw"] = float(np.mean(rep["mae_raw_per_dim"]))
    out["max_raw"] = float(np.max(rep["max_raw_per_dim"]))
    out["encode_actions_per_s"] = rep["encode_actions_per_s"]
    out["decode_actions_per_s"] = rep["decode_actions_per_s"]
    out["vocab_size"] = rep["vocab_size"]
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def measure_dataset(eps: list[np.ndarray], seed: int) -> dict:
    """All tokenizer figures for one set of expert episodes (80% fit, 20% held out)."""
    order = np.random.default_rng(seed).permutation(len(eps))
    n_eval = max(1, len(eps) // 5)
    eval_eps = [eps[i] for i in order[:n_eval]]
    fit_eps = [eps[i] for i in order[n_eval:]]
    norm = fit_normalizer(np.concatenate(fit_eps))
    fit_1 = chunk_episodes(fit_eps, 1)  # [N, 1, D] rows for per-step tokenizers
    fit_10 = chunk_episodes(fit_eps, 10, stride=1)  # [N, 10, D] overlapping windows for FAST's BPE
    eval_10 = chunk_episodes(eval_eps, 10, stride=1)  # [M, 10, D] held-out 1-s chunks
    results = {}
    for name in ("uniform", "openvla", "quantile"):
        extra = {"edges": "quantile"} if name == "quantile" else {}
        pipe = TokenizerPipeline(make_tokenizer(name, action_dim=7, chunk_len=1, **extra), norm).fit(fit_1)
        results[name] = summary(evaluate(pipe, eval_10.reshape(-1, 1, 7), norm))
    fast = {}
    for scale in FAST_SCALES:
        alphabet = 2 * int(np.ceil(np.sqrt(10) * scale)) + 1
        vocab = max(1024, int(2 ** np.ceil(np.log2(2 * alphabet))))  # leave room for merges
        tok = make_tokenizer("fast", action_dim=7, chunk_len=10, scale=float(scale), vocab_size=vocab)
        pipe = TokenizerPipeline(tok, norm).fit(fit_10)
        fast[scale] = summary(evaluate(pipe, eval_10, norm))
    results["fast_scale10_vocab1024"] = fast[10]
    ref = results["uniform"]
    ratios = {}
    for crit in ("mae_norm", "max_norm"):
        ok = [s for s in FAST_SCALES if fast[s][crit] <= ref[crit]]
        best = min(ok, key=lambda s: fast[s]["tokens_per_1s"]) if ok else None
        ratios[crit] = best and {
            "scale": best,
            "tokens_per_1s": fast[best]["tokens_per_1s"],
            "error": fast[best][crit],
            "vocab_size": fast[best]["vocab_size"],
            "ratio_vs_256bin": round(ref["tokens_per_1s"] / fast[best]["tokens_per_1s"], 3),
        }
    keys = ("tokens_per_1s", "mae_norm", "max_norm", "vocab_size")
    return {
        "fit_episodes": len(fit_eps),
        "eval_chunks": len(eval_10),
        "tokenizers": results,
        "fast_sweep": {str(s): {k: fast[s][k] for k in keys} for s in fast},
        "fast_compression_at_equal_or_lower_error": ratios,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=8, help="expert episodes per task and noise level")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.003], help="expert noise levels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.perf_counter()
    per_noise = {}
    for noise in args.noise:
        eps, rollout = expert_episodes(args.episodes, args.seed, noise)
        per_noise[f"noise_{noise}"] = {**rollout, **measure_dataset(eps, args.seed)}
    out = {
        "benchmark": "action_tokenizers",
        "chunk": "1 s = 10 steps x 7 EE-delta dims, held-out expert episodes, errors in q99-normalised units",
        "tasks": list(TASKS),
        "datasets": per_noise,
        **{k: round(v) for k, v in uniform_throughput().items()},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
