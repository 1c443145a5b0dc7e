"""Language models: any transformers causal LM (Llama, Qwen2, GPT-2, ...) from config or a local path,
with its text tokenizer, embeddings resizable for added tokens, and a KV-cache-friendly forward.

    tok = load_text_tokenizer("builtin:tiny")                 # committed vla/assets/text_tokenizer
    lm = build_language_model(LMConfig(arch="qwen2", hf={...}), tok)
    ids = add_tokens(tok, lm, ["<act_0>", "<act_1>"], special=True)   # resizes the embeddings
    out = lm(inputs_embeds=x, attention_mask=m, position_ids=p, past_key_values=cache, use_cache=True)

`LMConfig.tokenizer`: "builtin:tiny" (the byte-level BPE trained by scripts/train_text_tokenizer.py),
a local tokenizer directory, or "" for the tokenizer inside `LMConfig.pretrained`. Nothing is downloaded:
every load is `local_files_only`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.backbones.config import LMConfig
from vla.backbones.vision import check_pretrained_dir

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUILTIN_TOKENIZERS = {"builtin:tiny": ASSETS / "text_tokenizer"}
_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype", "model_type")


def load_text_tokenizer(spec: str, pretrained: str | None = None) -> Any:
    """A PreTrainedTokenizerFast from "builtin:<name>", a local directory, or ("" -> `pretrained`)."""
    from transformers import AutoTokenizer

    if spec in BUILTIN_TOKENIZERS:
        path = BUILTIN_TOKENIZERS[spec]
    elif spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin tokenizer {spec!r}; expected one of {sorted(BUILTIN_TOKENIZERS)}")
    elif spec:
        path = Path(spec)
    elif pretrained:
        path = Path(pretrained)
    else:
        raise ValueError("lm.tokenizer is empty and lm.pretrained is not set: no tokenizer to load")
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path}")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise FileNotFoundError(f"tokenizer directory {path} is missing tokenizer.json (or tokenizer.model)")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:  # GPT-2 style tokenizers have no pad token; reuse EOS for padding
        tok.pad_token = tok.eos_token
    return tok


class LanguageModel(nn.Module):
    """A Hugging Face causal LM plus the few things the VLM needs: hidden size, embedding, resizing."""

    def __init__(self, model: Any, arch: str):
        super().__init__()
        self.model = model
        self.arch = arch

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)  # [B,L] -> [B,L,H]

    def forward(self, **kwargs: Any) -> Any:
        """The HF forward (inputs_embeds, attention_mask, position_ids, past_key_values, ...)."""
        return self.model(**kwargs)

    def resize_vocab(self, size: int) -> None:
        if size != self.vocab_size:
            self.model.resize_token_embeddings(size, mean_resizing=False)

    def resolved_config(self, tokenizer: str = "") -> LMConfig:
        hf = self.model.config.to_diff_dict()
        for k in _META_KEYS:
            hf.pop(k, None)
        hf["vocab_size"] = self.vocab_size
        return LMConfig(arch=self.arch, pretrained=None, hf=hf, tokenizer=tokenizer)


def build_language_model(cfg: LMConfig, tokenizer: Any) -> LanguageModel:
    """From `cfg.pretrained` (a local HF directory) or from `cfg.arch` + `cfg.hf` with random init.

    Built from config, the vocabulary defaults to the tokenizer's size and the special ids to its own.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if cfg.pretrained:
        path = check_pretrained_dir(cfg.pretrained, "language model")
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **cfg.hf)
        arch = model.config.model_type
    else:
        kwargs: dict[str, Any] = {
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **cfg.hf,
        }
        try:
            config = AutoConfig.for_model(cfg.arch, **kwargs)
        except ValueError as e:
            raise ValueError(f"lm.arch {cfg.arch!r} is not a transformers model type: {e}") from None
        model = AutoModelForCausalLM.from_config(config)
        arch = cfg.arch
    lm = LanguageModel(model, arch)
    if lm.vocab_size < len(tokenizer):  # tokenizer with added tokens: grow the embeddings to cover them
        lm.resize_vocab(len(tokenizer))
    return lm


def add_tokens(tokenizer: Any, lm: LanguageModel, tokens: list[str], special: bool = True) -> list[int]:
    """Add `tokens` to the tokenizer (in place) and grow the LM embeddings; returns their ids in order."""
    if special:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": list(tokens)}, replace_extra_special_tokens=False
        )
    else:
        tokenizer.add_tokens(list(tokens))
    if len(tokenizer) > lm.vocab_size:
        lm.resize_vocab(len(tokenizer))
    return [int(i) for i in tokenizer.convert_tokens_to_ids(list(tokens))]
