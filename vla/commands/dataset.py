"""`vla dataset info`, `vla dataset view`, `vla import lerobot` and `vla export lerobot`: the episode store's
way in and out, and a look at it.

Each function parses its command line (positionals plus hydra overrides), calls the library function
that does the work (`vla.data.info.describe`, `vla.eval.dataset_view.view_dataset`,
`vla.data.lerobot_import.import_lerobot`, `vla.data.lerobot_export.export_lerobot`) and prints a short
human summary. `vla import rosbag` lives beside the other ROS 2 commands in `vla.commands.ros2`.

    vla dataset info outputs/demos/pick.zarr stats=true
    vla dataset view outputs/demos/pick.zarr episodes=[0,5] out=outputs/view/pick
    vla dataset verify outputs/demos/pick.zarr      # every chunk against its checksum; exit 1 if damaged
    vla import lerobot ../shared/data/lerobot_g1_v21 out=outputs/g1.zarr episodes=[1,2]
    vla export lerobot outputs/demos/pick.zarr out=outputs/pick_v3
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from vla.core.config import ConfigError, compose, split_positionals, to_dataclass
from vla.data.info import describe, format_info
from vla.data.lerobot_export import ExportLeRobotConfig, export_lerobot
from vla.data.lerobot_import import ImportLeRobotConfig, import_lerobot
from vla.data.store import verify_store
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


def import_lerobot_main(argv: Sequence[str]) -> int:
    """`vla import lerobot PATH [key=value ...]`."""
    from omegaconf import OmegaConf

    node = compose("import_lerobot", split_positionals(_mapping_adds_keys(argv), ["path"]))
    cfg = to_dataclass(node, ImportLeRobotConfig)
    if not cfg.path:  # one line, exit 2, the CLI adds the usage
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
    s = import_lerobot(cfg, OmegaConf.to_container(node, resolve=True))
    print(
        f"imported {s['episodes']} episodes ({s['frames']} frames) into {s['out']} in {s['wall_s']:.1f}s, "
        f"{s['bytes'] / 1e6:.1f} MB\nfeatures: "
        + ", ".join(f"{a} -> {b}" for a, b in s["features"].items())
        + (f"\nskipped: {', '.join(s['skipped'])}" if s["skipped"] else "")
    )
    return 0


def export_lerobot_main(argv: Sequence[str]) -> int:
    """`vla export lerobot STORE out=DIR [key=value ...]`."""
    node = compose("export_lerobot", split_positionals(_mapping_adds_keys(argv), ["path"]))
    cfg = to_dataclass(node, ExportLeRobotConfig)
    if not cfg.path:  # one line, exit 2, the CLI adds the usage
        raise ConfigError("missing value for 'path'", key="path", kind="missing")
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
    report = verify_store(pos[0])
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
