"""`vla dataset info`, `vla dataset view`, `vla import lerobot` and `vla export lerobot`: the episode store's
way in and out, and a look at it.

Each function parses its command line (positionals plus hydra overrides), calls the library function
that does the work (`vla.data.info.describe`, `vla.eval.dataset_view.view_dataset`,
`vla.data.lerobot_import.import_lerobot`, `vla.data.lerobot_export.export_lerobot`) and prints a short
human summary. `vla import rosbag` lives beside the other ROS 2 commands in `vla.commands.ros2`. Every
argument is checked before any work starts (the input exists, choices and episode indices are known) and
a bad one is a `ConfigError`: one line, exit code 2. An `out=` that already holds something (a store, an
export) is refused unless `overwrite=true` replaces it; an empty directory is filled.

    vla dataset info outputs/demos/pick.zarr stats=true
    vla dataset view outputs/demos/pick.zarr episodes=[0,5] out=outputs/view/pick
    vla dataset verify outputs/demos/pick.zarr      # every chunk against its checksum; exit 1 if damaged
    vla import lerobot ../shared/data/lerobot_g1_v21 out=outputs/g1.zarr episodes=[1,2]
    vla export lerobot outputs/demos/pick.zarr out=outputs/pick_v3
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path

from vla.core.config import (
    ConfigError,
    argument_checks,
    check_number,
    check_path_name,
    compose,
    split_positionals,
    to_dataclass,
)
from vla.data.info import describe, format_info
from vla.data.lerobot_export import ExportLeRobotConfig, export_lerobot
from vla.data.lerobot_format import LeRobotSource
from vla.data.lerobot_import import ImportLeRobotConfig, import_lerobot, resolve_mapping
from vla.data.store import IMAGE_COMPRESSION, EpisodeStore, verify_store
from vla.eval.dataset_view import ViewConfig, view_dataset


def info_main(argv: Sequence[str]) -> int:
    """`vla dataset info PATH [stats=true]`; a bad argument (none, two, an unknown key, a path that is no
    store) is one ConfigError line, exit code 2."""
    pos = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = sorted(set(opts) - {"stats"})
    if unknown:
        hint = " (did you mean 'stats'?)" if difflib.get_close_matches(unknown[0], ["stats"]) else ""
        raise ConfigError(
            f"unknown key '{unknown[0]}'{hint}; the only option is stats=true", unknown[0], "unknown-key"
        )
    if not pos:
        raise ConfigError("missing value for 'PATH'", key="PATH", kind="missing")
    if len(pos) > 1:
        raise ConfigError(f"unexpected arguments {pos[1:]}; expected one PATH", key="PATH")
    stats = opts.get("stats", "false").lower()
    if stats not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"bad value for 'stats': {stats!r} (expected true or false)", key="stats")
    check_path_name(pos[0], "PATH")
    if not (Path(pos[0]) / "zarr.json").is_file():
        raise ConfigError(f"episode store not found (no zarr.json): {pos[0]}", key="PATH")
    print(format_info(describe(pos[0], stats=stats in ("1", "true", "yes"))))
    return 0


def view_main(argv: Sequence[str]) -> int:
    """`vla dataset view STORE [episodes=[0,5]] [out=DIR] [key=value ...]`: contact sheet + mp4s."""
    cfg = to_dataclass(compose("dataset_view", split_positionals(argv, ["path"])), ViewConfig)
    if not cfg.path:  # one line, exit 2, the CLI adds the usage
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
    s = view_dataset(cfg)  # a bad value (episode, camera, non-empty out) is a ConfigError: exit 2
    lines = [f"contact sheet of episodes {s['episodes']} ({', '.join(s['cameras'])}): {s['sheet']}"]
    lines += [f"video: {v}" for v in s["videos"]]
    print("\n".join(lines) + f"\nwritten in {s['wall_s']:.1f}s")
    return 0


def _mapping_adds_keys(argv: Sequence[str]) -> list[str]:
    """A dict override must add keys to the (empty, struct) mapping: `mapping=` means `++mapping=`."""
    return ["++" + a if a.startswith("mapping=") else a for a in argv]


def output_taken(out: str, overwrite: bool, what: str) -> bool:
    """Whether `out` must be replaced: False when it does not exist; True for an empty directory (filled:
    the writers replace it) and with overwrite=true; else a ConfigError (one line, exit 2) naming it and
    the way out."""
    if not out:  # "" is the current directory, never the output meant
        raise ConfigError("out: expected a directory path, got ''", "out")
    path = Path(out)
    if not path.exists():
        return False
    if overwrite or (path.is_dir() and not any(path.iterdir())):
        return True
    raise ConfigError(
        f"out={out} already exists ({what}): pass overwrite=true to replace it, or choose another out=",
        "out",
        "output-exists",
    )


def check_import_lerobot(cfg: ImportLeRobotConfig) -> ImportLeRobotConfig:
    """The arguments of `vla import lerobot`, before anything is read in bulk or written; returns `cfg`
    with `overwrite` set where `out` is an empty directory."""
    if not cfg.path:  # one line, exit 2, the CLI adds the usage
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
    if cfg.image_compression not in IMAGE_COMPRESSION:
        raise ConfigError(
            f"unknown image_compression {cfg.image_compression!r}; "
            f"choose one of: {', '.join(IMAGE_COMPRESSION)}",
            "image_compression",
            "unknown-choice",
        )
    if not cfg.split:  # the episodes' split label, which `vla train data.split=` selects by
        raise ConfigError("split: expected a split label (e.g. train), got ''", "split")
    if cfg.image_size is not None and (len(cfg.image_size) != 2 or min(cfg.image_size) < 1):
        raise ConfigError(f"image_size: expected [H, W] >= 1, got {list(cfg.image_size)}", "image_size")
    for key in ("path", "out"):
        check_path_name(getattr(cfg, key), key)
    if not Path(cfg.path).is_dir():
        raise ConfigError(f"LeRobot dataset directory not found: {cfg.path}", "path", "no-such-path")
    with argument_checks("path"):
        source = LeRobotSource(cfg.path)
    with argument_checks("mapping"):
        resolve_mapping(source, cfg.mapping)
    with argument_checks("episodes"):
        for e in cfg.episodes or []:
            source.episode(int(e))
    what = "an episode store" if (Path(cfg.out) / "zarr.json").is_file() else "not an episode store"
    return dataclasses.replace(cfg, overwrite=output_taken(cfg.out, cfg.overwrite, what))


def import_lerobot_main(argv: Sequence[str]) -> int:
    """`vla import lerobot PATH [key=value ...]`."""
    from omegaconf import OmegaConf

    node = compose("import_lerobot", split_positionals(_mapping_adds_keys(argv), ["path"]))
    cfg = check_import_lerobot(to_dataclass(node, ImportLeRobotConfig))
    s = import_lerobot(cfg, OmegaConf.to_container(node, resolve=True))
    print(
        f"imported {s['episodes']} episodes ({s['frames']} frames) into {s['out']} in {s['wall_s']:.1f}s, "
        f"{s['bytes'] / 1e6:.1f} MB\nfeatures: "
        + ", ".join(f"{a} -> {b}" for a, b in s["features"].items())
        + (f"\nskipped: {', '.join(s['skipped'])}" if s["skipped"] else "")
    )
    return 0


MAX_CRF = {"libx264": 51, "libx265": 51, "libsvtav1": 63}  # crf 0 (lossless) .. the codec's worst


def check_export_lerobot(cfg: ExportLeRobotConfig) -> ExportLeRobotConfig:
    """The arguments of `vla export lerobot`, before anything is exported; returns `cfg` with
    `overwrite` set where `out` is an empty directory."""
    import av

    if not cfg.path:  # one line, exit 2, the CLI adds the usage
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
    if cfg.codec not in av.codecs_available:
        raise ConfigError(
            f"unknown codec {cfg.codec!r}; choose one of: libx264, libsvtav1, mpeg4 (an ffmpeg encoder)",
            "codec",
            "unknown-choice",
        )
    if cfg.chunks_size < 1 or not cfg.data_file_mb > 0 or not cfg.video_file_mb > 0:  # NaN: not > 0
        raise ConfigError("chunks_size must be >= 1, data_file_mb and video_file_mb > 0", "chunks_size")
    check_number(cfg.crf, "crf", 0, MAX_CRF.get(cfg.codec, 63))  # the codec's quality scale
    for key in ("path", "out"):
        check_path_name(getattr(cfg, key), key)
    if not (Path(cfg.path) / "zarr.json").is_file():
        raise ConfigError(f"episode store not found (no zarr.json): {cfg.path}", "path", "no-such-path")
    with argument_checks("path"):
        store = EpisodeStore.open(cfg.path)
    try:
        n, features = store.num_episodes, sorted(store.features)
    finally:
        store.close()
    bad = [i for i in cfg.episodes or [] if not 0 <= int(i) < n]
    if cfg.episodes is not None and not cfg.episodes:
        raise ConfigError("episodes: expected at least one episode index (null = all)", "episodes")
    if bad:
        raise ConfigError(f"episodes {bad} not in {cfg.path} (0..{n - 1})", "episodes")
    unknown = sorted(set(cfg.mapping) - set(features))
    if unknown:
        raise ConfigError(f"mapping names keys {unknown} that are not features {features}", "mapping")
    return dataclasses.replace(cfg, overwrite=output_taken(cfg.out, cfg.overwrite, "an earlier export"))


def export_lerobot_main(argv: Sequence[str]) -> int:
    """`vla export lerobot STORE out=DIR [key=value ...]`."""
    node = compose("export_lerobot", split_positionals(_mapping_adds_keys(argv), ["path"]))
    cfg = check_export_lerobot(to_dataclass(node, ExportLeRobotConfig))
    s = export_lerobot(cfg)
    print(
        f"exported {s['episodes']} episodes ({s['frames']} frames, {s['tasks']} tasks) to {s['out']} "
        f"as LeRobot v3.0 in {s['wall_s']:.1f}s, {s['bytes'] / 1e6:.1f} MB"
        + (f"\nnot exported: {', '.join(s['skipped'])}" if s["skipped"] else "")
    )
    return 0


def verify_main(argv: Sequence[str]) -> int:
    """`vla dataset verify STORE`: every chunk against the checksums recorded at append
    (vla.data.store.verify_store); one line per problem, a summary line; exit code 1 when anything is
    wrong. A bad argument (none, two, an option) is one ConfigError line, exit code 2."""
    pos = [a for a in argv if "=" not in a]
    opts = [a for a in argv if "=" in a]
    if opts:
        key = opts[0].split("=", 1)[0]
        raise ConfigError(f"unknown key '{key}'; vla dataset verify takes only STORE", key, "unknown-key")
    if not pos:
        raise ConfigError("missing value for 'STORE'", key="STORE", kind="missing")
    if len(pos) > 1:
        raise ConfigError(f"unexpected arguments {pos[1:]}; expected one STORE", key="STORE")
    check_path_name(pos[0], "STORE")
    if not (Path(pos[0]) / "zarr.json").is_file():
        raise ConfigError(f"episode store not found (no zarr.json): {pos[0]}", "STORE", "no-such-path")
    report = verify_store(pos[0])
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
