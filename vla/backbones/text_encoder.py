"""A sentence encoder of the prompt: texts -> one normalised embedding each [B, D], MiniLM-style.

The VLA's own LM sees the instruction through its token embeddings, which a model trained from scratch
learns only for the words of its demonstrations: "crimson" means nothing to it. A pretrained sentence
encoder (all-MiniLM-L6-v2, `pretrained: package:minilm`, 6 layers x 384, 22.6 M parameters) has read
such words; how much of that a policy trained on six colour words carries to their synonyms is measured
in docs/backbones.md (a little: 7/100 against 1/50). `SentenceEncoder` is a transformers encoder
(`AutoModel`: BERT for MiniLM) with mean pooling over the attention mask and L2 normalisation, exactly
the sentence-transformers recipe of that model (its modules.json: Transformer, Pooling(mean),
Normalize), so its embeddings equal the published ones. The VLM reads its contextual token features
through `AttentionPool` (a learned query over the tokens, `text_encoder.width` wide) and uses the pooled
vector as the FiLM condition of its conv encoder (`film_condition: text_encoder`) and/or as `tokens` LM
input tokens. `name: lm` takes a causal LM instead (SmolLM2-135M, `layers: 15` keeps its first 15
layers), read the same way.

It takes text, not the LM's ids: the VLM decodes the prompt's ids (lossless for byte-level BPE) and this
encoder tokenizes them with its own WordPiece vocabulary. Frozen (the usual case: `freeze:
[text_encoder]`), the features depend on the text alone, so they are computed once per distinct prompt
and kept (`cache_size` entries); a training batch of known instructions then costs nothing. The cache is
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
from vla.backbones.language import HF_META_KEYS, load_text_tokenizer
from vla.backbones.vision import check_pretrained_dir
from vla.backbones.weights import resolve_pretrained

TEXT_ENCODER_NAMES = ("minilm", "lm")  # a BERT-style sentence encoder; a causal LM's hidden states
FROM_CHECKPOINT = "checkpoint"  # resolved configs' `tokenizer`: the copy a checkpoint holds
SENTENCE_TOKENIZER_NOTE = "sentence_tokenizer/ directory"


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
        if cfg.max_length < 2 or cfg.tokens < 0 or cfg.layers < 0:
            raise ValueError(
                f"text_encoder: max_length must be >= 2, tokens and layers >= 0, "
                f"got {cfg.max_length}, {cfg.tokens} and {cfg.layers}"
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
            extra = {"add_pooling_layer": False} if cfg.name == "minilm" else {}
            self.model = AutoModel.from_config(config, **extra)
        if cfg.layers:
            self._keep_layers(cfg.layers)
        self.dim = int(self.model.config.hidden_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.register_load_state_dict_post_hook(lambda module, keys: module._cache.clear())

    def _keep_layers(self, k: int) -> None:
        """Keep the first k transformer layers (an intermediate layer's features; less to run and store)."""
        holder = getattr(getattr(self.model, "encoder", None), "layer", None)  # BERT
        name = "layer"
        if holder is None:
            holder, name = getattr(self.model, "layers", None), "layers"  # Llama, Qwen2, ...
        if holder is None or k > len(holder):
            n = None if holder is None else len(holder)
            raise ValueError(f"text_encoder.layers={k}: the encoder has {n} layers it can keep a prefix of")
        parent = self.model.encoder if name == "layer" else self.model
        setattr(parent, name, nn.ModuleList(list(holder)[:k]))
        self.model.config.num_hidden_layers = k

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def _hidden(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> last hidden states [B,L,D] and attention mask [B,L] (bool) of the encoder."""
        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # [B,L]
        if ids.shape[1] == 0:  # only empty texts (a tokenizer without [CLS]/[SEP]): one zero token
            zeros = torch.zeros(len(texts), 1, self.dim, device=device)
            return zeros, torch.ones(len(texts), 1, dtype=torch.bool, device=device)
        training = self.model.training
        self.model.train(training and not self.frozen)  # frozen: no dropout, one result per text
        try:
            h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B,L,D]
        finally:
            self.model.train(training)
        return h, mask.bool()

    def token_features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts: B strings -> contextual token features [B,L,D] and their mask [B,L] (True on real
        tokens, right-padded). Frozen, each distinct text is encoded once and then read back."""
        if not texts:
            raise ValueError("text encoder: expected at least one text")
        if not self.frozen:
            return self._hidden(list(texts))
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            with torch.no_grad():
                h, mask = self._hidden(new)
            for t, row, keep in zip(new, h, mask):
                self._cache[t] = row[keep]  # [L_t,D]
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        rows = [self._cache[t] for t in texts]
        feats = nn.utils.rnn.pad_sequence(rows, batch_first=True)  # [B,L,D]
        lengths = torch.tensor([len(r) for r in rows], device=feats.device)
        return feats, torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None]

    def forward(self, texts: list[str]) -> torch.Tensor:
        """texts: B strings -> sentence embeddings [B,D]: the mean of the token features over the mask,
        L2-normalised (sentence-transformers' pooling for all-MiniLM-L6-v2)."""
        h, mask = self.token_features(texts)  # [B,L,D], [B,L]
        keep = mask.unsqueeze(-1).to(h.dtype)  # [B,L,1]
        mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # [B,D]
        return nn.functional.normalize(mean, dim=-1)

    @property
    def tokenizer_in_checkpoint(self) -> bool:
        """True where a checkpoint must hold this encoder's tokenizer: it came from a pretrained directory,
        or from a checkpoint that held it (`tokenizer: checkpoint`)."""
        return bool(self.cfg.pretrained) or self.cfg.tokenizer == FROM_CHECKPOINT

    def resolved_config(self) -> TextEncoderConfig:
        """The config that rebuilds this architecture without the pretrained directory; a pretrained
        encoder's tokenizer is saved in the checkpoint (`tokenizer: checkpoint`)."""
        hf = self.model.config.to_diff_dict()
        for k in HF_META_KEYS:
            hf.pop(k, None)
        arch = str(self.model.config.model_type)
        own = self.cfg.tokenizer or "builtin:tiny"
        tokenizer = FROM_CHECKPOINT if self.tokenizer_in_checkpoint else own
        return TextEncoderConfig(
            name=self.cfg.name, pretrained=None, arch=arch, hf=hf, tokenizer=tokenizer,
            width=self.cfg.width, tokens=self.cfg.tokens, max_length=self.cfg.max_length, layers=0,
            exclusive=self.cfg.exclusive, pool_positions=self.cfg.pool_positions,
            word_tokens=self.cfg.word_tokens,
        )  # fmt: skip


class AttentionPool(nn.Module):
    """Token features [B,L,D] + mask [B,L] -> one vector [B,W]: a learned query attends over the tokens
    (`heads` heads), then layer norm. What the VLM conditions on, from a frozen sentence encoder.

    A sentence embedding (the mean over tokens) of a task's instructions is dominated by their wording:
    for all-MiniLM-L6-v2, "lift the red cylinder" vs "pick up the red cube" moves the FiLM parameters that
    a linear map learns twelve times more than "red" vs "blue" (docs/backbones.md), and pick_colour fell to
    4/50 from 33/50. A learned query can pick out the words that matter (the colour), whatever the
    template, and a new word whose features resemble a known one's (crimson, red) is read the same way.

    Content alone barely tells "stack the green cube on the red cube" from its swap (the two colour words'
    features hardly depend on their place; the pooled vectors of an instruction and its swap lie 1.0 apart
    against 2.5 between colour pairs in the session-11 policy). `positions` > 0 adds a learned embedding
    [positions, dim] of each token's index to the keys (not the values), so a head can attend to the
    colour word that comes first; tokens past `positions` share the last row."""

    def __init__(self, dim: int, width: int, heads: int = 4, positions: int = 0):
        super().__init__()
        if width < heads or width % heads:
            raise ValueError(f"text_encoder.width must be a positive multiple of {heads}, got {width}")
        if positions < 0:
            raise ValueError(f"AttentionPool: positions must be >= 0, got {positions}")
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, heads, kdim=dim, vdim=dim, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.positions = nn.Embedding(positions, dim) if positions else None
        if self.positions is not None:
            nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats [B,L,D], mask [B,L] (True on real tokens) -> [B,W]."""
        q = self.query.expand(feats.shape[0], -1, -1).to(feats.dtype)  # [B,1,W]
        keys = feats
        if self.positions is not None:
            last = self.positions.num_embeddings - 1
            idx = torch.arange(feats.shape[1], device=feats.device).clamp(max=last)  # [L]
            keys = feats + self.positions(idx).to(feats.dtype)[None]  # [B,L,D]
        out, _ = self.attn(q, keys, feats, key_padding_mask=~mask, need_weights=False)  # [B,1,W]
        return self.norm(out[:, 0])  # [B,W]
