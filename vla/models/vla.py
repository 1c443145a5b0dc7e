"""The VLA: a VLM from the backbone library that answers a robot prompt with action tokens (RT-2 / OpenVLA).

Sequence: `[camera x history tokens][state tokens][obs point tokens][goal point tokens][BOS + prompt]
[action tokens][EOS]`; the point blocks are there when the processor reads clouds (`obs_points`,
`goal_points` > 0, with `model.points` / `model.goal_points` encoders); the loss covers only
the action tokens and EOS. The model sees tensors only: the checkpoint's `VLAProcessor` normalises
(training targets included) and decodes. `act` maps model inputs to the token head's greedy ids (KV cache,
constrained to action ids at every action position; action ids + EOS for variable-length tokenizers) or
the continuous head's normalised chunk, and `predict_action` is processor.preprocess -> act ->
processor.postprocess: one observation (or a history) to a raw action chunk [T, D].

    vla = VLA.build(compose_model_config("tiny"), ProcessorConfig(cameras=["static"]), action_tok, norm)
    out = vla(processor.collate(samples))           # {"loss", "action_acc", ("action_l1" in eval mode)}
    ids = vla.act(processor.preprocess([obs]))      # {"action_ids": [1,L]} or {"actions": [1,T,D]}
    chunk = vla.predict_action(obs)                  # [T, D] float32, raw EnvAction units
    vla.save_pretrained("outputs/ckpt"); VLA.from_pretrained("outputs/ckpt")

Checkpoint directory (the project's one format, vla/models/checkpoint.py, model_type "vla"): config.json
(the resolved VLM config and a "vla" section), the weights (VLM parameter names, plus action_head.*), the
text tokenizer and the processor's files; `checkpoint_contents` says what goes in, the trainer adds its
resume state. `from_pretrained` also takes a training run directory (its latest checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from action_tokenizers.vocab import make_action_vocab
from vla.backbones.config import VLMConfig, vlm_config_from_dict
from vla.backbones.language import load_text_tokenizer
from vla.backbones.text import IGNORE_INDEX
from vla.core.normalizer import Normalizer
from vla.core.types import ACTION_KEY
from vla.models.action_head import (
    AuxHead,
    L1ActionHead,
    check_action_head,
    check_action_loss,
    regression_loss,
)
from vla.models.checkpoint import (
    CONFIG_FILE,
    PROCESSOR_FILE,
    VLA_TYPE,
    Checkpoint,
    CheckpointContents,
    load_weights,
    write_checkpoint,
)
from vla.models.losses import ordinal_action_loss
from vla.models.vlm import VLM
from vla.processor import ProcessorConfig, VLAProcessor


def vlm_config_for(model_cfg: VLMConfig, proc_cfg: ProcessorConfig) -> VLMConfig:
    """The VLM config a processor config needs: camera slots = cameras x history, state dims x history,
    point-encoder input channels (xyz or xyz + rgb) for each cloud the processor reads."""
    state = dataclasses.replace(model_cfg.state, dim=proc_cfg.model_state_dim * proc_cfg.n_obs)
    slots = len(proc_cfg.cameras) * proc_cfg.n_obs
    feats = proc_cfg.in_features
    points = (
        dataclasses.replace(model_cfg.points, in_features=feats) if proc_cfg.obs_points else model_cfg.points
    )
    goal = model_cfg.goal_points
    if proc_cfg.goal_points:
        goal = dataclasses.replace(goal, in_features=feats)
    return dataclasses.replace(
        model_cfg, state=state, max_cameras=max(slots, 1), points=points, goal_points=goal
    )


class VLA(nn.Module):
    """VLM + VLAProcessor; `forward(batch)` follows the trainer's contract (dict with scalar "loss")."""

    def __init__(
        self,
        vlm: VLM,
        processor: VLAProcessor,
        action_head: str = "tokens",
        aux_dim: int = 0,
        action_modes: int = 1,
    ):
        super().__init__()
        self.vlm = vlm
        self.processor = processor
        self.action_head_name = check_action_head(action_head)
        if action_modes != 1 and action_head != "l1":
            raise ValueError(f"action_modes={action_modes} (hypotheses of the chunk) needs action_head='l1'")
        # "l1": T query embeddings + MLP regress the normalised chunk in one pass (vla.models.action_head);
        # action_modes K > 1: K hypotheses of it and a score each (multiple-choice learning)
        self.action_head = (
            L1ActionHead(vlm.lm.hidden_size, processor.chunk_len, processor.action_dim, modes=action_modes)
            if action_head == "l1"
            else None
        )
        if aux_dim and self.action_head is None:
            raise ValueError("aux_dim (the auxiliary scene head) needs action_head='l1'")
        # aux_dim > 0: a training aid that regresses batch["aux"] (where the object and goal are)
        self.aux_head = AuxHead(vlm.lm.hidden_size, aux_dim) if aux_dim else None
        self._check_compatible("VLA")
        self.register_buffer("action_ids", processor.action_lm_ids, persistent=False)  # [K]
        self.action_label_sigma = 0.0  # > 0: ordinal soft labels for bin tokens (vla.models.losses)
        self.aux_weight = 0.0  # > 0: the loss adds aux_weight x the auxiliary head's L1 (training only)
        self.action_loss = "l1"  # the continuous head's training loss (vla.models.action_head.ACTION_LOSSES)

    def set_action_loss(self, name: str) -> None:
        """Train the continuous head with `name` ("l1" or "mse"); "mse" needs it with one hypothesis."""
        check_action_loss(name)
        if name != "l1" and (self.action_head is None or self.action_head.modes > 1):
            raise ValueError(f"action_loss={name!r} needs action_head='l1' with one hypothesis (modes 1)")
        self.action_loss = name

    def set_aux_weight(self, weight: float) -> None:
        """Weigh the auxiliary scene loss (needs the head: aux_dim > 0) by `weight` (0: off)."""
        if weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {weight}")
        if weight > 0 and self.aux_head is None:
            raise ValueError("aux_weight > 0 needs a VLA built with the auxiliary head (aux_dim > 0)")
        self.aux_weight = float(weight)

    def set_action_label_sigma(self, sigma: float) -> None:
        """Train bin tokens against Gaussian soft labels `sigma` bins wide (0: plain cross-entropy)."""
        if sigma < 0:
            raise ValueError(f"action_label_sigma must be >= 0, got {sigma}")
        if sigma > 0 and self.action_head is not None:
            raise ValueError("action_label_sigma applies to action tokens, not action_head='l1'")
        if sigma > 0 and not self.processor.has_bins:
            name = self.processor.action_tokenizer.name
            raise ValueError(f"action_label_sigma needs a bin tokenizer (uniform/quantile), not {name!r}")
        self.action_label_sigma = float(sigma)

    @classmethod
    def build(
        cls,
        model_cfg: VLMConfig,
        proc_cfg: ProcessorConfig,
        action_tokenizer: Any,
        normalizer: Normalizer,
        action_head: str = "tokens",
        aux_dim: int = 0,
        action_modes: int = 1,
    ) -> VLA:
        """A freshly initialised VLA: the action tokens are placed in the model's text vocabulary;
        `action_head` "l1" adds the continuous head (vla.models.action_head), `aux_dim` > 0 its
        auxiliary scene head."""
        cfg = vlm_config_for(model_cfg, proc_cfg)
        if not action_tokenizer.is_fitted:
            raise ValueError("VLA.build: the action tokenizer is not fitted")
        base = load_text_tokenizer(cfg.lm.tokenizer, cfg.lm.pretrained)
        text_tok, vocab = make_action_vocab(proc_cfg.vocab_mode, base, action_tokenizer.vocab_size)
        vlm = VLM(cfg, tokenizer=text_tok)
        proc = VLAProcessor(proc_cfg, text_tok, action_tokenizer, vocab, normalizer, vlm.vision.transform)
        return cls(vlm, proc, action_head, aux_dim, action_modes)

    def _check_compatible(self, where: str) -> None:
        p, c, proc = self.processor.cfg, self.vlm.cfg, self.processor
        want_state = p.model_state_dim * p.n_obs
        problems = []
        if c.state.dim != want_state:
            problems.append(
                f"model state.dim {c.state.dim} != the processor's state features x n_obs {want_state}"
            )
        if c.max_cameras < proc.num_images:
            problems.append(f"model max_cameras {c.max_cameras} < cameras x n_obs {proc.num_images}")
        if proc.transform.size != self.vlm.vision.image_size:
            problems.append(
                f"processor image size {proc.transform.size} != encoder {self.vlm.vision.image_size}"
            )
        for name, n, enc in (
            ("points", p.obs_points, c.points),
            ("goal_points", p.goal_points, c.goal_points),
        ):
            if (n > 0) != (enc.num_groups > 0):
                problems.append(
                    f"processor {'obs_points' if name == 'points' else name}={n} but model {name}."
                    f"num_groups={enc.num_groups} (both on or both off)"
                )
            elif n > 0 and enc.in_features != p.in_features:
                problems.append(f"model {name}.in_features {enc.in_features} != processor {p.in_features}")
            elif n > 0 and n < max(enc.num_groups, enc.group_size):
                problems.append(f"{name}: {n} points < the encoder's groups/group size")
        if proc.vocab.lm_vocab_size > self.vlm.lm.vocab_size:
            problems.append(
                f"action vocab needs {proc.vocab.lm_vocab_size} ids, LM has {self.vlm.lm.vocab_size}"
            )
        if self.action_head is not None and ACTION_KEY not in proc.normalizer:
            problems.append(f"action_head 'l1' regresses normalised actions; normalizer lacks {ACTION_KEY!r}")
        if problems:
            raise ValueError(f"{where}: incompatible config: " + "; ".join(problems))

    # ----------------------------------------------------------------- training
    def components(self) -> dict[str, nn.Module]:
        comps = self.vlm.components()
        heads = {"action_head": self.action_head, "aux_head": self.aux_head}
        return {**comps, **{k: m for k, m in heads.items() if m is not None}}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch from VLAProcessor.collate (tensors) -> {"loss", ...metrics} (tensors): action-token and
        token accuracy (teacher forced) and, in eval mode with a bin tokenizer, `action_l1`: the mean raw-unit
        error of the constrained-argmax actions (decoded by the processor's torch bin table).
        With the continuous head: the L1 loss against the batch's normalised targets, and action_l1."""
        if self.action_head is not None:
            return self._forward_continuous(batch)
        out = self.vlm(
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            images=batch["images"],
            state=batch.get("state"),
            points=batch.get("points"),
            goal_points=batch.get("goal_points"),
        )
        logits = out.logits[:, :-1]  # [B,M+L-1,V] predicts position t+1
        target = out.labels[:, 1:]  # [B,M+L-1]
        is_action = torch.isin(target, self.action_ids)  # [B,M+L-1]
        pred = logits.argmax(dim=-1)
        result = {"loss": out.loss}
        if self.action_label_sigma > 0:
            # action_ids: the vocab's LM ids in bin order [n_bins], already on the model's device
            result["loss"] = ordinal_action_loss(logits, target, self.action_ids, self.action_label_sigma)
        if bool(is_action.any()):
            result["action_acc"] = (pred[is_action] == target[is_action]).float().mean().detach()
        labelled = target != IGNORE_INDEX
        result["token_acc"] = (pred[labelled] == target[labelled]).float().mean().detach()
        fixed = self.processor.fixed_length
        if not self.training and self.processor.has_bins and "raw_actions" in batch and bool(is_action.any()):
            rows = is_action.sum(dim=1)
            if bool((rows == fixed).all()):
                sub = logits[is_action][:, self.action_ids]  # [B*L,K] scores of action ids only
                token_ids = sub.argmax(dim=-1).view(-1, fixed)  # [B,L] action token ids (bin order)
                acts = self.processor.actions_from_token_ids(token_ids)  # [B,T,D] raw
                raw = batch["raw_actions"].to(acts.device)  # [B,T,D]
                result["action_l1"] = (acts - raw).abs().mean().detach()
        return result

    def regress_actions(self, inputs: Mapping[str, torch.Tensor], prompt_mask: torch.Tensor) -> torch.Tensor:
        """Continuous head: model inputs + prompt mask [B,L] (1 on BOS + prompt) -> normalised [B,T,D]."""
        assert self.action_head is not None
        return self.action_head(self._query_hidden(inputs, prompt_mask))  # [B,T,D]

    def _query_hidden(self, inputs: Mapping[str, torch.Tensor], prompt_mask: torch.Tensor) -> torch.Tensor:
        """The action queries' final hidden states [B,T,H] (what the continuous and auxiliary heads read)."""
        assert self.action_head is not None
        dev = self.action_ids.device
        opt = {k: inputs[k].to(dev) for k in ("state", "points", "goal_points") if k in inputs}
        return self.vlm.query_hidden_states(
            self.action_head.queries,
            inputs["input_ids"].to(dev),
            prompt_mask.to(dev),
            images=inputs["images"].to(dev),
            **opt,
        )  # [B,T,H]

    def _forward_continuous(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """L1 loss of the regressed chunk against batch["actions"] (normalised by the processor); in eval
        mode action_l1 in raw units (the processor's unnormaliser, torch ops) against batch["raw_actions"]."""
        assert self.action_head is not None
        # the collated rows are [BOS + prompt][action ids][EOS][pads]: keep only the prompt visible
        prompt_mask = batch["attention_mask"] * (batch["labels"] == IGNORE_INDEX)  # [B,L]
        # the answer ids and pads after the longest prompt are masked for every query: leave them out of
        # the sequence (the same values, a tenth less LM work for a 7-token answer)
        keep = int(prompt_mask.any(dim=0).nonzero().max()) + 1
        inputs = {**batch, "input_ids": batch["input_ids"][:, :keep]}
        hidden = self._query_hidden(inputs, prompt_mask[:, :keep])  # [B,T,H]
        head = self.action_head
        chunks, scores = head.hypotheses(hidden)  # [B,K,T,D] normalised, [B,K]
        target = batch["actions"].to(chunks.device, chunks.dtype)  # [B,T,D] normalised
        pred = head.best(chunks, scores)  # [B,T,D] the chunk acting would take
        if head.modes == 1:
            result = {"loss": regression_loss(pred, target, self.action_loss)}
        else:
            loss, parts = head.modes_loss(chunks, scores, target)
            result = {"loss": loss, **parts}
        if self.aux_head is not None and self.aux_weight > 0:
            if "aux" not in batch:
                raise ValueError("aux_weight > 0 but the batch has no 'aux' (from vla collect aux=true)")
            aux = self.aux_head(hidden)  # [B,A] normalised
            aux_l1 = self.action_head.loss(aux, batch["aux"].to(aux.device))  # the same L1, shapes checked
            result["action_loss"] = result["loss"].detach()
            result["aux_l1"] = aux_l1.detach()
            result["loss"] = result["loss"] + self.aux_weight * aux_l1
        if not self.training and "raw_actions" in batch:
            acts = self.processor.unnormalize_action(pred.detach().float())  # [B,T,D] raw
            result["action_l1"] = (acts - batch["raw_actions"].to(acts.device).float()).abs().mean()
        return result

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def generate_action_ids(self, inputs: Mapping[str, torch.Tensor], use_cache: bool = True) -> torch.Tensor:
        """Constrained greedy decoding of one action chunk: model inputs (processor.preprocess) -> [B,L]."""
        fixed = self.processor.fixed_length
        allowed = self.action_ids
        eos: int | None = None
        steps = fixed if fixed is not None else self.processor.max_action_tokens
        if fixed is None:  # variable length: action ids or EOS
            eos = int(self.processor.text_tokenizer.eos_token_id)
            allowed = torch.cat([allowed, allowed.new_tensor([eos])])
        dev = self.action_ids.device
        gen = self.vlm.generate(
            inputs["input_ids"].to(dev),
            inputs["attention_mask"].to(dev),
            images=inputs["images"].to(dev),
            state=inputs["state"].to(dev) if "state" in inputs else None,
            points=inputs["points"].to(dev) if "points" in inputs else None,
            goal_points=inputs["goal_points"].to(dev) if "goal_points" in inputs else None,
            max_new_tokens=steps,
            allowed=allowed,
            use_cache=use_cache,
            eos_token_id=eos,
        )
        return gen.tokens

    @torch.no_grad()
    def act(self, inputs: Mapping[str, torch.Tensor], use_cache: bool = True) -> dict[str, torch.Tensor]:
        """Model inputs (processor.preprocess) -> the action outputs processor.postprocess decodes:
        {"actions": [B,T,D] normalised} (continuous head, one forward pass) or {"action_ids": [B,L]} LM
        ids (token head, constrained greedy decoding)."""
        if self.action_head is not None:
            return {"actions": self.regress_actions(inputs, inputs["attention_mask"])}  # [B,T,D]
        return {"action_ids": self.generate_action_ids(inputs, use_cache=use_cache)}  # [B,L]

    @torch.no_grad()
    def predict_action(
        self,
        obs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        instruction: str | None = None,
        use_cache: bool = True,
    ) -> np.ndarray:
        """One observation dict (or a history, oldest first) -> raw action chunk [T, D] float32:
        processor.preprocess -> act (eval mode) -> processor.postprocess."""
        history = [obs] if isinstance(obs, Mapping) else list(obs)
        inputs = self.processor.preprocess(history, instruction)
        was_training = self.training  # switching walks every submodule: ~1 ms a call, so only if needed
        if was_training:
            self.eval()
        try:
            outputs = self.act(inputs, use_cache=use_cache)
        finally:
            if was_training:
                self.train()
        return self.processor.postprocess(outputs)[0]  # [T,D]

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_contents(
        self,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> CheckpointContents:
        """What a checkpoint of this VLA holds (vla.models.checkpoint): config.json with the resolved VLM
        config and a "vla" section, the weights under VLM parameter names plus the continuous head's own
        action_head.*, the text tokenizer and the processor's three files. `state_dict` (this module's
        keys, e.g. the trainer's EMA weights) defaults to the current parameters; `extra_config` adds
        config.json sections (the trainer's "train")."""
        p = self.processor
        sd = self.state_dict() if state_dict is None else state_dict
        weights = {k[len("vlm.") :]: v for k, v in sd.items() if k.startswith("vlm.")}
        weights.update({k: v for k, v in sd.items() if k.startswith(HEAD_PREFIXES)})
        section = {
            "processor": dataclasses.asdict(p.cfg),
            "action_tokenizer": p.action_tokenizer.name,
            "action_dim": p.action_dim,
            "chunk_len": p.chunk_len,
            "action_head": self.action_head_name,
        }
        if self.aux_head is not None:  # only then: checkpoints without the head stay as they were
            section["aux_dim"] = self.aux_head.aux_dim
        if self.action_head is not None and self.action_head.modes > 1:
            section["action_modes"] = self.action_head.modes
        return CheckpointContents(
            state_dict=weights,
            model_type=VLA_TYPE,
            model_config=dataclasses.asdict(self.vlm.resolved_config()),
            sections={"vla": section, **dict(extra_config or {})},
            text_tokenizer=p.text_tokenizer,
            sentence_tokenizer=self.vlm.sentence_tokenizer,
            processor=p.to_dict(),
            normalizer=p.normalizer,
            action_tokenizer=p.action_tokenizer,
        )

    def save_pretrained(self, path: str | Path, extra_config: Mapping[str, Any] | None = None) -> Path:
        """Write the checkpoint directory atomically (replaces an existing one in one rename)."""
        return write_checkpoint(path, self.checkpoint_contents(extra_config=extra_config))

    def load_weights(self, path: str | Path) -> None:
        """Load model.safetensors of a checkpoint strictly into this VLA (the trainer's resume)."""
        load_weights(self, path, rename=_module_key)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> VLA:
        """Rebuild the VLA of an opened (checked) checkpoint; errors name the bad file."""
        where = str(ck.file(CONFIG_FILE))
        cfg = vlm_config_from_dict(ck.model_config, where=where)
        tok = ck.text_tokenizer()
        proc = VLAProcessor.from_dict(
            ck.processor_config(), tok, ck.action_tokenizer(), ck.normalizer(), str(ck.file(PROCESSOR_FILE))
        )
        try:
            vlm = VLM(cfg, tokenizer=tok, sentence_tokenizer=ck.sentence_tokenizer())
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where}: cannot build the model: {e!r}") from None
        head = ck.section("vla").get("action_head", "tokens")  # absent in older checkpoints
        try:
            vla = ck.section("vla")
            model = cls(vlm, proc, head, int(vla.get("aux_dim", 0)), int(vla.get("action_modes", 1)))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        model._check_compatible(str(ck.path))
        ck.load_weights(model, rename=_module_key)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path) -> VLA:
        """Rebuild a VLA from its checkpoint directory, or a training run's latest checkpoint."""
        return cls.from_checkpoint(Checkpoint.open(path, model_type=VLA_TYPE))


HEAD_PREFIXES = ("action_head.", "aux_head.")  # the VLA's own modules in model.safetensors, beside the VLM's


def _module_key(weights_key: str) -> str:
    """A model.safetensors key (VLM parameter names, action/aux_head.*) -> the VLA's state-dict key."""
    return weights_key if weights_key.startswith(HEAD_PREFIXES) else f"vlm.{weights_key}"
