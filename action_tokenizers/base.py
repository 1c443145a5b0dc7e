"""The ActionTokenizer protocol, the tokenizer registry (a name -> "module:attr" table, imported on first
use), and the shared input checks and JSON I/O.

An action tokenizer turns a chunk of continuous actions `[..., T, D]` (T steps of D dims) into discrete
token ids and back. Every tokenizer registered here follows one contract (tested for all entries):

    tok = make_tokenizer("uniform", action_dim=7, chunk_len=10)
    tok.fit(actions)                   # actions [N, T, D] chunks or [N, D] rows
    ids = tok.encode(chunk)            # chunk [T, D] -> ids int64 [L]; [B, T, D] -> [B, L] (fixed L)
    out = tok.decode(ids)              # DecodeResult(actions [..., T, D] float32, valid bool [...])
    tok.save("action_tokenizer.json"); tok2 = load_tokenizer("action_tokenizer.json")

* Fixed-length tokenizers (`tokens_per_chunk` is an int, L = T * D) return an int64 ndarray `[..., L]`.
  Variable-length ones (FAST: `tokens_per_chunk is None`) return one int64 ndarray `[L_i]` per chunk,
  nested in lists that mirror the leading dims (`[B, T, D]` -> list of B arrays).
* `encode` is strict: wrong shape, NaN/inf or an unfitted tokenizer raise ValueError naming the
  expected shape. `decode` never raises on token content (a model may emit anything): unknown ids,
  wrong lengths or non-integers give the best valid chunk and `valid=False` for that chunk.
* `input_space` says where in the pipeline the tokenizer sits: "normalized" tokenizers (uniform, FAST)
  expect actions already mapped to [-1, 1] by the dataset's `vla.core.normalizer.Normalizer`;
  "raw" tokenizers (quantile/openvla) embed their own q01/q99 normaliser and take raw actions, so the
  processor must not normalise actions a second time for them.
* Persistence is JSON only; the `type` field names the registry entry, so `load_tokenizer` needs no
  other information.

The implementations (uniform.py, quantile.py, fast.py) import this module; `TOKENIZERS` names them as
strings, so this module imports none of them and `make_tokenizer("fast")` imports fast.py (and its
`tokenizers`/scipy dependencies) only when asked. A plugin adds itself with
`TOKENIZERS.register("mine", "my_pkg.tok:MyTokenizer")`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from vla.core.io import atomic_write_json, read_json
from vla.core.registry import Registry

FORMAT = "vla.action_tokenizer"
FORMAT_VERSION = 1


class DecodeResult(NamedTuple):
    """What `decode` returns: actions [..., T, D] float32 and valid bool [...] (one flag per chunk)."""

    actions: np.ndarray
    valid: np.ndarray


@runtime_checkable
class ActionTokenizer(Protocol):
    """Continuous action chunks <-> discrete token ids. See the module docstring for the contract."""

    name: str  # registry name, written to JSON as `type`
    action_dim: int  # D
    chunk_len: int  # T
    input_space: str  # "normalized" or "raw"

    @property
    def vocab_size(self) -> int:
        """Number of distinct token ids; every id lies in [0, vocab_size)."""

    @property
    def tokens_per_chunk(self) -> int | None:
        """Tokens for one [T, D] chunk, or None when the length varies (then see `max_tokens`)."""

    @property
    def max_tokens(self) -> int:
        """Upper bound on the tokens of one chunk (a decoding budget for the language model)."""

    @property
    def is_fitted(self) -> bool: ...

    def fit(self, actions: Any) -> ActionTokenizer:
        """Fit on actions [N, T, D] or [N, D]; returns self."""

    def encode(self, actions: Any) -> Any:
        """[..., T, D] -> ids (see module docstring for the output form)."""

    def decode(self, ids: Any) -> DecodeResult:
        """ids -> DecodeResult(actions [..., T, D], valid [...]); never raises on token content."""

    def to_dict(self) -> dict[str, Any]: ...

    def save(self, path: str | os.PathLike) -> Path: ...


# name -> tokenizer class; each class's `name` equals its key and its `from_dict` loads its saved JSON.
TOKENIZERS: Registry[Callable[..., ActionTokenizer]] = Registry(
    "action tokenizer",
    {
        "uniform": "action_tokenizers.uniform:UniformBinTokenizer",
        "quantile": "action_tokenizers.quantile:QuantileBinTokenizer",
        "openvla": "action_tokenizers.quantile:OpenVLATokenizer",
        "fast": "action_tokenizers.fast:FASTTokenizer",
    },
)


def list_tokenizers() -> list[str]:
    return TOKENIZERS.names()


def get_tokenizer_class(name: str) -> Any:
    return TOKENIZERS.get(name)


def make_tokenizer(name: str, **cfg: Any) -> ActionTokenizer:
    """Instantiate the registered tokenizer `name` with keyword config (unfitted)."""
    return get_tokenizer_class(name)(**cfg)


def tokenizer_from_dict(d: Any, where: str = "tokenizer dict") -> ActionTokenizer:
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"{where}: expected a JSON object with a 'type' field naming the tokenizer")
    if d.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{where}: format {d.get('format')!r} is not {FORMAT!r}")
    cls = get_tokenizer_class(str(d["type"]))
    try:
        return cls.from_dict(d)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: malformed {d['type']!r} tokenizer: {e!r}") from e


def load_tokenizer(path: str | os.PathLike) -> ActionTokenizer:
    """Load any saved tokenizer; the JSON's `type` field picks the class."""
    return tokenizer_from_dict(read_json(path, "action tokenizer file"), where=f"action tokenizer {path}")


def save_dict(path: str | os.PathLike, d: dict[str, Any]) -> Path:
    return atomic_write_json(path, d)


def header(name: str, action_dim: int, chunk_len: int) -> dict[str, Any]:
    """Fields every saved tokenizer starts with."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "type": name,
        "action_dim": int(action_dim),
        "chunk_len": int(chunk_len),
    }


# --- constructor arguments ----------------------------------------------------------------------------

MAX_ACTION_DIM = 1024  # bounds of the shared constructor arguments (a chunk [T, D] must fit in memory)
MAX_CHUNK_LEN = 1024


class TokenizerArgumentError(ValueError):
    """A constructor argument out of its range: `param` names it, `rule` says the range
    ("must be an integer in [1, 1024]"), `value` is what was given."""

    def __init__(self, who: str, param: str, rule: str, value: Any) -> None:
        super().__init__(f"{who}: {param} {rule}, got {value!r}")
        self.param, self.rule, self.value = param, rule, value


def int_argument(value: Any, who: str, param: str, low: int, high: int) -> int:
    """An integer constructor argument in [low, high] (an integral float such as 7.0 is taken; NaN, a
    fraction, a bool or a string is not) -> int; else TokenizerArgumentError."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if number and np.isfinite(value) and float(value).is_integer() and low <= value <= high:
        return int(value)
    raise TokenizerArgumentError(who, param, f"must be an integer in [{low}, {high}]", value)


def float_argument(
    value: Any, who: str, param: str, low: float, high: float, low_open: bool = False, rule: str = "a number"
) -> float:
    """A finite number in [low, high] (or (low, high] with low_open) -> float; else TokenizerArgumentError
    ("must be {rule} in (low, high]")."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if number and np.isfinite(value) and (low < value if low_open else low <= value) and value <= high:
        return float(value)
    bracket = "(" if low_open else "["
    raise TokenizerArgumentError(who, param, f"must be {rule} in {bracket}{low:g}, {high:g}]", value)


def shape_arguments(action_dim: Any, chunk_len: Any, who: str) -> tuple[int, int]:
    """The (action_dim, chunk_len) every tokenizer takes, checked."""
    return (
        int_argument(action_dim, who, "action_dim", 1, MAX_ACTION_DIM),
        int_argument(chunk_len, who, "chunk_len", 1, MAX_CHUNK_LEN),
    )


# --- shared input checks ------------------------------------------------------------------------------


def check_chunks(actions: Any, chunk_len: int, action_dim: int, who: str) -> np.ndarray:
    """Validate encoder input [..., T, D]; return float64 copy. Raises ValueError with the shape."""
    try:
        arr = np.array(actions, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}.encode: actions must be numeric [..., {chunk_len}, {action_dim}]") from e
    if arr.ndim < 2 or arr.shape[-2:] != (chunk_len, action_dim):
        raise ValueError(
            f"{who}.encode: expected actions of shape [..., T={chunk_len}, D={action_dim}], "
            f"got {tuple(arr.shape)}"
        )
    check_finite(arr, who + ".encode")
    return arr


def check_finite(arr: np.ndarray, who: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{who}: actions must be finite; got {arr[bad]} at index {bad}")


def fit_rows(actions: Any, action_dim: int, who: str) -> np.ndarray:
    """Fit input [N, T, D] or [N, D] (any leading dims) -> float64 rows [M, D]."""
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != action_dim:
        raise ValueError(
            f"{who}.fit: expected actions of shape [N, T, {action_dim}] or [N, {action_dim}], "
            f"got {tuple(arr.shape)}"
        )
    rows = arr.reshape(-1, action_dim)
    if rows.shape[0] == 0:
        raise ValueError(f"{who}.fit: no actions to fit on (shape {tuple(arr.shape)})")
    check_finite(rows, who + ".fit")
    return rows


def fit_chunks(actions: Any, chunk_len: int, action_dim: int, who: str) -> np.ndarray:
    """Fit input [N, T, D] chunks, or [N, D] one trajectory cut into non-overlapping chunks -> [M, T, D]."""
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[-1] == action_dim:
        n = arr.shape[0] // chunk_len
        if n == 0:
            raise ValueError(f"{who}.fit: {arr.shape[0]} rows are fewer than one chunk of {chunk_len}")
        arr = arr[: n * chunk_len].reshape(n, chunk_len, action_dim)
    if arr.ndim < 3 or arr.shape[-2:] != (chunk_len, action_dim):
        raise ValueError(
            f"{who}.fit: expected chunks [N, T={chunk_len}, D={action_dim}] or rows [N, {action_dim}], "
            f"got {tuple(arr.shape)}"
        )
    chunks = arr.reshape(-1, chunk_len, action_dim)
    if chunks.shape[0] == 0:
        raise ValueError(f"{who}.fit: no chunks to fit on (shape {tuple(arr.shape)})")
    check_finite(chunks, who + ".fit")
    return chunks


def per_dim(value: Any, action_dim: int, who: str, param: str) -> np.ndarray:
    """A scalar or a length-D list of finite numbers -> float64 [D]; else TokenizerArgumentError."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.full(0, np.nan)
    if arr.shape[0] == 1:
        arr = np.repeat(arr, action_dim)
    if arr.shape[0] != action_dim or not np.all(np.isfinite(arr)):
        raise TokenizerArgumentError(who, param, f"must be a finite number or {action_dim} of them", value)
    return arr


# --- tolerant decoder input ---------------------------------------------------------------------------


def to_numpy_ids(ids: Any) -> Any:
    """A torch tensor (any device) becomes a numpy array; anything else is returned as is."""
    if type(ids).__module__.startswith("torch") and hasattr(ids, "detach"):
        return ids.detach().cpu().numpy()
    return ids


def as_id_rows(ids: Any) -> tuple[list[np.ndarray | None], tuple[int, ...]]:
    """Decoder input -> (flat list of 1-D int64 rows, batch shape). Never raises.

    Accepted: one sequence [L] (batch shape ()), an array [..., L], or nested lists of sequences (ragged
    rows allowed), numpy or torch. A row that is not a sequence of integers becomes None (invalid).
    """
    ids = to_numpy_ids(ids)
    if isinstance(ids, np.ndarray) and ids.dtype != object:
        if ids.ndim == 0:
            return [_int_row(ids.reshape(1))], ()
        batch = tuple(ids.shape[:-1])
        n = int(np.prod(batch))
        flat = ids.reshape(n, ids.shape[-1])  # [B, L]
        return [_int_row(r) for r in flat], batch
    if _is_scalar_seq(ids):
        return [_int_row(ids)], ()
    if isinstance(ids, (list, tuple, np.ndarray)):
        rows: list[np.ndarray | None] = []
        shapes = []
        for item in ids:
            sub, shape = as_id_rows(item)
            rows += sub
            shapes.append(shape)
        inner = shapes[0] if shapes and all(s == shapes[0] for s in shapes) else None
        if inner is None:
            return rows, (len(rows),)
        return rows, (len(ids),) + inner
    return [None], ()


def _is_scalar_seq(x: Any) -> bool:
    if isinstance(x, (str, bytes)):
        return False
    if hasattr(x, "tolist") and not isinstance(x, (list, tuple)):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return all(np.isscalar(v) or isinstance(v, (int, float, np.generic)) for v in x)
    return False


def _int_row(row: Any) -> np.ndarray | None:
    try:
        arr = np.asarray(row)
        if arr.ndim != 1:
            return None
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype.kind in "iub":
            return arr.astype(np.int64)
        f = arr.astype(np.float64)
        if not np.all(np.isfinite(f)) or not np.all(f == np.round(f)) or np.any(np.abs(f) > 2**62):
            return None
        return f.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        return None


def nest(items: Sequence[Any], batch: tuple[int, ...]) -> Any:
    """Flat list -> nested lists mirroring `batch` (one item when batch is ())."""
    if not batch:
        return items[0]
    if len(batch) == 1:
        return list(items)
    step = int(np.prod(batch[1:]))
    return [nest(items[i * step : (i + 1) * step], batch[1:]) for i in range(batch[0])]
