"""A sentence encoder of the prompt: texts -> one normalised embedding each [B, D], MiniLM-style.

The VLA's own LM sees the instruction through its token embeddings, which a model trained from scratch
learns only for the words of its demonstrations: "crimson" means nothing to it. A pretrained sentence
encoder (all-MiniLM-L6-v2, `pretrained: package:minilm`, 6 layers x 384, 22.7 M parameters) puts
"pick up the crimson cube" near "pick up the red cube". `SentenceEncoder` is a transformers encoder
(`AutoModel`: BERT for MiniLM) with mean pooling over the attention mask and L2 normalisation, exactly
the sentence-transformers recipe of that model (its modules.json: Transformer, Pooling(mean),
Normalize), so its embeddings equal the published ones. The VLM uses the embedding as the FiLM condition
of its conv encoder (`film_condition: text_encoder`) and/or as `tokens` LM input tokens.

It takes text, not the LM's ids: the VLM decodes the prompt's ids (lossless for byte-level BPE) and this
encoder tokenizes them with its own WordPiece vocabulary. Frozen (the usual case: `freeze:
[text_encoder]`), an embedding depends on the text alone, so it is computed once per distinct prompt and
kept (`cache_size` entries); a training batch of known instructions then costs nothing. The cache is
cleared whenever weights are loaded.

    enc = SentenceEncoder(TextEncoderConfig(name="minilm", pretrained="package:minilm"))
    enc(["pick up the red cube", "lift the crimson cube"])   # [2, 384], rows of unit norm
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from vla.backbones.config import TextEncoderConfig
from vla.backbones.language import load_text_tokenizer
from vla.backbones.vision import check_pretrained_dir
from vla.backbones.weights import resolve_pretrained

TEXT_ENCODER_NAMES = ("minilm",)
FROM_CHECKPOINT = "checkpoint"  # resolved configs' `tokenizer`: the copy a checkpoint holds
SENTENCE_TOKENIZER_NOTE = "sentence_tokenizer/ directory"
_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype", "model_type")


class SentenceEncoder(nn.Module):
    """texts (list of B strings) -> [B, D] unit-norm sentence embeddings (mean pooling + L2 norm)."""

    cache_size = 4096

    def __init__(self, cfg: TextEncoderConfig, tokenizer: Any | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if cfg.name not in TEXT_ENCODER_NAMES:
            raise ValueError(
                f"text_encoder.name must be one of {TEXT_ENCODER_NAMES} (or '' for none), got {cfg.name!r}"
            )
        if cfg.max_length < 2 or cfg.tokens < 0:
            raise ValueError(
                f"text_encoder: max_length must be >= 2 and tokens >= 0, got {cfg.max_length} and {cfg.tokens}"
            )
        self.cfg = cfg
        if cfg.pretrained:
            path = check_pretrained_dir(resolve_pretrained(cfg.pretrained), "text encoder")
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
            if getattr(self.model, "pooler", None) is not None:  # BERT's [CLS] pooler: not part of MiniLM's
                self.model.pooler = None  # embedding (mean pooling), so neither trained nor saved
            spec = cfg.tokenizer or str(path)
        else:
            spec = cfg.tokenizer or "builtin:tiny"
        if tokenizer is None and spec == FROM_CHECKPOINT:
            raise ValueError(
                "text_encoder.tokenizer is 'checkpoint': the tokenizer is saved in the checkpoint's "
                f"{SENTENCE_TOKENIZER_NOTE}; load the model with from_pretrained(checkpoint)"
            )
        self.tokenizer = tokenizer if tokenizer is not None else load_text_tokenizer(spec)
        if not cfg.pretrained:
            try:
                config = AutoConfig.for_model(cfg.arch, **{"vocab_size": len(self.tokenizer), **cfg.hf})
            except ValueError as e:
                raise ValueError(
                    f"text_encoder.arch {cfg.arch!r} is not a transformers model type: {e}"
                ) from None
            self.model = AutoModel.from_config(config, add_pooling_layer=False)
        self.dim = int(self.model.config.hidden_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.register_load_state_dict_post_hook(lambda module, keys: module._cache.clear())

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def _embed(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # [B,L]
        if ids.shape[1] == 0:  # only empty texts (a tokenizer without [CLS]/[SEP]): zero embeddings
            return torch.zeros(len(texts), self.dim, device=device)
        training = self.model.training
        self.model.train(training and not self.frozen)  # frozen: no dropout, one embedding per text
        try:
            h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B,L,D]
        finally:
            self.model.train(training)
        keep = mask.unsqueeze(-1).to(h.dtype)  # [B,L,1]
        mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # [B,D]
        return nn.functional.normalize(mean, dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """texts: B strings -> [B, D]. Frozen, each distinct text is encoded once and then read back."""
        if not texts:
            raise ValueError("text encoder: expected at least one text")
        if not self.frozen:
            return self._embed(list(texts))
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            with torch.no_grad():
                rows = self._embed(new)
            for t, row in zip(new, rows):
                self._cache[t] = row
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return torch.stack([self._cache[t] for t in texts])  # [B,D]

    def resolved_config(self) -> TextEncoderConfig:
        """The config that rebuilds this architecture without the pretrained directory; a pretrained
        encoder's tokenizer is saved in the checkpoint (`tokenizer: checkpoint`)."""
        hf = self.model.config.to_diff_dict()
        for k in _META_KEYS:
            hf.pop(k, None)
        arch = str(self.model.config.model_type)
        tokenizer = FROM_CHECKPOINT if self.cfg.pretrained else (self.cfg.tokenizer or "builtin:tiny")
        return TextEncoderConfig(
            name=self.cfg.name, pretrained=None, arch=arch, hf=hf, tokenizer=tokenizer,
            tokens=self.cfg.tokens, max_length=self.cfg.max_length,
        )  # fmt: skip


class RunningCentre(nn.Module):
    """x [B, D] -> layer_norm(x - mean), the mean over every row seen in training (a buffer, exact: a
    cumulative average, so training and evaluation subtract the same vector once it has settled).

    Sentence embeddings of one task's instructions share most of their direction (all-MiniLM-L6-v2:
    cosine 0.93 between "...pick up the red cube?" and "...the blue cube?" in the VLA's prompt), so a
    layer-normed embedding differs little between colours and FiLM learns grounding slowly: 4/50 on
    pick_colour after the demo's 6,000 steps against 33/50 (docs/backbones.md). Removing the shared mean
    first leaves the part that tells instructions apart, which layer_norm then brings to unit scale."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                b = x.shape[0]
                self.count += b
                self.mean += (x.detach().float().mean(0) - self.mean) * (b / float(self.count))
        return nn.functional.layer_norm(x - self.mean.to(x.dtype), x.shape[-1:])
