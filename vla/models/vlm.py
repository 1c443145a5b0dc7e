"""The vision-language model: encoder -> connector -> [visual][state][points][goal][text] -> causal LM.

Sequence layout (PaLM-E "multimodal sentences", LLaVA-style prefix), every block optional:

    [camera 0 tokens]...[state][obs point-cloud][goal point-cloud][sentence tokens][words][text tokens]
     Q per camera        k      G (cfg.points)   G' (goal_points)  S (text_encoder)  W     L (prompt + answer)

W (`text_encoder.word_tokens`): the text encoder's token features, one per word piece of the prompt in
order, right-padded to the batch's longest prompt (the pads masked out).

The observation cloud and the goal cloud (3D-VLA) have separate point encoders, so the model tells them
apart by weights, not by a type embedding. Visual, state, point and sentence tokens are always real (no
padding); text may be right-padded (training) or left-padded (generation). Labels are -100 on every
non-text token, and the text labels come from the caller with -100 on the prompt, so the loss covers only
the answer (vla.backbones.text.encode_prompt_answer).
Attention is causal, or prefix-LM (`cfg.prefix_lm`): bidirectional over visual/state/point tokens and the
prompt, causal over the answer.

    model = VLM(compose_model_config("tiny"))
    out = model(input_ids, attention_mask, images=pixels, labels=labels)     # out.loss, out.logits
    gen = model.generate(prompt_ids, prompt_mask, images=pixels, max_new_tokens=8, allowed=ids)
    model.save_pretrained("outputs/vlm"); VLM.from_pretrained("outputs/vlm")
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla.backbones.adapters import ComponentControls
from vla.backbones.config import VLMConfig, vlm_config_from_dict
from vla.backbones.connectors import build_connector
from vla.backbones.language import build_language_model, load_text_tokenizer
from vla.backbones.text import IGNORE_INDEX
from vla.backbones.text_encoder import AttentionPool, SentenceEncoder
from vla.backbones.tokens import StateEncoder, build_point_encoder
from vla.backbones.vision import build_vision_encoder
from vla.models.checkpoint import CONFIG_FILE, VLM_TYPE, Checkpoint, CheckpointContents, write_checkpoint
from vla.models.generation import Allowed, GenerationResult, greedy_generate
from vla.models.masks import drop_masked, position_ids_from_mask, prefix_lm_mask


def hide_prompt_words(attention_mask: torch.Tensor, is_prompt: torch.Tensor) -> torch.Tensor:
    """attention_mask [B,L] with every prompt position but each row's first (BOS) set to 0: the LM then
    sees no instruction word (`text_encoder.exclusive`). A new tensor; rows without a prompt unchanged."""
    mask = attention_mask.masked_fill(is_prompt, 0)  # [B,L]
    rows = torch.nonzero(is_prompt.any(1)).squeeze(1)  # rows with a prompt
    first = is_prompt.float().argmax(1)[rows]  # their first prompt position
    mask[rows, first] = attention_mask[rows, first]
    return mask


@dataclass
class VLMOutput:
    loss: torch.Tensor | None  # scalar mean cross-entropy over answer tokens
    logits: torch.Tensor  # [B,M+L,V]
    labels: torch.Tensor | None  # [B,M+L] aligned with logits (unshifted), -100 on non-answer tokens
    num_prefix_tokens: int  # M: visual + state + point tokens before the text


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Next-token accuracy over labelled positions: logits [B,L,V] predict labels [B,L] shifted by one."""
    pred = logits[:, :-1].argmax(dim=-1)  # [B,L-1]
    target = labels[:, 1:]  # [B,L-1]
    keep = target != IGNORE_INDEX
    if not bool(keep.any()):
        raise ValueError("token_accuracy: no labelled positions (all labels are -100)")
    return float((pred[keep] == target[keep]).float().mean())


FILM_CONDITIONS = ("embedding", "lm", "text_encoder")  # VLMConfig.film_condition


class VLM(nn.Module, ComponentControls):
    """Vision encoder + connector + optional state/point encoders + a Hugging Face causal LM."""

    def __init__(self, cfg: VLMConfig, tokenizer: Any | None = None, sentence_tokenizer: Any | None = None):
        """`sentence_tokenizer`: the text encoder's tokenizer where a checkpoint holds it (else loaded
        from `cfg.text_encoder`)."""
        super().__init__()
        self.cfg = copy.deepcopy(cfg)  # freeze/LoRA calls record into this private copy
        self.tokenizer = (
            tokenizer if tokenizer is not None else load_text_tokenizer(cfg.lm.tokenizer, cfg.lm.pretrained)
        )
        self.lm = build_language_model(cfg.lm, self.tokenizer)
        hidden = self.lm.hidden_size
        self.vision = build_vision_encoder(cfg.vision)
        if cfg.film_condition not in FILM_CONDITIONS:
            raise ValueError(
                f"VLM: film_condition must be one of {FILM_CONDITIONS}, got {cfg.film_condition!r}"
            )
        self.text_encoder = (
            SentenceEncoder(cfg.text_encoder, sentence_tokenizer) if cfg.text_encoder.name else None
        )
        # a learned query reads the encoder's token features into one [B, width] vector
        te = cfg.text_encoder
        positions = te.max_length if te.pool_positions else 0
        self.text_pool = (
            AttentionPool(self.text_encoder.dim, te.width, positions=positions)
            if self.text_encoder is not None
            else None
        )
        if cfg.film_condition == "text_encoder" and self.text_encoder is None:
            raise ValueError(
                "VLM: film_condition=text_encoder needs a text encoder (text_encoder.name=minilm)"
            )
        cond_dim = te.width if cfg.film_condition == "text_encoder" else hidden
        if self.vision.film_dim and self.vision.film_dim != cond_dim:
            raise ValueError(
                f"VLM: vision.hf.film_dim={self.vision.film_dim} must equal {cond_dim}, the size of the "
                f"film_condition={cfg.film_condition!r} vector (the LM hidden size, or the text encoder's)"
            )
        self.text_proj = (
            nn.Linear(te.width, te.tokens * hidden)
            if self.text_encoder is not None and te.tokens > 0
            else None
        )
        if te.word_tokens and self.text_encoder is None:
            raise ValueError("VLM: text_encoder.word_tokens needs a text encoder (text_encoder.name=minilm)")
        self.word_proj = nn.Linear(self.text_encoder.dim, hidden) if te.word_tokens else None
        self.connector = build_connector(cfg.connector, self.vision.embed_dim, hidden)
        self.state_encoder = StateEncoder(cfg.state, hidden) if cfg.state.dim > 0 else None
        self.point_encoder = build_point_encoder(cfg.points, hidden) if cfg.points.num_groups > 0 else None
        self.goal_encoder = (
            build_point_encoder(cfg.goal_points, hidden) if cfg.goal_points.num_groups > 0 else None
        )
        if cfg.max_cameras < 1:
            raise ValueError(f"max_cameras must be >= 1, got {cfg.max_cameras}")
        self.camera_embed = (
            nn.Parameter(torch.zeros(cfg.max_cameras, hidden)) if cfg.max_cameras > 1 else None
        )
        lora, freeze = dict(cfg.lora), list(cfg.freeze)
        self.cfg.lora, self.cfg.freeze = {}, []
        for name, opts in lora.items():
            self.apply_lora(name, **dict(opts or {}))
        self.set_frozen(freeze)

    # ----------------------------------------------------------------- components, freezing, LoRA
    def components(self) -> dict[str, nn.Module]:
        comps: dict[str, nn.Module] = {"vision": self.vision, "connector": self.connector, "lm": self.lm}
        if self.state_encoder is not None:
            comps["state"] = self.state_encoder
        if self.point_encoder is not None:
            comps["points"] = self.point_encoder
        if self.goal_encoder is not None:
            comps["goal_points"] = self.goal_encoder
        if self.text_encoder is not None:
            comps["text_encoder"] = self.text_encoder
        return comps

    def set_frozen(self, names: list[str]) -> None:
        """Freeze exactly `names` (others trainable: fully, or adapters only where LoRA is applied)."""
        for n in names:
            self.component(n)
        self.unfreeze([n for n in self.components() if n not in names])
        self.freeze(names)
        self.cfg.freeze = sorted(set(names))

    def apply_lora(self, name: str, r: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> int:
        count = self.inject_lora(name, r=r, alpha=alpha, dropout=dropout)
        self.cfg.lora = {
            **self.cfg.lora,
            name: {"r": int(r), "alpha": float(alpha), "dropout": float(dropout)},
        }
        return count

    def add_tokens(self, tokens: list[str], special: bool = True) -> list[int]:
        """Add tokens to this model's tokenizer and grow the LM embeddings; returns their ids."""
        if special:
            self.tokenizer.add_special_tokens(
                {"additional_special_tokens": list(tokens)}, replace_extra_special_tokens=False
            )
        else:
            self.tokenizer.add_tokens(list(tokens))
        if len(self.tokenizer) > self.lm.vocab_size:
            self.lm.resize_vocab(len(self.tokenizer))
        return [int(i) for i in self.tokenizer.convert_tokens_to_ids(list(tokens))]

    # ----------------------------------------------------------------- sequence assembly
    def num_prefix_tokens(self, num_cameras: int = 1) -> int:
        """M for a given camera count: visual + state + observation-point + goal-point + sentence tokens
        (the word tokens of `text_encoder.word_tokens` come on top: as many as the prompt has pieces)."""
        m = num_cameras * self.connector.num_tokens(self.vision.num_patches())
        m += self.cfg.state.num_tokens if self.state_encoder is not None else 0
        m += self.cfg.points.num_groups if self.point_encoder is not None else 0
        m += self.cfg.goal_points.num_groups if self.goal_encoder is not None else 0
        return m + (self.cfg.text_encoder.tokens if self.text_proj is not None else 0)

    def encode_images(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """images [B,3,H,W] or [B,C,3,H,W] (C cameras, transformed) -> visual tokens [B,C*Q,H].
        cond [B,H]: the prompt embedding a FiLM vision encoder (`vision.film_dim`) is conditioned on."""
        if images.ndim == 4:
            images = images.unsqueeze(1)  # [B,3,H,W] -> [B,1,3,H,W]
        if images.ndim != 5:
            raise ValueError(f"VLM: expected images [B,3,H,W] or [B,C,3,H,W], got {tuple(images.shape)}")
        b, c = images.shape[:2]
        if c > self.cfg.max_cameras:
            raise ValueError(
                f"VLM: got {c} cameras but the model was built with max_cameras={self.cfg.max_cameras}"
            )
        dtype = next(self.vision.parameters()).dtype  # float32 pixels into a bf16 model, for instance
        film = None
        if self.vision.film_dim:
            if cond is None:
                raise ValueError(
                    "VLM: the vision encoder is FiLM-conditioned (film_dim > 0); pass the prompt"
                )
            film = cond.repeat_interleave(c, dim=0)  # [B,H] -> [B*C,H], one row per camera image
        feats = self.vision(images.flatten(0, 1).to(dtype), film)  # [B*C,3,H,W] -> [B*C,P,E]
        tokens = self.connector(feats)  # [B*C,P,E] -> [B*C,Q,H]
        tokens = tokens.view(b, c, tokens.shape[1], tokens.shape[2])  # [B*C,Q,H] -> [B,C,Q,H]
        if self.camera_embed is not None:
            tokens = tokens + self.camera_embed[:c].view(1, c, 1, -1).to(tokens.dtype)
        return tokens.flatten(1, 2)  # [B,C,Q,H] -> [B,C*Q,H]

    def prefix_embeds(
        self,
        batch: int,
        images: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        goal_points: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        sentence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The non-text tokens [B,M,H] in sequence order; an enabled block must get its input.
        points / goal_points: [B,N,C] (C = the encoder's in_features: xyz, or xyz + rgb); cond [B,H] the
        prompt embedding for a FiLM vision encoder; sentence [B,W] the text encoder's pooled reading of
        the prompt (needed where `text_encoder.tokens` > 0)."""
        parts: list[torch.Tensor] = []
        if images is not None:
            parts.append(self.encode_images(images, cond))
        for name, value, enc in (
            ("state", state, self.state_encoder),
            ("points", points, self.point_encoder),
            ("goal_points", goal_points, self.goal_encoder),
        ):
            if value is not None and enc is None:
                raise ValueError(f"VLM: got {name} input but the model has no {name} encoder (config {name})")
            if enc is not None:
                if value is None:
                    raise ValueError(f"VLM: the model has a {name} encoder; pass {name}=")
                parts.append(enc(value))
        if self.text_proj is not None:
            if sentence is None:
                raise ValueError(
                    "VLM: the model has text-encoder tokens; pass sentence= (the prompt's embedding)"
                )
            s = self.text_proj(sentence.to(self.text_proj.weight.dtype))  # [B,W] -> [B,S*H]
            parts.append(s.view(s.shape[0], self.cfg.text_encoder.tokens, -1))  # [B,S,H]
        for p in parts:
            if p.shape[0] != batch:
                raise ValueError(
                    f"VLM: batch size mismatch: text has {batch} rows, a prefix block has {p.shape[0]}"
                )
        if not parts:
            return torch.zeros(batch, 0, self.lm.hidden_size, device=self._device())
        return torch.cat(parts, dim=1)  # [B,M,H]

    def _device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def prompt_texts(self, input_ids: torch.Tensor, is_prompt: torch.Tensor) -> list[str]:
        """The prompt of each row as text: input_ids [B,L] at is_prompt [B,L] decoded (special tokens
        dropped; byte-level BPE decodes exactly what was encoded)."""
        rows = [ids[keep].tolist() for ids, keep in zip(input_ids.cpu(), is_prompt.cpu())]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

    def prompt_condition(self, text: torch.Tensor, is_prompt: torch.Tensor) -> torch.Tensor:
        """The vector [B,H] a FiLM vision encoder is conditioned on, from the token embeddings text [B,L,H]
        at the prompt's positions is_prompt [B,L] (bool; pads and answers False). `film_condition`
        "embedding": their mean, a bag of words ("stack the red cube on the blue cube" and its swap give
        the same vector); "lm": the mean of the LM's final hidden states over the prompt alone, one extra
        causal pass over the L text positions, in which every word sees the words before it."""
        h = text
        if self.cfg.film_condition == "lm":
            mask = is_prompt.long()
            h = self.lm.model.base_model(
                inputs_embeds=text,
                attention_mask=mask,
                position_ids=position_ids_from_mask(mask),
                use_cache=False,
            ).last_hidden_state  # [B,L,H]
        keep = is_prompt.unsqueeze(-1)  # [B,L,1]
        total = torch.where(keep, h, h.new_zeros(())).sum(1)  # [B,H] (where, not *: pad rows may be NaN)
        return total / keep.sum(1).clamp(min=1).to(h.dtype)

    def build_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        goal_points: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Assemble inputs_embeds [B,M+L,H], attention mask (2-D, or 4-D for prefix-LM), position ids and
        labels [B,M+L] for the LM."""
        if input_ids.ndim != 2:
            raise ValueError(f"VLM: expected input_ids [B,L], got {tuple(input_ids.shape)}")
        b, l = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != (b, l) or (labels is not None and labels.shape != (b, l)):
            raise ValueError(f"VLM: attention_mask and labels must match input_ids [B,L]={(b, l)}")
        text = self.lm.embed(input_ids)  # [B,L,H]
        cond = sentence = None
        # from the prompt (never the answer)
        is_prompt = attention_mask.bool() & (labels == IGNORE_INDEX if labels is not None else True)
        if self.text_encoder is not None:
            feats, keep = self.text_encoder.token_features(self.prompt_texts(input_ids, is_prompt))  # [B,T,D]
            feats, keep = feats.to(text.device), keep.to(text.device)
            sentence = self.text_pool(feats, keep)  # type: ignore[misc]  # [B,W]
        if images is not None and self.vision.film_dim:
            if self.cfg.film_condition == "text_encoder":
                cond = sentence  # [B,W]
            else:
                cond = self.prompt_condition(text, is_prompt)  # [B,H]
        hidden = torch.zeros(b, l, dtype=torch.bool, device=attention_mask.device)  # real, but no key
        if self.text_encoder is not None and self.cfg.text_encoder.exclusive:
            shown = hide_prompt_words(attention_mask, is_prompt)  # [B,L]
            hidden = attention_mask.bool() & ~shown.bool()
            attention_mask = shown
        prefix = self.prefix_embeds(b, images, state, points, goal_points, cond, sentence)  # [B,M,H]
        prefix_mask = attention_mask.new_ones(b, prefix.shape[1])  # [B,M]
        if self.word_proj is not None:  # the encoder's word pieces in order: [B,T,D] -> [B,T,H], pads masked
            words = self.word_proj(feats.to(self.word_proj.weight.dtype))
            prefix = torch.cat([prefix.to(words.dtype), words], dim=1)  # [B,M+T,H]
            prefix_mask = torch.cat([prefix_mask, keep.to(prefix_mask)], dim=1)  # [B,M+T]
        m = prefix.shape[1]
        embeds = torch.cat([prefix.to(text.dtype), text], dim=1)  # [B,M+L,H]
        mask = torch.cat([prefix_mask, attention_mask], dim=1)  # [B,M+L]
        full_labels = None
        if labels is not None:
            full_labels = torch.cat([labels.new_full((b, m), IGNORE_INDEX), labels], dim=1)  # [B,M+L]
        attn: torch.Tensor = mask
        if self.cfg.prefix_lm:
            text_prefix = (
                (labels == IGNORE_INDEX)
                if labels is not None
                else torch.ones_like(input_ids, dtype=torch.bool)
            )
            is_prefix = torch.cat([torch.ones(b, m, dtype=torch.bool, device=mask.device), text_prefix], 1)
            attn = prefix_lm_mask(mask.bool(), is_prefix & mask.bool(), embeds.dtype)  # [B,1,M+L,M+L]
        return {
            "inputs_embeds": embeds,
            "attention_mask": attn,
            "position_ids": position_ids_from_mask(mask),
            "labels": full_labels,
            "num_prefix_tokens": m,
            "mask2d": mask,
            "hidden": torch.cat([hidden.new_zeros(b, m), hidden], dim=1),  # [B,M+L] words the LM never sees
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        goal_points: torch.Tensor | None = None,
    ) -> VLMOutput:
        inp = self.build_inputs(input_ids, attention_mask, labels, images, state, points, goal_points)
        out = self.lm(
            inputs_embeds=inp["inputs_embeds"],
            attention_mask=inp["attention_mask"],
            position_ids=inp["position_ids"],
            use_cache=False,
        )
        logits = out.logits  # [B,M+L,V]
        loss = None
        if inp["labels"] is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(),
                inp["labels"][:, 1:].flatten(),
                ignore_index=IGNORE_INDEX,
            )
        return VLMOutput(
            loss=loss, logits=logits, labels=inp["labels"], num_prefix_tokens=inp["num_prefix_tokens"]
        )

    def query_hidden_states(
        self,
        queries: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        goal_points: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final hidden states [B,Q,H] of Q query embeddings [Q,H] appended after the (right-padded) prompt.

        The sequence is [prefix][prompt][queries], masked positions left out (`drop_masked`: pads, hidden
        prompt words; the same values, a shorter sequence); the queries see the whole prefix and prompt
        and each other causally (one forward pass: OpenVLA-OFT's parallel decoding). Used by the VLA's
        continuous action head (vla.models.action_head)."""
        inp = self.build_inputs(input_ids, attention_mask, None, images, state, points, goal_points)
        # [B,M+L,H], [B,M+L] -> [B,K,H], [B,K]: masked positions (pads, hidden prompt words) left out
        embeds, mask = drop_masked(inp["inputs_embeds"], inp["mask2d"])
        b, q = embeds.shape[0], queries.shape[0]
        embeds = torch.cat([embeds, queries.to(embeds.dtype)[None].expand(b, q, -1)], dim=1)  # [B,M+L+Q,H]
        full = torch.cat([mask, mask.new_ones(b, q)], dim=1)  # [B,M+L+Q]
        # prefix-LM: prefix and prompt attend both ways, the queries causally; else all causally
        is_prefix = torch.zeros_like(full, dtype=torch.bool)  # [B,M+L+Q]
        if self.cfg.prefix_lm:
            is_prefix[:, : mask.shape[1]] = mask.bool()
        attn = prefix_lm_mask(full.bool(), is_prefix, embeds.dtype)  # [B,1,M+L+Q,M+L+Q] additive
        return self.lm.final_hidden_states(embeds, attn, position_ids_from_mask(full), keep=q)  # [B,Q,H]

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        goal_points: torch.Tensor | None = None,
        max_new_tokens: int = 16,
        allowed: Allowed = None,
        use_cache: bool = True,
        eos_token_id: int | None = -1,
    ) -> GenerationResult:
        """Greedy generation after a left-padded prompt; `allowed` constrains ids per step (see
        vla.models.generation). eos_token_id -1 = the tokenizer's EOS, None = never stop early."""
        inp = self.build_inputs(input_ids, attention_mask, None, images, state, points, goal_points)
        eos = self.tokenizer.eos_token_id if eos_token_id == -1 else eos_token_id
        return greedy_generate(
            self.lm,
            inp["inputs_embeds"],
            inp["mask2d"],
            max_new_tokens,
            eos_token_id=eos,
            pad_token_id=int(self.tokenizer.pad_token_id or 0),
            allowed=allowed,
            use_cache=use_cache,
            prefix_lm=self.cfg.prefix_lm,
            hidden=inp["hidden"],
        )

    # ----------------------------------------------------------------- config and checkpoints
    def resolved_config(self) -> VLMConfig:
        """The config that rebuilds this exact architecture without any pretrained directory."""
        te = self.text_encoder.resolved_config() if self.text_encoder is not None else self.cfg.text_encoder
        return dataclasses.replace(
            self.cfg,
            vision=self.vision.resolved_config(),
            lm=self.lm.resolved_config(tokenizer=""),
            text_encoder=te,
        )

    def checkpoint_contents(
        self,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> CheckpointContents:
        """What a checkpoint of this VLM holds: resolved config, weights (`state_dict`, default the current
        ones), tokenizer; `extra_config` adds config.json sections."""
        return CheckpointContents(
            state_dict=self.state_dict() if state_dict is None else state_dict,
            model_type=VLM_TYPE,
            model_config=dataclasses.asdict(self.resolved_config()),
            sections=dict(extra_config or {}),
            text_tokenizer=self.tokenizer,
            sentence_tokenizer=self.sentence_tokenizer,
        )

    @property
    def sentence_tokenizer(self) -> Any:
        """The text encoder's tokenizer, which a checkpoint keeps when the encoder came pretrained."""
        te = self.text_encoder
        return te.tokenizer if te is not None and te.tokenizer_in_checkpoint else None

    def save_pretrained(self, path: str | Path, extra_config: Mapping[str, Any] | None = None) -> Path:
        """Write the checkpoint directory atomically (vla.models.checkpoint)."""
        return write_checkpoint(path, self.checkpoint_contents(extra_config=extra_config))

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> VLM:
        """Rebuild the VLM of an opened checkpoint (config.json, tokenizer/, model.safetensors)."""
        cfg = vlm_config_from_dict(ck.model_config, where=str(ck.file(CONFIG_FILE)))
        model = cls(cfg, tokenizer=ck.text_tokenizer(), sentence_tokenizer=ck.sentence_tokenizer())
        ck.load_weights(model)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path) -> VLM:
        """Rebuild a VLM from its checkpoint directory (or a training run's latest checkpoint)."""
        return cls.from_checkpoint(Checkpoint.open(path, model_type=VLM_TYPE))
