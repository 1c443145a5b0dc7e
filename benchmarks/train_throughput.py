"""Training throughput against the machine's roofline, for one model preset. Prints ONE JSON line.

What one training step costs and what the machine could do, measured in one run:

    flops_per_sample     forward + backward FLOPs of one sample (torch's FlopCounterMode; it counts
                         matmuls and convolutions, not attention kernels or elementwise ops)
    matmul_gflops        1024x1024 fp32 matmul GFLOP/s with 1 thread and with every core
    roofline_samples_s   matmul_gflops[all cores] / flops_per_sample: the compute ceiling
    data_samples_s       WindowDataset reads + processor.collate only (what num_workers=0 costs)
    model_samples_s      forward + backward + clip + AdamW on batches collated beforehand
    step_samples_s       the trainer's step: read + collate + forward + backward + clip + AdamW
    roofline_ratio       step_samples_s / roofline_samples_s

per torch thread count in --threads (each measured in its own process, so the thread pools do not mix).

    python benchmarks/train_throughput.py                       # the demo's model, a synthetic store
    python benchmarks/train_throughput.py --preset default      # configs/train.yaml's tiny default
    python benchmarks/train_throughput.py --store outputs/demo/data/pick_colour.zarr --threads 1,2

Presets: `demo` is the model `vla demo` trains (`model=tiny_vla_film action_head=l1 use_state=false`),
`default` is `vla train`'s default (tiny_vla, action tokens, state). The synthetic store has random 64-px
images from two cameras: speed does not depend on image content.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla.commands.train import build_datasets, fit_action_tokenizer, load_config  # noqa: E402
from vla.core.types import STATE_KEY  # noqa: E402
from vla.data.store import EpisodeStore  # noqa: E402
from vla.models.vla import VLA  # noqa: E402
from vla.processor import ProcessorConfig  # noqa: E402
from vla.training.optim import build_optimizer  # noqa: E402

PRESETS = {
    "demo": ["model=tiny_vla_film", "action_head=l1", "use_state=false"],
    "default": [],
}


def matmul_gflops(threads: int, n: int = 1024, reps: int = 20) -> float:
    """fp32 n x n matmul GFLOP/s with `threads` torch threads (the best of three timings)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n**3 / best / 1e9


def build(store: str, preset: str):
    """The VLA `vla train` would build for `preset` on `store`, its train windows and its optimiser."""
    cfg = load_config([f"data.path={store}", "val_episodes=0", *PRESETS[preset]])
    train, _, _, actions, norm = build_datasets(cfg)
    tok = fit_action_tokenizer(cfg.tokenizer, actions, norm)
    state_dim = int(EpisodeStore.open(store).features[STATE_KEY].shape[0]) if cfg.use_state else 0
    pcfg = ProcessorConfig(
        cameras=list(cfg.cameras), use_state=cfg.use_state, state_dim=state_dim, prompt=cfg.prompt
    )
    torch.manual_seed(0)
    model = VLA.build(cfg.model, pcfg, tok, norm, action_head=cfg.action_head).train()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.95))
    return model, train, opt


def measure(store: str, preset: str, batch: int, steps: int, threads: int) -> dict:
    """Every per-thread-count figure of the docstring, in this process."""
    torch.set_num_threads(threads)
    model, train, opt = build(store, preset)
    rng = np.random.default_rng(0)

    def read_and_collate() -> dict:
        return model.processor.collate([train[int(i)] for i in rng.integers(0, len(train), batch)])

    def optimise(b: dict) -> None:
        model(b)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def rate(fn, n: int) -> float:
        fn()  # warm-up
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return n * batch / (time.perf_counter() - t)

    from torch.utils.flop_counter import FlopCounterMode

    probe = read_and_collate()
    with FlopCounterMode(display=False) as counter:
        model(probe)["loss"].backward()
    model.zero_grad(set_to_none=True)
    batches = [read_and_collate() for _ in range(8)]
    it = iter(range(10**9))
    return {
        "threads": threads,
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_sample": counter.get_total_flops() / batch,
        "data_samples_s": rate(read_and_collate, steps),
        "model_samples_s": rate(lambda: optimise(batches[next(it) % len(batches)]), steps),
        "step_samples_s": rate(lambda: optimise(read_and_collate()), steps),
        "matmul_gflops": matmul_gflops(threads),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--store", default="", help="an episode store (default: a synthetic 64-px store)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed batches per figure")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    counts = [int(x) for x in args.threads.split(",")]
    if args.child:  # one thread count, in its own process
        print(json.dumps(measure(args.store, args.preset, args.batch, args.steps, counts[0])))
        return
    store = args.store
    if not store:
        from vla_speed import synthetic_store  # the benchmarks' synthetic store (benchmarks/vla_speed.py)

        store = str(synthetic_store(Path(tempfile.mkdtemp(prefix="train_tp_")) / "syn.zarr", 64, 12, 40))
    runs = []
    for n in counts:
        cmd = [sys.executable, __file__, "--child", f"--threads={n}", f"--store={store}"]
        cmd += [f"--preset={args.preset}", f"--batch={args.batch}", f"--steps={args.steps}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    flops = runs[0]["flops_per_sample"]
    peak = matmul_gflops(os.cpu_count() or 1) * 1e9  # every core: the machine's ceiling
    for r in runs:
        r["roofline_ratio"] = round(r["step_samples_s"] * flops / peak, 3)
        for k in ("data_samples_s", "model_samples_s", "step_samples_s", "matmul_gflops"):
            r[k] = round(r[k], 1)
        del r["flops_per_sample"]
    out = {
        "benchmark": "train_throughput",
        "preset": args.preset,
        "model_overrides": PRESETS[args.preset],
        "store": args.store or "synthetic (12 episodes x 40 frames, 64 px, two cameras)",
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "flops_per_sample": round(flops),
        "mflops_per_sample": round(flops / 1e6, 1),
        "matmul_gflops_all_cores": round(peak / 1e9, 1),
        "roofline_samples_s": round(peak / flops, 1),
        "per_threads": runs,
        "best_step_samples_s": max(r["step_samples_s"] for r in runs),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
