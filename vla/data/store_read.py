"""The episode store's read side (vla.data.store): chunk presence on disk, the store's properties, frame and
metadata reads, selection, the data fingerprint, cached statistics, and whole-store verification.

`StoreReader` is a base of `vla.data.store.EpisodeStore` and reads the state that `EpisodeStore.__init__`
sets up and checks (attributes, features, episode ends, the zarr arrays). Reads never return zeros for a
chunk missing on disk: they raise a ValueError naming the array and chunk. Statistics are cached in the
root attributes with a fingerprint of the data they summarise and a checksum of their values, and are
recomputed when either does not match. `StoreCheck` and `verify_open_store` are what
`vla.data.store.verify_store` reports: every chunk present, every episode's frames against the checksums
recorded at append, and the cached statistics.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from vla.core.normalizer import Normalizer, StatsAccumulator
from vla.core.types import STATE_KEY
from vla.data.chunks import FrameReader
from vla.data.store_format import CHECKSUM, checksum


class StoreReader:
    """The read methods of `vla.data.store.EpisodeStore` (see the module docstring)."""

    # --- chunks on disk ------------------------------------------------------------------------------
    @property
    def integrity(self) -> dict[str, Any]:
        """{"checksum": "crc32", "all_chunks": True} for stores that write every chunk; {} for older ones."""
        value = self._attrs.get("integrity")
        return dict(value) if isinstance(value, dict) else {}

    def _chunks_must_exist(self, key: str) -> bool:
        """Every chunk of `key` must be on disk: always in stores that write all chunks; in older ones (zarr
        skipped all-zero chunks, so an absent one may be legitimate) for the robot state only, which holds
        a unit quaternion and is never all zero."""
        return bool(self.integrity.get("all_chunks")) or key == STATE_KEY

    def _missing_chunks(self, arr: zarr.Array, start: int, stop: int) -> list[tuple[str, int]]:
        """(chunk key, axis-0 chunk index) of the chunks of `arr` covering rows [start, stop) that are not
        on disk."""
        if stop <= start:
            return []
        chunks = arr.chunks
        base = self.path / arr.path
        rows = range(start // chunks[0], (stop - 1) // chunks[0] + 1)
        rest = [range(math.ceil(n / c)) for n, c in zip(arr.shape[1:], chunks[1:])]
        out = []
        for idx in itertools.product(rows, *rest):
            name = arr.metadata.encode_chunk_key(idx)
            if not (base / name).is_file():
                out.append((name, idx[0]))
        return out

    def _require_chunks(self, key: str, start: int, stop: int) -> None:
        """ValueError naming the array and chunk if any chunk holding frames [start, stop) is missing."""
        arr = self._arrays[key]
        c0 = arr.chunks[0]
        seen = self._present.setdefault(key, set())
        rows = [r for r in range(start // c0, (stop - 1) // c0 + 1) if r not in seen] if stop > start else []
        for r in rows:
            missing = self._missing_chunks(arr, r * c0, min((r + 1) * c0, arr.shape[0]))
            if missing:
                lo, hi = r * c0, min((r + 1) * c0, self.num_frames) - 1
                raise ValueError(
                    f"{self.path}: data/{key}: chunk {missing[0][0]} (frames {lo}-{hi}) is missing; "
                    f"the store is damaged (vla dataset verify {self.path})"
                )
            seen.add(r)

    # --- properties ----------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self._attrs["fps"])

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._attrs.get("meta", {})))

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """int64 [E] exclusive end frame of each episode (a copy)."""
        return self._ends.copy()

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self._ends[:-1]]).astype(np.int64)

    def episode_slice(self, i: int) -> slice:
        i = self._check_index(i)
        start = int(self._ends[i - 1]) if i > 0 else 0
        return slice(start, int(self._ends[i]))

    def _check_index(self, i: int) -> int:
        if not -self.num_episodes <= int(i) < self.num_episodes:
            raise IndexError(f"{self.path}: episode {i} out of range (store has {self.num_episodes})")
        return int(i) % self.num_episodes

    def episode_checksums(self, i: int) -> dict[str, int] | None:
        """{key: crc32} recorded when episode i was appended; None for episodes appended before checksums."""
        i = self._check_index(i)
        sums = self._attrs.get("checksums")
        entry = sums[i] if isinstance(sums, list) else None
        return {k: int(v) for k, v in entry.items()} if isinstance(entry, dict) else None

    def __len__(self) -> int:
        return self.num_episodes

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, episodes={self.num_episodes}, frames={self.num_frames})"

    # --- reading -------------------------------------------------------------------------------------
    def episode(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of episode i: {key: [T, ...]} (all features, or `keys`)."""
        sl = self.episode_slice(i)
        return {k: self.read(k, sl.start, sl.stop) for k in (keys if keys is not None else self.features)}

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of one key, shape [stop - start, ...]. A chunk missing on disk (which zarr
        would read as zeros) or one that does not decode is a ValueError naming the array and chunk."""
        if key not in self._arrays:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if not 0 <= start <= stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        if self._chunks_must_exist(key):
            self._require_chunks(key, start, stop)
        try:
            return np.asarray(self._arrays[key][start:stop])
        except Exception as e:  # a corrupt chunk: codec errors of assorted types
            raise ValueError(
                f"{self.path}: data/{key}: frames [{start}, {stop}) do not decode ({type(e).__name__}: {e}); "
                f"the store is damaged (vla dataset verify {self.path})"
            ) from e

    def episode_meta(self, i: int) -> dict[str, Any]:
        """Per-episode metadata (a copy): length, instruction, task, success, split, ... plus `index`."""
        i = self._check_index(i)
        return {**json.loads(json.dumps(self._episodes[i])), "index": i}

    def select(
        self, task: str | None = None, success: bool | None = None, split: str | None = None, **eq: Any
    ) -> list[int]:
        """Indices of episodes whose metadata match every given filter."""
        want = {
            k: v for k, v in {"task": task, "success": success, "split": split, **eq}.items() if v is not None
        }
        return [i for i, ep in enumerate(self._episodes) if all(ep.get(k) == v for k, v in want.items())]

    def frame_reader(self, key: str) -> FrameReader:
        """A picklable fast reader for random frames of one key (for DataLoader workers)."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        return FrameReader(self.path / "data" / key)

    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this store's data: episode and frame counts and a crc32 over every episode's
        metadata (length, seed, instruction, ...) and recorded checksums. A store re-collected or appended
        to at the same path gets another one; episodes appended before checksums count by their metadata."""
        sums = self._attrs.get("checksums")
        text = json.dumps(
            [self._episodes, sums if isinstance(sums, list) else None], sort_keys=True, default=str
        )
        crc = zlib.crc32(text.encode())
        return {"episodes": self.num_episodes, "frames": self.num_frames, "crc32": f"{crc:08x}"}

    # --- statistics ----------------------------------------------------------------------------------
    def _stats_fingerprint(self, key: str) -> str:
        """What cached statistics of `key` summarise: frame and episode counts and the recorded checksums
        of its episodes (counts only for episodes appended before checksums)."""
        sums = self._attrs.get("checksums")
        per_episode = [
            (e.get(key) if isinstance(e, dict) else None) for e in (sums if isinstance(sums, list) else [])
        ]
        text = json.dumps([self.num_frames, self.num_episodes, per_episode])
        return f"{CHECKSUM}:{zlib.crc32(text.encode()):08x}"

    @staticmethod
    def _stats_checksum(values: Mapping[str, Any], fingerprint: str) -> str:
        text = json.dumps({"values": values, "fingerprint": fingerprint}, sort_keys=True)
        return f"{CHECKSUM}:{zlib.crc32(text.encode()):08x}"

    def cached_stats_valid(self, key: str) -> bool | None:
        """True when the cached statistics of `key` match the data (fingerprint and checksum), False when
        they do not, None when none are cached."""
        cached = self._attrs.get("stats", {}).get(key) if isinstance(self._attrs.get("stats"), dict) else None
        if not cached:
            return None
        if not isinstance(cached, dict) or not isinstance(cached.get("values"), dict):
            return False
        fp = self._stats_fingerprint(key)
        return cached.get("fingerprint") == fp and cached.get("checksum") == self._stats_checksum(
            cached["values"], fp
        )

    def accumulate(self, key: str, block: int = 8192) -> StatsAccumulator:
        """A StatsAccumulator fed every frame of `key` in order (uncached; `stats` caches its result, and
        several stores' accumulators merge into the statistics of their union)."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if self.num_frames == 0:
            raise ValueError(f"{self.path}: no frames, cannot compute stats for {key!r}")
        spec = self.features[key]
        acc = StatsAccumulator(spec.shape[-1] if spec.shape else 1)
        for s in range(0, self.num_frames, block):
            chunk = self.read(key, s, min(s + block, self.num_frames))
            acc.update(
                chunk.reshape(*chunk.shape[:1], -1) if not spec.shape else chunk, where=f"{self.path} {key}"
            )
        return acc

    def stats(self, key: str, block: int = 8192) -> dict[str, np.ndarray]:
        """Per-dimension stats of `key` over all frames (last dim = D), cached in the store's attributes
        with a fingerprint of the data and a checksum of the values (recomputed when either differs)."""
        if key not in self.features:
            raise KeyError(f"{self.path}: no feature {key!r}; features are {sorted(self.features)}")
        if self.cached_stats_valid(key):
            return {k: np.asarray(v) for k, v in self._attrs["stats"][key]["values"].items()}
        result = self.accumulate(key, block).result()
        values = {k: v.tolist() for k, v in result.items()}
        fp = self._stats_fingerprint(key)
        entry = {
            "num_frames": self.num_frames,
            "num_episodes": self.num_episodes,
            "values": values,
            "fingerprint": fp,
            "checksum": self._stats_checksum(values, fp),
        }
        cached = self._attrs.get("stats")
        stats = {**(cached if isinstance(cached, dict) else {}), key: entry}
        if self.mode == "a":
            self._commit_attrs(stats=stats)
        else:  # read-only: cache in memory only
            self._attrs = {**self._attrs, "stats": stats}
        return result

    def normalizer(self, modes: Mapping[str, str]) -> Normalizer:
        """A Normalizer over this store's statistics for the keys in `modes`."""
        return Normalizer({k: self.stats(k) for k, m in modes.items() if m != "identity"}, modes)


# --- verification ------------------------------------------------------------------------------------
@dataclass
class StoreCheck:
    """What `verify_store` found: `problems` (the store is wrong: exit 1), `notes` (worth knowing, not
    wrong) and what was checked."""

    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    arrays: int = 0
    chunks: int = 0
    checksummed: int = 0  # episodes whose every key was compared with its recorded checksum

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem and note, then the summary line."""
        out = [f"{self.path}: {p}" for p in self.problems] + [f"{self.path}: note: {n}" for n in self.notes]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem{'s' * (len(self.problems) != 1)}"
        out.append(
            f"{self.path}: {self.episodes} episodes, {self.frames} frames, {self.arrays} arrays, "
            f"{self.chunks} chunks checked, {self.checksummed} episodes against their checksums: {verdict}"
        )
        return out


def verify_open_store(store: StoreReader, report: StoreCheck) -> StoreCheck:
    """The checks of `verify_store` past opening the store: fills `report` (its path is the store's)."""
    path = report.path
    report.episodes, report.frames, report.arrays = store.num_episodes, store.num_frames, len(store.features)
    sums = [store.episode_checksums(i) for i in range(store.num_episodes)]
    missing_rows: dict[str, set[int]] = {}
    for key in store.features:
        arr = store._arrays[key]
        c0 = arr.chunks[0]
        rest = [math.ceil(n / c) for n, c in zip(arr.shape[1:], arr.chunks[1:])]
        report.chunks += math.ceil(store.num_frames / c0) * int(np.prod(rest, dtype=np.int64))
        absent = store._missing_chunks(arr, 0, store.num_frames)
        missing_rows[key] = {r for _, r in absent}
        if absent and store._chunks_must_exist(key):
            for name, r in absent:
                lo, hi = r * c0, min((r + 1) * c0, store.num_frames) - 1
                report.problems.append(f"data/{key}: chunk {name} (frames {lo}-{hi}) is missing")
        elif absent:
            report.notes.append(
                f"data/{key}: {len(absent)} chunks absent; this store predates writing every chunk, so they "
                "may be all-zero frames zarr skipped (they read as zeros)"
            )
        if arr.shape[0] > store.num_frames:
            report.notes.append(
                f"data/{key}: {arr.shape[0] - store.num_frames} frames past the committed end (a killed "
                "writer's; the next append trims them)"
            )
    starts = store.episode_starts
    for i, recorded in enumerate(sums):
        if recorded is None:
            continue
        lo, hi = int(starts[i]), int(store.episode_ends[i])
        whole = True
        for key in store.features:
            c0 = store._arrays[key].chunks[0]
            if any(lo // c0 <= r <= (hi - 1) // c0 for r in missing_rows[key]):
                whole = False  # already reported as a missing chunk
                continue
            if key not in recorded:
                report.problems.append(f"data/{key}: episode {i} has no recorded checksum")
                whole = False
                continue
            try:
                got = checksum(store.read(key, lo, hi))
            except ValueError as e:
                report.problems.append(str(e).removeprefix(f"{path}: ").split("; the store is damaged")[0])
                whole = False
                continue
            if got != recorded[key]:
                first, last = lo // c0, (hi - 1) // c0
                where = f"chunk row {first}" if first == last else f"chunk rows {first}-{last}"
                report.problems.append(
                    f"data/{key}: episode {i} (frames {lo}-{hi - 1}, {where}) does not match its "
                    f"{CHECKSUM} checksum (recorded {recorded[key]:08x}, read {got:08x})"
                )
                whole = False
        report.checksummed += whole
    unrecorded = sum(s is None for s in sums)
    if unrecorded == len(sums) and sums:
        report.notes.append(
            "no checksums recorded (the store was written before checksums): structure and chunk presence "
            "checked only"
        )
    elif unrecorded:
        report.notes.append(f"{unrecorded} of {len(sums)} episodes were appended before checksums")
    for key in store.features:
        valid = store.cached_stats_valid(key)
        if valid is False:
            entry = store._attrs["stats"][key]
            if isinstance(entry, dict) and "checksum" in entry:
                report.problems.append(
                    f"cached statistics of {key!r} do not match the data they summarise (they are "
                    "recomputed on use)"
                )
            else:
                report.notes.append(f"cached statistics of {key!r} predate checksums (recomputed on use)")
    if list(path.rglob("*.partial")):
        report.notes.append("partial files of an interrupted write (the next append removes them)")
    return report
