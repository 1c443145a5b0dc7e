"""The one sample type every VQA reader yields, plus the error policy readers share.

A `VQASample` is a conversation about zero or more images: ordered `turns` of (prompt, answer), the
reference `answers` used for scoring the *last* turn (VQAv2 keeps ten human answers; LLaVA and JSONL keep
one or a few), a question type for per-type metrics, the source format and an id that names the sample in
errors. Images are file paths, loaded lazily (`load_images`) as uint8 [H,W,3] RGB arrays (the
`images/<camera>` layout of vla.core.types), so reading a large annotation file costs no image decoding.

Readers call `ErrorPolicy.handle(message)` on bad input: with `on_error="raise"` it raises a ValueError
naming the file and sample; with `"skip"` it counts the sample (by reason) and the reader moves on.

    s = VQASample(id="q1", images=("img/1.png",), turns=(Turn("What colour is it?", "red"),),
                  answers=("red",), question_type="what color", source="jsonl")
    pixels = s.load_images()        # [np.uint8 [H,W,3]]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_TOKEN = "<image>"
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's prompt and the assistant's answer (the only tokens that carry loss)."""

    prompt: str
    answer: str


@dataclass(frozen=True)
class VQASample:
    """A conversation about `images`; `answers` are the references for the last turn's answer."""

    id: str
    images: tuple[str, ...]
    turns: tuple[Turn, ...]
    answers: tuple[str, ...]
    question_type: str = ""
    answer_type: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f"VQA sample {self.id!r}: no turns")
        if not self.answers:
            raise ValueError(f"VQA sample {self.id!r}: no reference answers")

    @property
    def question(self) -> str:
        """The prompt of the last turn (the one `answers` score)."""
        return self.turns[-1].prompt

    def load_images(self) -> list[np.ndarray]:
        """Every image as uint8 [H,W,3] RGB (grey and RGBA are converted)."""
        return [load_rgb(p, where=f"sample {self.id!r}") for p in self.images]


def load_rgb(path: str | Path, where: str = "") -> np.ndarray:
    """Read an image file as uint8 [H,W,3] RGB; a missing or unreadable file raises naming it."""
    from PIL import Image, UnidentifiedImageError

    loc = f" ({where})" if where else ""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}{loc}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()  # [H,W,3]
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}{loc}: {e}") from e


class ErrorPolicy:
    """Raise on bad input, or skip it and count why (one counter per reader run)."""

    def __init__(self, on_error: str = "raise"):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}")
        self.on_error = on_error
        self.skipped: Counter[str] = Counter()

    def handle(self, file: str | Path, sample: str, reason: str, detail: str = "") -> None:
        """Report bad sample `sample` of `file`: raise ValueError, or count it under `reason`."""
        if self.on_error == "raise":
            extra = f": {detail}" if detail else ""
            raise ValueError(f"{file}: sample {sample}: {reason}{extra}")
        self.skipped[reason] += 1

    @property
    def total_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def summary(self) -> str:
        if not self.skipped:
            return "no samples skipped"
        parts = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
        return f"{self.total_skipped} samples skipped ({parts})"


def check_images_exist(paths: Sequence[str]) -> str | None:
    """The first path that is not a file, or None."""
    for p in paths:
        if not Path(p).is_file():
            return p
    return None
