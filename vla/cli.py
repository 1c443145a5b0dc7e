"""The `vla` command line: `vla <command> [<subcommand>] [positional ...] key=value ...`.

Commands are a table from name to `module:function`; the module is imported only when its command runs,
so `vla --help` is instant and a broken optional part never breaks the others. Each function takes the
remaining argv (hydra overrides, plus any positionals it declares) and returns an exit code. This module
and each command's `main` are the only places that instantiate objects from config.

    vla collect task=pick episodes=20 out=outputs/demos
    vla show-config collect task=pick          # print the composed, resolved config
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (target "module:function", one-line help). Subcommands are written "group sub".
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("vla.commands.collect:main", "expert demos into an episode store: task=pick episodes=20"),
    "train": ("vla.commands.train:main", "train a VLA: data.path=STORE out=DIR trainer.steps=N"),
    "eval": ("vla.commands.eval:main", "closed-loop evaluation: policy=expert tasks=[pick] episodes=20"),
    "demo": ("vla.commands.demo:main", "the main job: collect, train and evaluate one VLA (preset=pick|full)"),
    "goals": ("vla.commands.goals:main", "3D goal clouds: generate|train|sample k=v (goal imagination)"),
    "tokenizer fit": ("vla.commands.tokenizer:fit_main", "fit an action tokenizer: SOURCE tokenizer=fast"),
    "tokenizer report": ("vla.commands.tokenizer:report_main", "tokenizer error/tokens: TOK.json SOURCE"),
    "dataset info": ("vla.commands.dataset:info_main", "summarise an episode store: PATH [stats=true]"),
    "import lerobot": ("vla.commands.dataset:import_lerobot_main", "LeRobot v2.x/v3.0 dataset to a store: PATH out=..."),
    "export lerobot": ("vla.commands.dataset:export_lerobot_main", "episode store to LeRobot v3.0: STORE out=DIR"),
    "import rosbag": ("vla.commands.ros2:import_rosbag", "rosbag2 recording into an episode store: BAG out=STORE"),
    "vqa generate": ("vla.commands.vqa:generate_main", "scene-VQA from the simulator (LLaVA JSON): OUT scenes=200"),
    "eval-vqa": ("vla.commands.vqa:eval_main", "VQAv2 accuracy of a VLM: [DATA.json] checkpoint=DIR | predictions=F"),
    "ros2 run": ("vla.commands.ros2:ros2_run", "the VLA ROS 2 node: policy=expert checkpoint=... robot=panda"),
    "ros2 sim-robot": ("vla.commands.ros2:ros2_sim_robot", "the PyBullet table-top as a ROS 2 robot: task=pick"),
    "model-info": ("vla.commands.model_info:model_info", "summarise a model preset: tiny [OUT_DIR] k=v"),
    "show-config": ("vla.cli:show_config", "print a command's composed config: vla show-config NAME k=v ..."),
}


def register_all_schemas() -> None:
    """Import every command's module: each registers its config schema(s) in hydra's ConfigStore."""
    for target, _ in COMMANDS.values():
        module = target.split(":")[0]
        if module != __name__:
            importlib.import_module(module)


def show_config(argv: Sequence[str]) -> int:
    from vla.core.config import compose, to_yaml

    if not argv:
        print("usage: vla show-config CONFIG_NAME [key=value ...]", file=sys.stderr)
        return 2
    register_all_schemas()
    print(to_yaml(compose(argv[0], argv[1:])), end="")
    return 0


def _usage() -> str:
    width = max(len(k) for k in COMMANDS)
    lines = ["usage: vla <command> [args] [key=value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    return "\n".join(lines)


def resolve(argv: Sequence[str]) -> tuple[str, list[str]]:
    """Find the longest command name that prefixes argv; return (name, remaining args)."""
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name, list(argv[n:])
    raise KeyError(argv[0] if argv else "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    try:
        name, rest = resolve(argv)
    except KeyError:
        print(f"vla: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as e:
        # Bad input: one clear line, no traceback (set VLA_DEBUG=1 for it).
        import os

        if os.environ.get("VLA_DEBUG"):
            raise
        print(f"vla {name}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
