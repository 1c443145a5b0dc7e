"""The VLA processor: observations, prompts and actions to model tensors and back, saved with the checkpoint.

One object does every conversion between the env/robot dict format of `vla.core.types` and the model, so
training (`collate` over `vla.data.windows` samples), evaluation and deployment (`observation` over one
env observation or a history of them, `decode_actions` after generation) preprocess identically:

    images/<camera> uint8 [H,W,3] (x n_obs)  -> pixels [B, n_obs*C, 3, S, S]   (encoder's ImageTransform)
    state float32 [S] (x n_obs)              -> state  [B, n_obs*S]            (Normalizer, "state" key)
    instruction str                          -> BOS + prompt ids (right-padded for training, left for
                                                generation) with labels only on action ids + EOS
    action float32 [T, D] raw                -> LM ids [L] (Normalizer "action" key unless the action
                                                tokenizer's input_space is "raw"; then tokenizer; vocab)
    pointcloud/points [N,3] (+ colors)       -> points [B, N, 3|6]    (obs_points = N > 0; from depth with
                                                the saved camera models when an observation lacks it)
    goal/points [N,3] (+ goal/colors)        -> goal_points [B, N, 3|6]  (goal_points = N > 0)

Point clouds (vla.pointcloud.model_inputs): xyz in metres, robot base frame, normalised by the fixed
workspace `point_center` / `point_scale` saved with the checkpoint; colours uint8 or floats in [0, 1].

Normalisation of actions happens exactly once: by the dataset's q99 `Normalizer` for "normalized"
tokenizers (uniform, FAST), or inside the tokenizer for "raw" ones (quantile/openvla).

    proc = VLAProcessor.build(text_tok, action_tok, normalizer, transform, ProcessorConfig(...))
    batch = proc.collate(samples)                  # training batch dict (tensors)
    inputs = proc.observation([obs])               # one step, history of 1
    actions, valid = proc.decode_actions(lm_ids)   # [B,L] -> raw actions [B,T,D], valid [B]
    VLAProcessor.from_dict(proc.to_dict(), text_tok, action_tok, normalizer)   # as saved in a checkpoint
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from action_tokenizers.vocab import ActionVocab, make_action_vocab
from vla.backbones.transforms import ImageTransform
from vla.core.normalizer import Normalizer
from vla.backbones.text import IGNORE_INDEX
from vla.pointcloud.model_inputs import PointInputConfig, PointInputs
from vla.core.types import ACTION_KEY, INSTRUCTION_KEY, STATE_KEY, image_key

DEFAULT_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
FORMAT_VERSION = 1


@dataclass
class ProcessorConfig(PointInputConfig):
    """What the processor reads from an observation and how it builds the prompt (the point-cloud fields,
    obs_points, goal_points, point_colors, point_center, point_scale, point_pipeline, point_cameras, come
    from PointInputConfig; all off by default, so processor configs saved without them still load)."""

    cameras: list[str] = field(default_factory=lambda: ["static", "wrist"])
    use_state: bool = True
    state_dim: int = 15
    n_obs: int = 1  # observation history length (current step included)
    prompt: str = DEFAULT_PROMPT
    vocab_mode: str = "append"  # append new <act_k> tokens, or OpenVLA's "overwrite" of the last ids

    def check(self) -> None:
        if not self.cameras:
            raise ValueError("processor: cameras must name at least one camera (e.g. [static])")
        if self.n_obs < 1:
            raise ValueError(f"processor: n_obs must be >= 1, got {self.n_obs}")
        if "{instruction}" not in self.prompt:
            raise ValueError(f"processor: prompt must contain '{{instruction}}', got {self.prompt!r}")
        if self.use_state and self.state_dim < 1:
            raise ValueError(f"processor: use_state needs state_dim >= 1, got {self.state_dim}")


class VLAProcessor:
    """Converts observations/instructions/actions to model tensors and generated ids back to actions."""

    def __init__(
        self,
        cfg: ProcessorConfig,
        text_tokenizer: Any,
        action_tokenizer: Any,
        vocab: ActionVocab,
        normalizer: Normalizer,
        transform: ImageTransform,
    ):
        cfg.check()
        self.cfg = dataclasses.replace(cfg, cameras=list(cfg.cameras))
        names = [f.name for f in dataclasses.fields(PointInputConfig)]
        self.points = PointInputs(PointInputConfig(**{n: getattr(self.cfg, n) for n in names}))
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.vocab = vocab
        self.normalizer = normalizer
        self.transform = transform
        if not action_tokenizer.is_fitted:
            raise ValueError("processor: the action tokenizer is not fitted (call fit on the dataset first)")
        if vocab.n_tokens != action_tokenizer.vocab_size:
            raise ValueError(
                f"processor: action vocab has {vocab.n_tokens} ids, the action tokenizer "
                f"{action_tokenizer.vocab_size}"
            )
        if self.normalize_actions and ACTION_KEY not in normalizer:
            raise ValueError(
                f"processor: tokenizer {action_tokenizer.name!r} takes normalised actions but the "
                f"normalizer has no {ACTION_KEY!r} statistics"
            )
        if cfg.use_state and STATE_KEY not in normalizer:
            raise ValueError(f"processor: use_state=true but the normalizer has no {STATE_KEY!r} statistics")
        self._action_ids = torch.as_tensor(vocab.lm_ids, dtype=torch.long)  # [K] LM ids of action tokens
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def build(
        cls,
        cfg: ProcessorConfig,
        text_tokenizer: Any,
        action_tokenizer: Any,
        normalizer: Normalizer,
        transform: ImageTransform,
    ) -> VLAProcessor:
        """A fresh processor: places the action tokens in (a copy of) the text tokenizer's vocabulary."""
        tok, vocab = make_action_vocab(cfg.vocab_mode, text_tokenizer, action_tokenizer.vocab_size)
        return cls(cfg, tok, action_tokenizer, vocab, normalizer, transform)

    # ----------------------------------------------------------------- properties
    @property
    def normalize_actions(self) -> bool:
        """True when the processor (not the tokenizer) maps raw actions to [-1, 1]."""
        return getattr(self.action_tokenizer, "input_space", "normalized") != "raw"

    @property
    def chunk_len(self) -> int:
        return int(self.action_tokenizer.chunk_len)

    @property
    def action_dim(self) -> int:
        return int(self.action_tokenizer.action_dim)

    @property
    def action_lm_ids(self) -> torch.Tensor:
        """LM ids the decoder may emit at action positions, [K] long (a copy)."""
        return self._action_ids.clone()

    @property
    def fixed_length(self) -> int | None:
        """Tokens per action chunk, or None for variable-length tokenizers (FAST)."""
        return self.action_tokenizer.tokens_per_chunk

    @property
    def max_action_tokens(self) -> int:
        return int(self.action_tokenizer.max_tokens)

    @property
    def num_images(self) -> int:
        """Image slots per sample: cameras x history."""
        return len(self.cfg.cameras) * self.cfg.n_obs

    # ----------------------------------------------------------------- text
    def prompt_ids(self, instruction: str) -> list[int]:
        """BOS + the formatted prompt's ids (cached per instruction)."""
        if instruction not in self._prompt_cache:
            text = self.cfg.prompt.format(instruction=instruction.strip().rstrip(".").lower())
            ids = self.text_tokenizer(text, add_special_tokens=False)["input_ids"]
            bos = self.text_tokenizer.bos_token_id
            self._prompt_cache[instruction] = ([bos] if bos is not None else []) + list(ids)
        return list(self._prompt_cache[instruction])

    # ----------------------------------------------------------------- actions
    def action_token_ids(self, actions: Any) -> np.ndarray | list[np.ndarray]:
        """Raw actions [B,T,D] -> LM ids [B,L] (fixed length) or a list of B arrays (variable length)."""
        arr = np.asarray(actions, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1:] != (self.chunk_len, self.action_dim):
            raise ValueError(
                f"processor: expected {ACTION_KEY} [B, T={self.chunk_len}, D={self.action_dim}], got "
                f"{tuple(arr.shape)}"
            )
        if self.normalize_actions:
            arr = np.asarray(self.normalizer.normalize(ACTION_KEY, arr), dtype=np.float64)
        ids = self.action_tokenizer.encode(arr)
        if isinstance(ids, np.ndarray):
            return self.vocab.to_lm(ids)  # [B,L]
        return [self.vocab.to_lm(np.asarray(r)) for r in ids]

    def decode_actions(self, lm_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Generated LM ids [B,L] (or a list of rows) -> raw actions [B,T,D] float32 and valid [B] bool.

        Rows are cut at the first EOS; any non-action id makes that chunk invalid (the tokenizer then gives
        its best valid chunk)."""
        rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in _as_rows(lm_ids)]
        eos = self.text_tokenizer.eos_token_id
        tok_rows, ok = [], []
        for r in rows:
            if eos is not None and self.fixed_length is None and np.any(r == eos):
                r = r[: int(np.argmax(r == eos))]
            ids, is_action = self.vocab.from_lm(r)
            tok_rows.append(ids)
            ok.append(bool(is_action.all()))
        if self.fixed_length is not None and all(len(r) == self.fixed_length for r in tok_rows):
            dec = self.action_tokenizer.decode(np.stack(tok_rows))  # [B,L]
        else:  # variable length, or a wrong-length row (decoded as invalid)
            dec = self.action_tokenizer.decode(tok_rows)
        acts = np.asarray(dec.actions, dtype=np.float64).reshape(len(rows), self.chunk_len, self.action_dim)
        if self.normalize_actions:
            acts = np.asarray(self.normalizer.unnormalize(ACTION_KEY, acts), dtype=np.float64)
        valid = np.asarray(dec.valid, dtype=bool).reshape(len(rows)) & np.asarray(ok, dtype=bool)
        return acts.astype(np.float32), valid

    # ----------------------------------------------------------------- observations
    def _pixels(self, frames: Sequence[Any], where: str) -> torch.Tensor:
        """Per sample a list of n_obs*C uint8 [H,W,3] frames -> [B, n_obs*C, 3, S, S]."""
        stacked = [self.transform(np.stack([np.asarray(f) for f in fs])) for fs in frames]  # [N,3,S,S] each
        out = torch.stack(stacked)  # [B,N,3,S,S]
        if out.shape[1] != self.num_images:
            raise ValueError(
                f"processor ({where}): expected {self.num_images} image slots, got {out.shape[1]}"
            )
        return out

    def _state(self, states: np.ndarray, where: str) -> torch.Tensor:
        """states [B, n_obs, S] raw -> normalised [B, n_obs*S] float32."""
        s = self.cfg.state_dim
        if states.ndim != 3 or states.shape[1:] != (self.cfg.n_obs, s):
            raise ValueError(
                f"processor ({where}): expected {STATE_KEY} [B, n_obs={self.cfg.n_obs}, {s}], got "
                f"{tuple(states.shape)}"
            )
        norm = np.asarray(self.normalizer.normalize(STATE_KEY, states), dtype=np.float32)
        return torch.from_numpy(norm.reshape(states.shape[0], -1))  # [B,n_obs,S] -> [B,n_obs*S]

    def _frames_of(self, sample: Mapping[str, Any], where: str) -> list[Any]:
        """A window sample's images: per camera [n_obs,H,W,3] -> list ordered (time, camera)."""
        per_cam = []
        for cam in self.cfg.cameras:
            key = image_key(cam)
            if key not in sample:
                raise ValueError(f"processor ({where}): missing {key!r}; have {sorted(sample)}")
            x = np.asarray(sample[key])
            if x.ndim != 4 or x.shape[0] != self.cfg.n_obs or x.shape[-1] != 3 or x.dtype != np.uint8:
                raise ValueError(
                    f"processor ({where}): {key} must be uint8 [n_obs={self.cfg.n_obs}, H, W, 3], got "
                    f"{tuple(x.shape)} {x.dtype}"
                )
            per_cam.append(x)
        return [per_cam[c][t] for t in range(self.cfg.n_obs) for c in range(len(per_cam))]

    def observation(self, history: Sequence[Mapping[str, Any]], instruction: str | None = None) -> dict:
        """Model inputs for one decision from env observations (oldest first; the last is current).

        A history shorter than n_obs repeats its first frame (as the training windows do at an episode
        start). Returns input_ids/attention_mask [1,L], images [1,N,3,S,S], state [1,n_obs*S] and, when
        enabled, points [1,N,C] / goal_points [1,N',C] of the current observation."""
        if not history:
            raise ValueError("processor: observation history is empty")
        hist = list(history)[-self.cfg.n_obs :]
        hist = [hist[0]] * (self.cfg.n_obs - len(hist)) + hist
        sample: dict[str, Any] = {}
        for cam in self.cfg.cameras:
            key = image_key(cam)
            missing = [i for i, o in enumerate(hist) if key not in o]
            if missing:
                raise ValueError(
                    f"processor: observation lacks {key!r} (the checkpoint was trained with cameras "
                    f"{self.cfg.cameras}); it has {sorted(hist[-1])}"
                )
            sample[key] = np.stack([np.asarray(o[key]) for o in hist])
        instr = instruction if instruction is not None else hist[-1].get(INSTRUCTION_KEY)
        if not isinstance(instr, str):
            raise ValueError(f"processor: observation has no {INSTRUCTION_KEY!r} string and none was given")
        ids = self.prompt_ids(instr)
        out = {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "images": self._pixels([self._frames_of(sample, "observation")], "observation"),
        }
        if self.cfg.use_state:
            if any(STATE_KEY not in o for o in hist):
                raise ValueError(f"processor: observation lacks {STATE_KEY!r} (use_state=true)")
            states = np.stack([np.asarray(o[STATE_KEY], dtype=np.float64) for o in hist])[None]
            out["state"] = self._state(states, "observation")
        if self.points.enabled:  # clouds of the current observation only
            out.update(self.points.batch([self.points.with_observation_cloud(hist[-1])], "observation"))
        return out

    def collate(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Window samples (vla.data.windows) -> a right-padded training batch.

        input_ids/attention_mask/labels [B,L] (labels on action ids + EOS), images [B,N,3,S,S],
        state [B,n_obs*S] (if used), actions [B,T,D] raw float32 (for L1 of decoded actions)."""
        if not samples:
            raise ValueError("processor.collate: empty batch")
        actions = np.stack([np.asarray(s[ACTION_KEY], dtype=np.float64) for s in samples])  # [B,T,D]
        act_ids = self.action_token_ids(actions)
        eos = self.text_tokenizer.eos_token_id
        seqs = []
        for s, a in zip(samples, act_ids, strict=True):
            p = self.prompt_ids(str(s[INSTRUCTION_KEY]))
            ans = [int(i) for i in np.asarray(a).reshape(-1)] + ([eos] if eos is not None else [])
            seqs.append((p + ans, [IGNORE_INDEX] * len(p) + ans))
        length = max(len(ids) for ids, _ in seqs)
        pad = int(self.text_tokenizer.pad_token_id or 0)
        b = len(seqs)
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        mask = torch.zeros(b, length, dtype=torch.long)
        labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
        for i, (ids, lab) in enumerate(seqs):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
            labels[i, : len(ids)] = torch.tensor(lab)
        batch = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": labels,
            "images": self._pixels([self._frames_of(s, "collate") for s in samples], "collate"),
            "actions": torch.from_numpy(actions.astype(np.float32)),
        }
        if self.cfg.use_state:
            states = np.stack([np.asarray(s[STATE_KEY], dtype=np.float64) for s in samples])
            batch["state"] = self._state(states, "collate")
        batch.update(self.points.batch(samples, "collate"))  # points / goal_points [B,N,C] when enabled
        return batch

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.cfg),
            "image_transform": self.transform.to_dict(),
            "action_vocab": self.vocab.to_dict(),
            "normalize_actions": self.normalize_actions,
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        text_tokenizer: Any,
        action_tokenizer: Any,
        normalizer: Normalizer,
        where: str = "processor config",
    ) -> VLAProcessor:
        """The processor `to_dict` described, around a checkpoint's tokenizers and normaliser (the
        checkpoint module, vla.models.checkpoint, reads the files); errors name `where`."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: expected format_version {FORMAT_VERSION}")
        try:
            cfg = ProcessorConfig(**data["config"])
            transform = ImageTransform.from_dict(data["image_transform"])
            vocab = ActionVocab.from_dict(data["action_vocab"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where}: malformed processor config: {e!r}") from None
        proc = cls(cfg, text_tokenizer, action_tokenizer, vocab, normalizer, transform)
        if proc.normalize_actions != bool(data.get("normalize_actions", proc.normalize_actions)):
            raise ValueError(f"{where}: normalize_actions disagrees with the action tokenizer")
        if len(text_tokenizer) < vocab.lm_vocab_size:
            raise ValueError(
                f"{where}: the text tokenizer has {len(text_tokenizer)} ids but the action vocab needs "
                f"{vocab.lm_vocab_size} (tokenizer and processor config come from different checkpoints)"
            )
        return proc


def _as_rows(lm_ids: Any) -> list[Any]:
    if isinstance(lm_ids, torch.Tensor):
        lm_ids = lm_ids.detach().cpu().numpy()
    if isinstance(lm_ids, np.ndarray):
        return list(lm_ids.reshape(-1, lm_ids.shape[-1])) if lm_ids.ndim >= 1 else [lm_ids.reshape(1)]
    return list(lm_ids)
