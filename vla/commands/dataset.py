"""`vla dataset info`, `vla import lerobot` and `vla export lerobot`: the episode store's way in and out.

Each function parses its command line (positionals plus hydra overrides), calls the library function
that does the work (`vla.data.info.describe`, `vla.data.lerobot_import.import_lerobot`,
`vla.data.lerobot_export.export_lerobot`) and prints a short human summary. `vla import rosbag` lives
beside the other ROS 2 commands in `vla.commands.ros2`.

    vla dataset info outputs/demos/pick.zarr stats=true
    vla import lerobot ../shared/data/lerobot_g1_v21 out=outputs/g1.zarr episodes=[1,2]
    vla export lerobot outputs/demos/pick.zarr out=outputs/pick_v3
"""

from __future__ import annotations

from collections.abc import Sequence

from vla.core.config import compose, split_positionals, to_dataclass
from vla.data.info import describe, format_info
from vla.data.lerobot_export import ExportLeRobotConfig, export_lerobot
from vla.data.lerobot_import import ImportLeRobotConfig, import_lerobot


def info_main(argv: Sequence[str]) -> int:
    """`vla dataset info PATH [stats=true]`."""
    pos = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = sorted(set(opts) - {"stats"})
    if len(pos) != 1 or unknown:
        raise ValueError(f"usage: vla dataset info PATH [stats=true] (got {list(argv)})")
    print(format_info(describe(pos[0], stats=opts.get("stats", "false").lower() in ("1", "true", "yes"))))
    return 0


def _mapping_adds_keys(argv: Sequence[str]) -> list[str]:
    """A dict override must add keys to the (empty, struct) mapping: `mapping=` means `++mapping=`."""
    return ["++" + a if a.startswith("mapping=") else a for a in argv]


def import_lerobot_main(argv: Sequence[str]) -> int:
    """`vla import lerobot PATH [key=value ...]`."""
    from omegaconf import OmegaConf

    node = compose("import_lerobot", split_positionals(_mapping_adds_keys(argv), ["path"]))
    cfg = to_dataclass(node, ImportLeRobotConfig)
    if not cfg.path:
        raise ValueError("usage: vla import lerobot PATH [out=...] [episodes=[1,2]] [mapping={...}]")
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
    if not cfg.path:
        raise ValueError("usage: vla export lerobot STORE out=DIR [codec=libx264] [episodes=[0,1]]")
    s = export_lerobot(cfg)
    print(
        f"exported {s['episodes']} episodes ({s['frames']} frames, {s['tasks']} tasks) to {s['out']} "
        f"as LeRobot v3.0 in {s['wall_s']:.1f}s, {s['bytes'] / 1e6:.1f} MB"
        + (f"\nnot exported: {', '.join(s['skipped'])}" if s["skipped"] else "")
    )
    return 0
