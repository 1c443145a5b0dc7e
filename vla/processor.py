"""The VLA processor: observations, prompts and actions to model tensors and back, saved with the checkpoint.

One object does every conversion between the env/robot dict format of `vla.core.types` and the model's
tensors, so training (`collate` over `vla.data.windows` samples), evaluation and deployment (`preprocess`
of one env observation or a history of them, `postprocess` of the model's outputs) convert identically
and the model sees tensors only:

    images/<camera> uint8 [H,W,3] (x n_obs)  -> pixels [B, n_obs*C, 3, S, S]   (encoder's ImageTransform)
    state float32 [S] (x n_obs)              -> state  [B, n_obs*S]            (Normalizer, "state" key)
    instruction str                          -> BOS + prompt ids (right-padded for training, left for
                                                generation) with labels only on action ids + EOS
    action float32 [T, D] raw                -> actions [B, T, D] float32 normalised (Normalizer
                                                "action" key: the continuous head's target), LM ids [L]
                                                (tokenizer of the normalised chunk, or of the raw one
                                                when its input_space is "raw"; vocab) and raw_actions
                                                [B, T, D] float32 (for raw-unit metrics only)
    pointcloud/points [N,3] (+ colors)       -> points [B, N, 3|6]    (obs_points = N > 0; from depth with
                                                the saved camera models when an observation lacks it)
    goal/points [N,3] (+ goal/colors)        -> goal_points [B, N, 3|6]  (goal_points = N > 0)

Point clouds (vla.pointcloud.model_inputs): xyz in metres, robot base frame, normalised by the fixed
workspace `point_center` / `point_scale` saved with the checkpoint; colours uint8 or floats in [0, 1].

Actions are normalised here, exactly once, on float32 tensors: by the dataset's q99 `Normalizer` for the
continuous head's targets and "normalized" tokenizers (uniform, FAST), or inside the tokenizer for "raw"
ones (quantile/openvla). Decoding is here too: `postprocess` maps the model's outputs (normalised chunks
of the continuous head, or the token head's generated LM ids) to raw numpy actions, and the model's
raw-unit metrics use `unnormalize_action` / `actions_from_token_ids` (torch ops). Prompts and padding go
through vla.backbones.text, as the VQA collator's do.

    proc = VLAProcessor.build(text_tok, action_tok, normalizer, transform, ProcessorConfig(...))
    batch = proc.collate(samples)                  # training batch dict (tensors)
    inputs = proc.preprocess([obs])                # one step, history of 1 -> model input tensors
    chunks = proc.postprocess(vla.act(inputs))     # -> raw actions [B,T,D] float32 numpy
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

from action_tokenizers.bins import BinTokenizerBase
from action_tokenizers.vocab import ActionVocab, make_action_vocab
from vla.backbones.transforms import ImageTransform
from vla.core.normalizer import Normalizer
from vla.core.state import STATE_SLICES
from vla.backbones.text import encode_text, pad_batch, with_answer
from vla.pointcloud.model_inputs import PointInputConfig, PointInputs
from vla.core.types import ACTION_KEY, AUX_KEY, INSTRUCTION_KEY, STATE_DIM, STATE_KEY, image_key

DEFAULT_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
FORMAT_VERSION = 1


@dataclass
class ProcessorConfig(PointInputConfig):
    """What the processor reads from an observation and how it builds the prompt (the point-cloud fields,
    obs_points, goal_points, point_colors, point_center, point_scale, point_pipeline, point_cameras, come
    from PointInputConfig; all off by default, so processor configs saved without them still load)."""

    cameras: list[str] = field(default_factory=lambda: ["static", "wrist"])
    use_state: bool = True
    state_dim: int = 15  # the observation's state vector (vla.core.state's layout)
    state_parts: list[str] = field(default_factory=list)  # the parts the model reads; [] = all of them
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
        unknown = [p for p in self.state_parts if p not in STATE_SLICES]
        if unknown or len(set(self.state_parts)) != len(self.state_parts):
            raise ValueError(
                f"processor: state_parts must name distinct parts of the state vector, each one of "
                f"{list(STATE_SLICES)}; got {list(self.state_parts)}"
            )
        if self.state_parts and self.state_dim != STATE_DIM:
            raise ValueError(
                f"processor: state_parts selects from the {STATE_DIM}-D state layout of vla.core.state, "
                f"but state_dim is {self.state_dim}"
            )

    @property
    def model_state_dim(self) -> int:
        """The state features per observation the model reads: state_dim, or the selected parts' width."""
        if not self.use_state:
            return 0
        if not self.state_parts:
            return self.state_dim
        return sum(STATE_SLICES[p].stop - STATE_SLICES[p].start for p in self.state_parts)


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
        self._bin_values = _bin_values(action_tokenizer)  # [K,D] float32 or None (not a bin tokenizer)
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
    def has_bins(self) -> bool:
        """True for per-dimension bin tokenizers (uniform, quantile, openvla): fixed length, ordered ids,
        and `actions_from_token_ids` decodes them as torch ops."""
        return self._bin_values is not None

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
            self._prompt_cache[instruction] = encode_text(self.text_tokenizer, text, bos=True)
        return list(self._prompt_cache[instruction])

    # ----------------------------------------------------------------- actions
    def _action_chunks(self, actions: Any, where: str) -> torch.Tensor:
        """Raw action chunks (tensor or array) -> float32 tensor [B,T,D] (checked; a new tensor or a view)."""
        x = torch.as_tensor(actions).to(torch.float32)
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.chunk_len, self.action_dim):
            raise ValueError(
                f"processor ({where}): expected {ACTION_KEY} [B, T={self.chunk_len}, D={self.action_dim}], "
                f"got {tuple(x.shape)}"
            )
        return x

    def normalize_action(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw actions [..., D] -> the checkpoint Normalizer's "action" space (q99: [-1, 1]), same dtype
        and device (torch ops; the continuous head's targets and "normalized" tokenizers' input)."""
        if ACTION_KEY not in self.normalizer:
            raise ValueError(f"processor: the normalizer has no {ACTION_KEY!r} statistics")
        return self.normalizer.normalize(ACTION_KEY, raw)

    def unnormalize_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize_action`: normalised [..., D] -> raw units, same dtype and device."""
        if ACTION_KEY not in self.normalizer:
            raise ValueError(f"processor: the normalizer has no {ACTION_KEY!r} statistics")
        return self.normalizer.unnormalize(ACTION_KEY, actions)

    def _token_rows(self, raw: torch.Tensor, normed: torch.Tensor | None) -> np.ndarray | list[np.ndarray]:
        """The tokenizer's ids of raw chunks [B,T,D] (or of their normalised copy `normed`, for
        "normalized" tokenizers) as LM ids [B,L], or B arrays for variable-length tokenizers."""
        x = raw
        if self.normalize_actions:
            x = normed if normed is not None else self.normalize_action(raw)
        ids = self.action_tokenizer.encode(x.detach().cpu().numpy())  # the tokenizers work on numpy
        if isinstance(ids, np.ndarray):
            return self.vocab.to_lm(ids)  # [B,L]
        return [self.vocab.to_lm(np.asarray(r)) for r in ids]

    def action_token_ids(self, actions: Any) -> np.ndarray | list[np.ndarray]:
        """Raw actions [B,T,D] -> LM ids [B,L] (fixed length) or a list of B arrays (variable length)."""
        return self._token_rows(self._action_chunks(actions, "action_token_ids"), None)

    def actions_from_token_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Action token ids [B, T*D] in [0, K) (not LM ids) -> raw actions [B,T,D] float32 on their device,
        as torch ops: the bin values of a bin tokenizer (uniform, quantile, openvla), unnormalised for
        "normalized" ones. The same values as `decode_actions` gives for those ids; the model's
        teacher-forced raw-unit metric. ValueError for tokenizers without bins (FAST)."""
        if self._bin_values is None:
            raise ValueError(f"processor: tokenizer {self.action_tokenizer.name!r} has no per-dimension bins")
        t, d = self.chunk_len, self.action_dim
        table = self._bin_values.to(token_ids.device)  # [K,D]
        idx = token_ids.reshape(-1, t, d)  # [B,T*D] -> [B,T,D]
        values = table[idx, torch.arange(d, device=idx.device)]  # [B,T,D]
        return self.unnormalize_action(values) if self.normalize_actions else values

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
        acts = torch.as_tensor(np.asarray(dec.actions, dtype=np.float32)).reshape(
            len(rows), self.chunk_len, self.action_dim
        )  # [B,T,D] in the tokenizer's input space
        if self.normalize_actions:
            acts = self.unnormalize_action(acts)
        valid = np.asarray(dec.valid, dtype=bool).reshape(len(rows)) & np.asarray(ok, dtype=bool)
        return acts.numpy(), valid

    def postprocess(self, outputs: Mapping[str, torch.Tensor]) -> np.ndarray:
        """The model's action outputs -> raw action chunks [B,T,D] float32 (numpy, for the policy).

        outputs["actions"]: normalised chunks [B,T,D] (continuous head), unnormalised here; or
        outputs["action_ids"]: generated LM ids [B,L] (token head), decoded by `decode_actions` (an invalid
        chunk gives the tokenizer's best valid chunk)."""
        if "actions" in outputs:
            return self.unnormalize_action(outputs["actions"].detach().to("cpu", torch.float32)).numpy()
        if "action_ids" in outputs:
            return self.decode_actions(outputs["action_ids"])[0]
        raise ValueError(f"processor.postprocess: expected 'actions' or 'action_ids', got {sorted(outputs)}")

    # ----------------------------------------------------------------- observations
    def _frames_of(self, sample: Mapping[str, Any], where: str) -> torch.Tensor:
        """A sample's images: per camera uint8 [n_obs,H,W,3] -> [n_obs*C,H,W,3] ordered (time, camera)."""
        per_cam = []
        for cam in self.cfg.cameras:
            key = image_key(cam)
            if key not in sample:
                raise ValueError(f"processor ({where}): missing {key!r}; have {sorted(sample)}")
            x = torch.as_tensor(sample[key])  # a view of a numpy array, no copy
            if x.ndim != 4 or x.shape[0] != self.cfg.n_obs or x.shape[-1] != 3 or x.dtype != torch.uint8:
                raise ValueError(
                    f"processor ({where}): {key} must be uint8 [n_obs={self.cfg.n_obs}, H, W, 3], got "
                    f"{tuple(x.shape)} {x.dtype}"
                )
            per_cam.append(x)
        return torch.stack(per_cam, dim=1).flatten(0, 1)  # [n_obs,C,H,W,3] -> [n_obs*C,H,W,3]

    def _pixels(self, samples: Sequence[Mapping[str, Any]], where: str) -> torch.Tensor:
        """Samples -> pixels [B, n_obs*C, 3, S, S] (the encoder's ImageTransform)."""
        frames = [self._frames_of(s, where) for s in samples]  # B x [N,H,W,3] uint8
        if len({tuple(f.shape) for f in frames}) > 1:  # mixed sizes: the transform resizes each sample
            out = torch.stack([self.transform(f) for f in frames])  # [B,N,3,S,S]
        else:  # one transform over the whole batch: per-pixel ops, the same values as sample by sample
            out = self.transform(torch.stack(frames).flatten(0, 1)).unflatten(0, (len(frames), -1))
        if out.shape[1] != self.num_images:
            raise ValueError(
                f"processor ({where}): expected {self.num_images} image slots, got {out.shape[1]}"
            )
        return out

    def _state(self, samples: Sequence[Mapping[str, Any]], where: str) -> torch.Tensor:
        """Samples' raw states [n_obs, S] -> normalised [B, n_obs*S'] float32 (Normalizer "state" key),
        S' = S, or the width of `state_parts` (e.g. [gripper_width]: S' = 1) taken after normalising."""
        if any(STATE_KEY not in sm for sm in samples):
            raise ValueError(f"processor ({where}): a sample lacks {STATE_KEY!r} (use_state=true)")
        states = torch.stack([torch.as_tensor(sm[STATE_KEY]).to(torch.float32) for sm in samples])
        s = self.cfg.state_dim
        if states.ndim != 3 or tuple(states.shape[1:]) != (self.cfg.n_obs, s):
            raise ValueError(
                f"processor ({where}): expected {STATE_KEY} [B, n_obs={self.cfg.n_obs}, {s}], got "
                f"{tuple(states.shape)}"
            )
        states = self.normalizer.normalize(STATE_KEY, states)  # [B,n_obs,S]
        if self.cfg.state_parts:
            parts = [states[..., STATE_SLICES[p]] for p in self.cfg.state_parts]
            states = torch.cat(parts, dim=-1)  # [B,n_obs,S']
        return states.reshape(len(samples), -1)  # [B,n_obs*S']

    def preprocess(self, history: Sequence[Mapping[str, Any]], instruction: str | None = None) -> dict:
        """Model inputs for one decision from env observations (oldest first; the last is current).

        A history shorter than n_obs repeats its first frame (as the training windows do at an episode
        start). Returns input_ids/attention_mask [1,L], images [1,N,3,S,S], state [1,n_obs*S] and, when
        enabled, points [1,N,C] / goal_points [1,N',C] of the current observation (all tensors)."""
        if not history:
            raise ValueError("processor: observation history is empty")
        hist = list(history)[-self.cfg.n_obs :]
        hist = [hist[0]] * (self.cfg.n_obs - len(hist)) + hist
        sample: dict[str, Any] = {}
        for cam in self.cfg.cameras:
            key = image_key(cam)
            if any(key not in o for o in hist):
                raise ValueError(
                    f"processor: observation lacks {key!r} (the checkpoint was trained with cameras "
                    f"{self.cfg.cameras}); it has {sorted(hist[-1])}"
                )
            sample[key] = torch.stack([torch.as_tensor(o[key]) for o in hist])  # [n_obs,H,W,3]
        if self.cfg.use_state:
            if any(STATE_KEY not in o for o in hist):
                raise ValueError(f"processor: observation lacks {STATE_KEY!r} (use_state=true)")
            sample[STATE_KEY] = torch.stack([torch.as_tensor(o[STATE_KEY]) for o in hist])  # [n_obs,S]
        instr = instruction if instruction is not None else hist[-1].get(INSTRUCTION_KEY)
        if not isinstance(instr, str):
            raise ValueError(f"processor: observation has no {INSTRUCTION_KEY!r} string and none was given")
        text = pad_batch([(self.prompt_ids(instr), None)], self._pad_id, side="left")
        out = {
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "images": self._pixels([sample], "preprocess"),
        }
        if self.cfg.use_state:
            out["state"] = self._state([sample], "preprocess")
        if self.points.enabled:  # clouds of the current observation only
            out.update(self.points.batch([self.points.with_observation_cloud(hist[-1])], "preprocess"))
        return out

    def collate(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Window samples (vla.data.windows; tensors or arrays) -> a right-padded training batch.

        input_ids/attention_mask/labels [B,L] (labels on action ids + EOS), images [B,N,3,S,S],
        state [B,n_obs*S] (if used), actions [B,T,D] float32 normalised (when the normaliser has
        "action" statistics: the continuous head's target), raw_actions [B,T,D] float32 (metrics), and
        aux [B,A] float32 normalised (when the normaliser has aux/scene statistics and the samples hold
        it: the current frame's object and goal positions, the auxiliary head's target)."""
        if not samples:
            raise ValueError("processor.collate: empty batch")
        raw = self._action_chunks(torch.stack([torch.as_tensor(s[ACTION_KEY]) for s in samples]), "collate")
        actions = self.normalize_action(raw) if ACTION_KEY in self.normalizer else None  # [B,T,D]
        eos = self.text_tokenizer.eos_token_id
        seqs = [
            with_answer(self.prompt_ids(str(s[INSTRUCTION_KEY])), np.asarray(a).reshape(-1), eos)
            for s, a in zip(samples, self._token_rows(raw, actions), strict=True)
        ]
        batch = pad_batch(seqs, self._pad_id, side="right")  # input_ids, attention_mask, labels [B,L]
        batch["images"] = self._pixels(samples, "collate")
        if actions is not None:
            batch["actions"] = actions
        batch["raw_actions"] = raw
        if self.cfg.use_state:
            batch["state"] = self._state(samples, "collate")
        batch.update(self.points.batch(samples, "collate"))  # points / goal_points [B,N,C] when enabled
        if AUX_KEY in self.normalizer and all(AUX_KEY in s for s in samples):
            aux = torch.stack([torch.as_tensor(s[AUX_KEY])[-1] for s in samples]).to(torch.float32)  # [B,A]
            batch["aux"] = self.normalizer.normalize(AUX_KEY, aux)
        return batch

    @property
    def _pad_id(self) -> int:
        return int(self.text_tokenizer.pad_token_id or 0)

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


def _bin_values(tokenizer: Any) -> torch.Tensor | None:
    """Per-dimension bin values [K, D] float32 of a bin tokenizer (in its input space: normalised or raw),
    as its own `decode` gives them; None for tokenizers without per-dimension bins (FAST)."""
    if not isinstance(tokenizer, BinTokenizerBase):
        return None
    grid = np.repeat(np.arange(tokenizer.n_bins, dtype=np.int64)[:, None], tokenizer.action_dim, axis=1)
    return torch.from_numpy(tokenizer.decode_values(grid).astype(np.float32))  # [K,D]
