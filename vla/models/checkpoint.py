"""The project's one checkpoint format: its file names, its one writer, its one reader, and training runs.

Every model of the stack (VLM, VLA, goal diffusion) and the trainer's resume state use one directory:

    <dir>/config.json            {"format": "vla-checkpoint", "format_version": 1, "model_type": "vla",
                                  "model": <resolved model config>, <sections: "vla", "train", "goals">}
    <dir>/model.safetensors      every parameter (tied weights cloned; files without the tied copies,
                                  as `safetensors.torch.save_model` wrote them, load too); its header
                                  metadata records the crc32 of its tensor data ("data_crc32")
    <dir>/tokenizer/             the text tokenizer (HF files, including added tokens)
    <dir>/sentence_tokenizer/    where the model has a pretrained text encoder: its tokenizer
    <dir>/processor.json         VLA only: VLAProcessor.to_dict()
    <dir>/normalizer.json        VLA only: the Normalizer
    <dir>/action_tokenizer.json  VLA only: the action tokenizer
    <dir>/train_state.pt         written by the trainer: optimiser, scheduler, step, RNG, EMA (resume only)

A training run holds its checkpoints as `<run>/checkpoints/step_00000500/` plus `<run>/checkpoints/latest`
(a text file naming the newest complete one); `CheckpointManager` writes them (keep-last-k) and
`resolve_checkpoint` turns a run directory into its latest checkpoint. The latest one is checked before
it is used (`checkpoint_problem`: config.json parses, model.safetensors has a whole header and every byte
it declares and its tensor data matches the crc32 in its header, train_state.pt is a whole zip archive
whose members match their zip CRCs): a truncated or corrupt one, a single flipped bit included, is skipped
with a one-line warning on stderr and the newest intact one is used instead. `Checkpoint.open`,
`read_weights` and `read_train_state` make the same checks (one error line naming the file). Weights
written before the checksum (no "data_crc32" in their header) load as before, unverified. A checksum
costs one read of the file (about 1 GB/s), once per process for an unchanged file. A `latest` pointer
must name a step directory of its own run: one that resolves anywhere else is refused. A model without a
config (the trainer's default for a plain nn.Module) writes model.safetensors + train_state.pt only:
resumable, not loadable by `Checkpoint.open`. The file names exist only here, as constants.

Writing: the model gives its `CheckpointContents` (in memory) and `write_checkpoint` puts them on disk
atomically (vla.core.io.atomic_directory), config.json last. Reading: `Checkpoint.open(path)` checks the
directory once (config.json's format, version and model_type, and every file that model type needs) and
raises one error naming the missing or bad file; its methods then read the pieces.

    write_checkpoint("outputs/ckpt", model.checkpoint_contents())      # what save_pretrained does
    ck = Checkpoint.open("outputs/train/pick", model_type=VLA_TYPE)   # a run dir resolves to its latest
    ck.section("vla")["action_dim"]; ck.text_tokenizer(); ck.load_weights(model)
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from action_tokenizers.base import ActionTokenizer, load_tokenizer
from vla.backbones.language import load_text_tokenizer
from vla.core.io import atomic_directory, atomic_write_json, atomic_write_text, read_json
from vla.core.normalizer import Normalizer

FORMAT = "vla-checkpoint"
FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
SENTENCE_TOKENIZER_DIR = "sentence_tokenizer"
PROCESSOR_FILE = "processor.json"
NORMALIZER_FILE = "normalizer.json"
ACTION_TOKENIZER_FILE = "action_tokenizer.json"
TRAIN_STATE_FILE = "train_state.pt"
CHECKPOINTS_DIR = "checkpoints"  # of a training run
LATEST_FILE = "latest"  # in CHECKPOINTS_DIR: the name of the newest complete step directory
STEP_DIR = "step_{:08d}"
DATA_CRC_KEY = "data_crc32"  # model.safetensors header metadata: crc32 of the tensor data, 8 hex digits
_STEP_DIR_RE = re.compile(r"^step_(\d{8})$")

VLM_TYPE = "vlm"
VLA_TYPE = "vla"
GOAL_DIFFUSION_TYPE = "goal_diffusion"
# model_type -> the files besides config.json that its checkpoint must hold
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    VLM_TYPE: (WEIGHTS_FILE, TOKENIZER_DIR),
    VLA_TYPE: (WEIGHTS_FILE, TOKENIZER_DIR, PROCESSOR_FILE, NORMALIZER_FILE, ACTION_TOKENIZER_FILE),
    GOAL_DIFFUSION_TYPE: (WEIGHTS_FILE, TOKENIZER_DIR),
}
_DIRECTORIES = (TOKENIZER_DIR,)
RESERVED_KEYS = ("format", "format_version", "model_type", "model")


# ------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class CheckpointContents:
    """Everything one checkpoint directory holds, in memory. `model_type` None: weights only (no
    config.json), what the trainer writes for a plain nn.Module."""

    state_dict: Mapping[str, torch.Tensor]
    model_type: str | None = None
    model_config: Mapping[str, Any] | None = None  # config.json "model": the resolved architecture
    sections: Mapping[str, Any] = field(default_factory=dict)  # further config.json keys: "vla", "train"
    text_tokenizer: Any = None  # a Hugging Face tokenizer (save_pretrained)
    sentence_tokenizer: Any = None  # a pretrained text encoder's tokenizer (VLMConfig.text_encoder)
    processor: Mapping[str, Any] | None = None  # VLAProcessor.to_dict()
    normalizer: Normalizer | None = None
    action_tokenizer: ActionTokenizer | None = None

    def check(self) -> None:
        """ValueError naming what is missing or not allowed for this model type."""
        if self.model_type is None:
            parts = ("model_config", "text_tokenizer", "sentence_tokenizer", "processor", "normalizer",
                     "action_tokenizer")  # fmt: skip
            extra = [n for n in parts if getattr(self, n) is not None]
            if extra or self.sections:
                raise ValueError(f"checkpoint contents without a model_type hold weights only, got {extra}")
            return
        if self.model_type not in REQUIRED_FILES:
            raise ValueError(
                f"checkpoint contents: unknown model_type {self.model_type!r}; "
                f"expected one of {sorted(REQUIRED_FILES)}"
            )
        clash = sorted(set(self.sections) & set(RESERVED_KEYS))
        if clash:
            raise ValueError(f"checkpoint contents: sections may not override the config.json keys {clash}")
        needs = {
            "model_config": True,
            "text_tokenizer": TOKENIZER_DIR in REQUIRED_FILES[self.model_type],
            "processor": PROCESSOR_FILE in REQUIRED_FILES[self.model_type],
            "normalizer": NORMALIZER_FILE in REQUIRED_FILES[self.model_type],
            "action_tokenizer": ACTION_TOKENIZER_FILE in REQUIRED_FILES[self.model_type],
        }
        missing = [n for n, need in needs.items() if need and getattr(self, n) is None]
        if missing:
            raise ValueError(f"checkpoint contents of a {self.model_type!r} model lack {missing}")

    def config(self) -> dict[str, Any]:
        """The config.json dict (format keys first, then the model, then the sections in order)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "model": dict(self.model_config or {}),
            **dict(self.sections),
        }


def write_checkpoint(
    path: str | Path, contents: CheckpointContents, train_state: Mapping[str, Any] | None = None
) -> Path:
    """Write one checkpoint directory atomically (an existing one is replaced in one rename; a failure
    leaves it untouched). `train_state` (tensors, numbers, strings) goes to train_state.pt."""
    from safetensors.torch import save_file

    contents.check()
    path = Path(path)
    with atomic_directory(path) as tmp:
        # clone: tied weights share storage, which safetensors refuses
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in contents.state_dict.items()}
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, DATA_CRC_KEY: _PLACEHOLDER})
        seal_weights(tmp / WEIGHTS_FILE)
        if contents.text_tokenizer is not None:
            contents.text_tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        if contents.sentence_tokenizer is not None:
            contents.sentence_tokenizer.save_pretrained(str(tmp / SENTENCE_TOKENIZER_DIR))
        if contents.processor is not None:
            atomic_write_json(tmp / PROCESSOR_FILE, dict(contents.processor))
        if contents.normalizer is not None:
            contents.normalizer.save(tmp / NORMALIZER_FILE)
        if contents.action_tokenizer is not None:
            contents.action_tokenizer.save(tmp / ACTION_TOKENIZER_FILE)
        if train_state is not None:
            torch.save(dict(train_state), tmp / TRAIN_STATE_FILE)
        if contents.model_type is not None:
            atomic_write_json(tmp / CONFIG_FILE, contents.config())
    return path


# ------------------------------------------------------------------------------------------ checksums
_PLACEHOLDER = "0" * 8
_CRC_CACHE: dict[tuple[str, int, int, int], int] = {}  # (path, size, mtime_ns, start) -> crc32


def file_crc32(file: str | Path, start: int = 0, block: int = 1 << 24) -> int:
    """crc32 of a file from byte `start` to its end (cached per path, size and modification time, so an
    unchanged file is read once per process)."""
    file = Path(file)
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns, int(start))
    if key not in _CRC_CACHE:
        crc = 0
        with open(file, "rb") as f:
            f.seek(start)
            while data := f.read(block):
                crc = zlib.crc32(data, crc)
        _CRC_CACHE[key] = crc
    return _CRC_CACHE[key]


def _header(file: Path) -> tuple[int, dict[str, Any]]:
    """(length of the JSON header, the header) of a safetensors file."""
    with open(file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return n, json.loads(f.read(n))


def seal_weights(file: str | Path) -> None:
    """Write the crc32 of a freshly saved safetensors file's tensor data into its header metadata, in
    place of the placeholder it was saved with (same length: nothing moves)."""
    file = Path(file)
    n, _ = _header(file)
    field = f'"{DATA_CRC_KEY}":"{_PLACEHOLDER}"'.encode()
    with open(file, "r+b") as f:
        head = f.read(8 + n)
        at = head.find(field)
        if at < 0 or head.find(field, at + 1) >= 0:
            raise ValueError(f"{file}: no unique {DATA_CRC_KEY} placeholder in the header")
        crc = file_crc32(file, 8 + n)
        f.seek(at + len(field) - 9)
        f.write(f"{crc:08x}".encode())
        f.flush()
        os.fsync(f.fileno())


def weights_checksum_problem(file: str | Path) -> str | None:
    """Why a safetensors file's tensor data does not match the crc32 in its header (None when it does,
    or when the header records none: weights written before checksums)."""
    file = Path(file)
    try:
        n, header = _header(file)
        meta = header.get("__metadata__") if isinstance(header, dict) else None
        want = meta.get(DATA_CRC_KEY) if isinstance(meta, dict) else None
        if want is None:
            return None
        got = f"{file_crc32(file, 8 + n):08x}"
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"unreadable or corrupt ({type(e).__name__}: {e})"
    if got != want:
        return f"its tensor data does not match the crc32 in its header (recorded {want}, read {got})"
    return None


def train_state_problem(file: str | Path) -> str | None:
    """Why train_state.pt is not whole (None when it is): a zip archive whose members all match their
    CRCs (torch.load does not check them: a flipped bit would load as a wrong value)."""
    try:
        with zipfile.ZipFile(file) as z:
            if not z.namelist():
                return "empty"
            bad = z.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        return f"truncated or corrupt ({e})"
    if bad is not None:
        return f"corrupt (its member {bad} does not match its CRC)"
    return None


# ------------------------------------------------------------------------------------------ reading
def weights_problem(file: str | Path) -> str | None:
    """Why a safetensors file is not whole (None when it is; else e.g. "truncated (...)"): its 8-byte header
    length, a JSON header, and a file exactly as long as the header and the tensor data it declares. Reads
    the header only."""
    file = Path(file)
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"truncated ({size} bytes, no header)"
            n = int.from_bytes(head, "little")
            if n > size - 8 or n > 100_000_000:
                return f"truncated or corrupt (a {n}-byte header in a {size}-byte file)"
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"unreadable or corrupt ({type(e).__name__}: {e})"
    if not isinstance(header, dict):
        return "corrupt header"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        return "corrupt header"
    if size != 8 + n + end:
        return f"truncated or corrupt ({size} bytes, its header declares {8 + n + end})"
    return None


def checkpoint_problem(directory: str | Path) -> str | None:
    """Why a checkpoint directory is not intact (None when it is): config.json (when present) parses,
    model.safetensors is whole (`weights_problem`) and matches its checksum (`weights_checksum_problem`),
    train_state.pt (when present) is a whole zip archive (`train_state_problem`). Reads every file once."""
    d = Path(directory)
    if (d / CONFIG_FILE).exists():
        try:
            json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return f"{CONFIG_FILE} is unreadable ({type(e).__name__})"
    if not (d / WEIGHTS_FILE).is_file():
        return f"{WEIGHTS_FILE} is missing"
    problem = weights_problem(d / WEIGHTS_FILE) or weights_checksum_problem(d / WEIGHTS_FILE)
    if problem is not None:
        return f"{WEIGHTS_FILE}: {problem}"
    state = d / TRAIN_STATE_FILE
    if state.exists():
        problem = train_state_problem(state)
        if problem is not None:
            return f"{TRAIN_STATE_FILE} is {problem}"
    return None


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    """One line on stderr, once per process, from rank 0 only (every rank resolves the same run)."""
    if message in _WARNED or os.environ.get("RANK", "0") != "0":
        return
    _WARNED.add(message)
    print(f"warning: {message}", file=sys.stderr, flush=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory itself, or a training run directory's latest complete checkpoint."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint directory not found: {p}")
    if (p / CONFIG_FILE).is_file() or not (p / CHECKPOINTS_DIR).is_dir():
        return p
    latest = CheckpointManager(p / CHECKPOINTS_DIR).latest()
    if latest is None:
        raise FileNotFoundError(
            f"training run {p}: no complete checkpoint in {CHECKPOINTS_DIR}/ (none has {TRAIN_STATE_FILE})"
        )
    return latest


def _missing(path: Path, names: tuple[str, ...]) -> list[str]:
    out = []
    for n in names:
        if n in _DIRECTORIES:
            if not (path / n).is_dir():
                out.append(n + "/")
        elif not (path / n).is_file():
            out.append(n)
    return out


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint directory: `path`, its config.json dict, and readers for the other files."""

    path: Path
    config: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path, model_type: str | None = None) -> Checkpoint:
        """Resolve `path` (a checkpoint or a training run) and check it once: config.json present and of
        this format, version and (if given) model_type, and every file its model type needs present."""
        p = resolve_checkpoint(path)
        if not (p / CONFIG_FILE).is_file():
            files = _missing(p, (WEIGHTS_FILE, TOKENIZER_DIR))
            if len(files) == 2:  # nothing of a checkpoint here
                raise FileNotFoundError(
                    f"{p} is neither a checkpoint directory ({CONFIG_FILE}) nor a training run "
                    f"({CHECKPOINTS_DIR}/{LATEST_FILE})"
                )
            raise FileNotFoundError(f"checkpoint {p} is missing {CONFIG_FILE}")
        where = p / CONFIG_FILE
        config = read_json(where, "checkpoint config")
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"{where}: not a {FORMAT} config (key 'format' must be {FORMAT!r})")
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{where}: format_version {config.get('format_version')!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        found = config.get("model_type")
        if found not in REQUIRED_FILES:
            known = sorted(REQUIRED_FILES)
            raise ValueError(f"{where}: unknown model_type {found!r}; expected one of {known}")
        if model_type is not None and found != model_type:
            raise ValueError(f"{where}: model_type is {found!r}, expected {model_type!r}")
        if not isinstance(config.get("model"), dict):
            raise ValueError(f"{where}: key 'model' must be a dict (the resolved model config)")
        missing = _missing(p, REQUIRED_FILES[found])
        if missing:
            raise FileNotFoundError(f"checkpoint {p} ({found}) is missing {', '.join(missing)}")
        problem = weights_problem(p / WEIGHTS_FILE)
        if problem is not None:
            raise ValueError(f"{p / WEIGHTS_FILE}: not a readable safetensors file: {problem}")
        problem = weights_checksum_problem(p / WEIGHTS_FILE)
        if problem is not None:
            raise ValueError(f"{p / WEIGHTS_FILE} is corrupt: {problem}")
        return cls(p, config)

    @property
    def model_type(self) -> str:
        return str(self.config["model_type"])

    @property
    def model_config(self) -> dict[str, Any]:
        """config.json's "model" section (the resolved architecture)."""
        return self.config["model"]

    def file(self, name: str) -> Path:
        return self.path / name

    def section(self, name: str) -> dict[str, Any]:
        """A further config.json section ("vla", "train", "goals"); {} when absent."""
        value = self.config.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise ValueError(f"{self.path / CONFIG_FILE}: key {name!r} must be a dict, got {kind}")
        return value

    def text_tokenizer(self) -> Any:
        return load_text_tokenizer(str(self.path / TOKENIZER_DIR))

    def sentence_tokenizer(self) -> Any:
        """The pretrained text encoder's tokenizer, or None where the checkpoint has none."""
        path = self.path / SENTENCE_TOKENIZER_DIR
        return load_text_tokenizer(str(path)) if path.is_dir() else None

    def processor_config(self) -> dict[str, Any]:
        """processor.json as a dict (VLAProcessor.from_dict checks its contents)."""
        data = read_json(self.path / PROCESSOR_FILE, "processor config")
        if not isinstance(data, dict):
            raise ValueError(f"{self.path / PROCESSOR_FILE}: expected a JSON object")
        return data

    def normalizer(self) -> Normalizer:
        return Normalizer.load(self.path / NORMALIZER_FILE)

    def action_tokenizer(self) -> ActionTokenizer:
        return load_tokenizer(self.path / ACTION_TOKENIZER_FILE)

    def load_weights(self, model: nn.Module, rename: Callable[[str], str] | None = None) -> None:
        load_weights(model, self.path, rename)


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """model.safetensors of a checkpoint directory (CPU tensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(directory) / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {directory} is missing {WEIGHTS_FILE}")
    problem = weights_checksum_problem(file)
    if problem is not None:
        raise ValueError(f"{file} is corrupt: {problem}")
    try:
        return load_file(str(file))
    except SafetensorError as e:
        raise ValueError(f"{file}: not a readable safetensors file: {e}") from None


def _tied_groups(model: nn.Module) -> dict[str, set[str]]:
    """State-dict name -> all names sharing its storage (tied weights), for names with aliases."""
    by_storage: dict[tuple[int, torch.dtype, tuple[int, ...]], set[str]] = {}
    for name, t in model.state_dict().items():
        if t.numel() > 0:
            by_storage.setdefault((t.data_ptr(), t.dtype, tuple(t.shape)), set()).add(name)
    return {n: names for names in by_storage.values() if len(names) > 1 for n in names}


def load_weights(model: nn.Module, directory: str | Path, rename: Callable[[str], str] | None = None) -> None:
    """Load model.safetensors into `model` strictly (file keys mapped through `rename`); a tied weight
    stored under one of its names only counts as loaded. A mismatch names the file and the keys."""
    file = Path(directory) / WEIGHTS_FILE
    sd = read_weights(directory)
    if rename is not None:
        sd = {rename(k): v for k, v in sd.items()}
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ValueError(f"{file}: weights do not fit the model built from {CONFIG_FILE}: {e}") from None
    tied = _tied_groups(model)
    missing = [k for k in missing if not (tied.get(k, set()) & sd.keys())]
    if missing or unexpected:
        raise ValueError(
            f"{file}: weights do not fit the model built from {CONFIG_FILE}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


def read_train_state(directory: str | Path) -> dict[str, Any]:
    """train_state.pt of a checkpoint (tensors, numbers and strings only: torch.load weights_only)."""
    path = Path(directory) / TRAIN_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {directory} is missing {TRAIN_STATE_FILE}: it cannot be resumed")
    problem = train_state_problem(path)
    if problem is not None:
        raise ValueError(f"{path} is {problem}: the checkpoint cannot be resumed")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # e.g. a crafted file whose pickle would run code: never unpickled
        raise ValueError(
            f"{path} holds objects other than tensors, numbers and strings: refused (it is loaded with "
            "torch.load(weights_only=True), which never runs code from a file)"
        ) from None


# ------------------------------------------------------------------------------------------ training runs
class CheckpointManager:
    """The checkpoints of one training run: `<root>/step_XXXXXXXX/` directories, `<root>/latest`.

    `save` writes a step directory atomically (write_checkpoint, train_state.pt included), then replaces
    the `latest` pointer atomically, then deletes complete checkpoints beyond `keep_last`. A run killed at
    any moment leaves the previous checkpoint intact and `latest` naming a complete directory."""

    def __init__(self, root: str | Path, keep_last: int = 2):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = int(keep_last)

    @classmethod
    def of_run(cls, run_dir: str | Path, keep_last: int = 2) -> CheckpointManager:
        """The manager of a training run directory (its checkpoints/ folder)."""
        return cls(Path(run_dir) / CHECKPOINTS_DIR, keep_last)

    def _inside(self, p: Path) -> bool:
        """Whether `p` resolves to a direct child of this run's checkpoints folder (no symlink out)."""
        return p.resolve().parent == self.root.resolve()

    def step_dirs(self) -> list[Path]:
        """Complete checkpoint directories (with train_state.pt) of this run, oldest first."""
        if not self.root.is_dir():
            return []
        dirs = [
            p for p in self.root.iterdir() if p.is_dir() and _STEP_DIR_RE.match(p.name) and self._inside(p)
        ]
        return sorted((p for p in dirs if (p / TRAIN_STATE_FILE).is_file()), key=lambda p: p.name)

    def _pointed(self) -> Path | None:
        """The step directory `latest` names (None without a pointer); ValueError when it names anything
        but a step directory of this run."""
        pointer = self.root / LATEST_FILE
        if not pointer.is_file():
            return None
        name = pointer.read_text(errors="replace").strip()
        cand = self.root / name
        if not _STEP_DIR_RE.match(name) or not self._inside(cand):
            raise ValueError(
                f"{pointer} names {name[:200]!r}, which is not a step directory of this run ({self.root}); "
                f"refusing to follow it (remove the file to use the run's newest intact checkpoint)"
            )
        return cand

    def latest(self) -> Path | None:
        """The directory `latest` names if complete and intact, else the newest intact complete one (with
        a one-line warning naming the damaged one); None if none."""
        named = self._pointed()
        damaged: list[str] = []
        if named is not None and (named / TRAIN_STATE_FILE).is_file():
            problem = checkpoint_problem(named)
            if problem is None:
                return named
            damaged.append(f"{named.name} ({problem})")
        for cand in reversed(self.step_dirs()):
            if named is not None and cand.name == named.name:
                continue
            problem = checkpoint_problem(cand)
            if problem is None:
                if damaged:
                    _warn(f"checkpoint {', '.join(damaged)} in {self.root} is damaged; using {cand.name}")
                return cand
            damaged.append(f"{cand.name} ({problem})")
        if damaged:
            _warn(f"no intact checkpoint in {self.root}: {', '.join(damaged)}")
        return None

    def save(self, step: int, contents: CheckpointContents, train_state: Mapping[str, Any]) -> Path:
        """Write the checkpoint of optimiser step `step`; returns its directory."""
        target = write_checkpoint(self.root / STEP_DIR.format(step), contents, train_state)
        atomic_write_text(self.root / LATEST_FILE, target.name + "\n")
        for old in self.step_dirs()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return target
