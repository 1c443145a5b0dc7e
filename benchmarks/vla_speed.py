"""VLA speed on this machine: training samples/s of the default tiny config (configs/train.yaml), the
`predict_action` latency and control rate of a VLAPolicy (preprocessing of 128 px env images included),
and KV-cached vs full-recomputation constrained decoding measured side by side. Prints ONE JSON line.

    python benchmarks/vla_speed.py                      # CPU, 1 torch thread (the shared-machine setting)
    python benchmarks/vla_speed.py --threads 2 --train-steps 40
    python benchmarks/vla_speed.py --device cuda --preset siglip_qwen2_0p5b --bf16   # on a GPU

Training data is a synthetic store (random 64 px images, two cameras, state, actions): speed does not
depend on content. Decoding is timed for a 1-step chunk (7 action tokens) and an 8-step chunk (56 tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla.data.store import EpisodeStore  # noqa: E402
from vla.core.types import ACTION_NAMES, STATE_NAMES, FeatureSpec, FeatureType  # noqa: E402


def synthetic_store(path: Path, size: int, episodes: int = 6, length: int = 40) -> Path:
    feats = {
        "images/static": FeatureSpec(FeatureType.VISUAL, (size, size, 3), "uint8"),
        "images/wrist": FeatureSpec(FeatureType.VISUAL, (size, size, 3), "uint8"),
        "state": FeatureSpec(FeatureType.STATE, (15,), "float32", STATE_NAMES),
        "action": FeatureSpec(FeatureType.ACTION, (7,), "float32", ACTION_NAMES),
    }
    store = EpisodeStore.create(path, feats, fps=10, overwrite=True)
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        frames = {
            k: (rng.integers(0, 256, (length, *s.shape), dtype=np.uint8) if s.dtype == "uint8" else
                rng.standard_normal((length, *s.shape)).astype(np.float32) * 0.05)
            for k, s in feats.items()
        }  # fmt: skip
        store.append_episode(frames, {"instruction": "pick up the red cube", "task": "pick"})
    store.close()
    return path


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="", help="model preset instead of configs/train.yaml's tiny model")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vla.models.vla import VLA
    from vla.commands.train import load_config, run

    tmp = Path(tempfile.mkdtemp(prefix="vla_speed_"))
    base = load_config([])  # the default train config (tiny model, 64 px, two cameras, state)
    size = int(base.model.vision.image_size)
    store = synthetic_store(tmp / "syn.zarr", size)

    def overrides(name: str, steps: int, chunk: int = 1) -> list[str]:
        o = [
            str(store),
            f"out={tmp / name}",
            "val_episodes=0",
            f"trainer.steps={steps}",
            f"chunk_len={chunk}",
        ]
        o += ["trainer.progress=false", "trainer.warmup_steps=1", f"trainer.device={args.device}"]
        o += ["trainer.precision=" + ("bf16" if args.bf16 else "fp32")]
        return o + ([f"model={args.preset}"] if args.preset else [])

    cfg = load_config(overrides("run", args.train_steps))
    # training: samples/s over the run, measured by the trainer; its own prints go to stderr
    with contextlib.redirect_stdout(sys.stderr):
        res = run(cfg)
    model = VLA.from_pretrained(res.checkpoint).to(args.device)
    if args.bf16:
        model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())

    # predict_action from 128 px env-sized observations (resize + normalise + prompt + decode + unnormalise)
    rng = np.random.default_rng(1)
    obs = {
        "images/static": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
        "images/wrist": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
        "state": rng.standard_normal(15).astype(np.float32),
        "instruction": "pick up the red cube",
    }
    timed(lambda: model.predict_action(obs), 3)  # warm-up
    lat = timed(lambda: model.predict_action(obs), args.calls)
    p50 = statistics.median(lat)

    # KV cache vs full recomputation, same inputs, same tokens, chunk 1 (7 tokens) and chunk 8 (56 tokens)
    decoding = {}
    for chunk in (1, 8):
        if chunk == 1:
            m = res
        else:
            with contextlib.redirect_stdout(sys.stderr):
                m = run(load_config(overrides(f"chunk{chunk}", 1, chunk)))
        mc = VLA.from_pretrained(m.checkpoint).to(args.device)
        inputs = mc.processor.preprocess([obs])
        a = mc.generate_action_ids(inputs, use_cache=True)
        b = mc.generate_action_ids(inputs, use_cache=False)
        t_kv = statistics.median(timed(lambda mc=mc, i=inputs: mc.generate_action_ids(i, use_cache=True), 15))
        t_full = statistics.median(
            timed(lambda mc=mc, i=inputs: mc.generate_action_ids(i, use_cache=False), 15)
        )
        decoding[f"chunk{chunk}"] = {
            "tokens": int(a.shape[1]),
            "kv_ms": round(1e3 * t_kv, 2),
            "full_ms": round(1e3 * t_full, 2),
            "speedup": round(t_full / t_kv, 2),
            "same_tokens": bool(torch.equal(a, b)),
        }
    out = {
        "benchmark": "vla_speed",
        "device": args.device,
        "torch_threads": args.threads,
        "model": args.preset or "train.yaml tiny",
        "params_m": round(n_params / 1e6, 3),
        "image_size": size,
        "cameras": list(base.cameras),
        "train_batch": int(cfg.trainer.batch_size),
        "train_steps": int(res.step),
        "train_samples_per_s": round(res.samples_per_s, 1),
        "predict_action_p50_ms": round(1e3 * p50, 2),
        "predict_action_p95_ms": round(1e3 * float(np.percentile(lat, 95)), 2),
        "control_rate_hz": round(1.0 / p50, 1),
        "decoding": decoding,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
