"""Benchmark: parameters, visual tokens and forward time per image for every vision encoder x connector,
at the tiny CPU config and at realistic sizes (random init), batch 1 and 8, plus the LMs' size and prefill.

Prints JSON Lines: one line per row, `{"benchmark": "backbones", "config": "tiny"|"realistic",
"encoder", "connector", "batch", "params_encoder", "params_connector", "visual_tokens",
"encoder_ms_per_image", "connector_ms_per_image", "forward_ms_per_image"}`, one `"kind": "lm"` line per
LM (params, prefill ms for its visual tokens + 32 text tokens), and a final `"kind": "summary"` line.

Realistic encoders are heavy on a CPU, so each encoder runs once per batch size and every connector is
timed on that encoder's output features; forward_ms = encoder_ms + connector_ms (the same work as one
stacked forward). Models are built one at a time and freed (memory-safe on a shared 24 GiB machine).

    python benchmarks/backbones.py                      # tiny + realistic (minutes)
    python benchmarks/backbones.py --only tiny          # seconds
    python benchmarks/backbones.py --dtype bf16         # on a GPU where one is available
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from functools import partial

import torch
from tqdm import tqdm

from vla.backbones import (
    ConnectorConfig,
    LMConfig,
    build_connector,
    build_language_model,
    build_vision_encoder,
    load_text_tokenizer,
)
from vla.backbones.presets import (
    CONNECTOR_NAMES,
    QWEN2_0P5B,
    REALISTIC_VISION,
    TINY_LM,
    VISION_NAMES,
    tiny_connector_config,
    tiny_vision_config,
)

TINY_HIDDEN = 64  # tiny LM width the connectors project to
REAL_HIDDEN = QWEN2_0P5B["hidden_size"]


def _time(fn, repeats: int, warmup: int) -> float:
    """Median wall time of fn() in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2]


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def bench_config(name: str, batches: list[int], repeats: int, warmup: int, dtype: torch.dtype, device: str):
    """Yield one row per encoder x connector x batch."""
    vision = {n: tiny_vision_config(n) for n in VISION_NAMES} if name == "tiny" else dict(REALISTIC_VISION)
    hidden = TINY_HIDDEN if name == "tiny" else REAL_HIDDEN
    for enc_name in tqdm(VISION_NAMES, desc=f"{name} encoders", file=sys.stderr):
        torch.manual_seed(0)
        enc = build_vision_encoder(vision[enc_name]).to(device, dtype).eval()
        size = enc.image_size
        conns = {}
        for c in CONNECTOR_NAMES:
            cfg = tiny_connector_config(c) if name == "tiny" else ConnectorConfig(name=c)
            conns[c] = build_connector(cfg, enc.embed_dim, hidden).to(device, dtype).eval()
        for b in batches:
            images = torch.randn(b, 3, size, size, device=device, dtype=dtype)
            with torch.inference_mode():
                enc_ms = _time(partial(enc, images), repeats, warmup)
                feats = enc(images)  # [B,P,E]
                for c, conn in conns.items():
                    conn_ms = _time(partial(conn, feats), max(repeats, 3), 1)
                    yield {
                        "benchmark": "backbones",
                        "kind": "stack",
                        "config": name,
                        "encoder": enc_name,
                        "connector": c,
                        "batch": b,
                        "image_size": size,
                        "params_encoder": _params(enc),
                        "params_connector": _params(conn),
                        "visual_tokens": conn.num_tokens(feats.shape[1]),
                        "encoder_ms_per_image": round(enc_ms / b, 3),
                        "connector_ms_per_image": round(conn_ms / b, 3),
                        "forward_ms_per_image": round((enc_ms + conn_ms) / b, 3),
                    }
        enc = conns = feats = None
        gc.collect()


def bench_lm(
    name: str, visual_tokens: int, repeats: int, warmup: int, dtype: torch.dtype, device: str
) -> dict:
    tok = load_text_tokenizer("builtin:tiny")
    cfg = (
        LMConfig(arch="llama", hf=dict(TINY_LM["llama"]))
        if name == "tiny"
        else LMConfig(arch="qwen2", hf=dict(QWEN2_0P5B))
    )
    torch.manual_seed(0)
    lm = build_language_model(cfg, tok).to(device, dtype).eval()
    seq = visual_tokens + 32
    x = torch.randn(1, seq, lm.hidden_size, device=device, dtype=dtype)
    with torch.inference_mode():
        ms = _time(partial(lm, inputs_embeds=x, logits_to_keep=1), repeats, warmup)
    row = {
        "benchmark": "backbones",
        "kind": "lm",
        "config": name,
        "arch": cfg.arch,
        "params": _params(lm),
        "sequence": seq,
        "prefill_ms_batch1": round(ms, 2),
    }
    lm = None
    gc.collect()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["tiny", "realistic"], default=None)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per tiny measurement (realistic: 1)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for name in ("tiny", "realistic"):
        if args.only and name != args.only:
            continue
        heavy = name == "realistic" and args.device == "cpu"
        repeats, warmup = (1, 0) if heavy else (args.repeats, 2)
        for row in bench_config(name, args.batches, repeats, warmup, dtype, args.device):
            row |= {"dtype": args.dtype, "device": args.device, "threads": args.threads}
            rows.append(row)
            print(json.dumps(row), flush=True)
        vt = 256 if name == "realistic" else 16  # e.g. a 224 px /14 encoder with an MLP connector
        lm_row = bench_lm(name, vt, 1 if heavy else args.repeats, 1, dtype, args.device)
        print(
            json.dumps(lm_row | {"dtype": args.dtype, "device": args.device, "threads": args.threads}),
            flush=True,
        )
    fastest = {}
    for r in rows:
        key = f"{r['config']}/b{r['batch']}"
        if key not in fastest or r["forward_ms_per_image"] < fastest[key]["forward_ms_per_image"]:
            fastest[key] = r
    summary = {
        "benchmark": "backbones",
        "kind": "summary",
        "rows": len(rows),
        "wall_s": round(time.perf_counter() - t0, 1),
        "fastest": {
            k: f"{v['encoder']}+{v['connector']} {v['forward_ms_per_image']} ms/img"
            for k, v in fastest.items()
        },
    }
    print(json.dumps(summary), flush=True)
    print(f"backbones benchmark: {len(rows)} rows in {summary['wall_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
