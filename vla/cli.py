"""The `vla` command line: `vla <command> [<subcommand>] [positional ...] key=value ...`.

Commands are a table from name to `module:function`; the module is imported only when its command runs,
so `vla --help` is instant and a broken optional part never breaks the others. Each function takes the
remaining argv (hydra overrides, plus any positionals it declares) and returns an exit code. This module
and each command's `main` are the only places that instantiate objects from config.

`vla <command> --help` (or `-h`) is answered here for every command, before it is dispatched (so no
command ever sees `--help` as data). A bad argument of any command is one `ConfigError` line on stderr
and exit code 2: a bad override (raised while composing), or one a command's own checks reject before it
writes anything (a missing input, a value out of range, an output directory holding another run's
results without resume=true or overwrite=true). Other failures (ValueError, missing files met while
working) are one "error:" line and exit code 1; `VLA_DEBUG=1` shows the traceback of either.

    vla collect task=pick episodes=20 out=outputs/demos
    vla show-config collect task=pick          # print the composed, resolved config
    vla eval --help                            # purpose, usage, every config field with default and doc
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from vla import __version__

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
    "dataset view": ("vla.commands.dataset:view_main", "contact sheet + mp4 per episode: STORE episodes=[0,5] out=DIR"),
    "dataset verify": ("vla.commands.dataset:verify_main", "check a store's chunks against its checksums: STORE"),
    "import lerobot": ("vla.commands.dataset:import_lerobot_main", "LeRobot v2.x/v3.0 dataset to a store: PATH out=..."),
    "export lerobot": ("vla.commands.dataset:export_lerobot_main", "episode store to LeRobot v3.0: STORE out=DIR"),
    "import rosbag": ("vla.commands.ros2:import_rosbag", "rosbag2 recording into an episode store: BAG out=STORE"),
    "vqa generate": ("vla.commands.vqa:generate_main", "scene-VQA from the simulator (LLaVA JSON): OUT scenes=200"),
    "eval-vqa": ("vla.commands.vqa:eval_main", "VQAv2 accuracy of a VLM: [DATA.json] checkpoint=DIR | predictions=F"),
    "ros2 run": ("vla.commands.ros2:ros2_run", "the VLA ROS 2 node: policy=expert checkpoint=... robot=panda"),
    "ros2 sim-robot": ("vla.commands.ros2:ros2_sim_robot", "the PyBullet table-top as a ROS 2 robot: task=pick"),
    "ros2 eval": ("vla.commands.ros2:ros2_eval", "a policy closed loop through ROS 2 on vla eval's seeds: checkpoint=DIR"),
    "model-info": ("vla.commands.model_info:model_info", "summarise a model preset: tiny [OUT_DIR] k=v"),
    "show-config": ("vla.cli:show_config", "print a command's composed config: vla show-config NAME k=v ..."),
}


# name -> (hydra config it composes ("" for none), positional arguments as typed, the keys they set).
CONFIGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "collect": ("collect", "", ()),
    "train": ("train", "[DATA_PATH]", ("data.path",)),
    "eval": ("eval", "", ()),
    "demo": ("demo", "", ()),
    "goals": ("goal_diffusion", "{generate|train|sample}", ()),
    "tokenizer fit": ("tokenizer_fit", "SOURCE", ("source",)),
    "tokenizer report": ("tokenizer_report", "TOK.json SOURCE", ("path", "source")),
    "dataset info": ("", "PATH [stats=true]", ()),
    "dataset view": ("dataset_view", "STORE", ("path",)),
    "dataset verify": ("", "STORE", ()),
    "import lerobot": ("import_lerobot", "PATH", ("path",)),
    "export lerobot": ("export_lerobot", "STORE", ("path",)),
    "import rosbag": ("ros2_import_rosbag", "BAG", ("bag",)),
    "vqa generate": ("vqa_generate", "[OUT]", ("out",)),
    "eval-vqa": ("eval_vqa", "[DATA.json]", ("data.path",)),
    "ros2 run": ("ros2_run", "", ()),
    "ros2 sim-robot": ("ros2_sim_robot", "", ()),
    "ros2 eval": ("ros2_eval", "", ()),
    "model-info": ("model/tiny", "PRESET [OUT_DIR]", ()),
    "show-config": ("", "COMMAND|CONFIG", ()),
}
HELP_FLAGS = ("-h", "--help")


def version() -> str:
    """The installed distribution's version, else the source tree's `vla.__version__`."""
    try:
        return importlib.metadata.version("vla-stack")
    except importlib.metadata.PackageNotFoundError:
        return __version__


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C extensions print on file descriptor 2 while importing (pybullet's build banner),
    so a bad argument stays one line on stderr; Python exceptions still propagate."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_command(target: str) -> Any:
    """The function of a `module:function` target, its module imported quietly."""
    module_name, func_name = target.split(":")
    with _quiet_native_stderr():
        module = importlib.import_module(module_name)
    return getattr(module, func_name)


def usage_line(name: str) -> str:
    args = CONFIGS.get(name, ("", "", ()))[1]
    overrides = " [key=value ...]" if CONFIGS.get(name, ("",))[0] else ""
    return f"vla {name}{' ' + args if args else ''}{overrides}"


def _value_text(value: Any) -> str:
    """A config value as typed on a command line: null, true, plain strings, flow lists/dicts."""
    if isinstance(value, str):
        return value if value and value.isprintable() and value.strip() == value else json.dumps(value)
    return json.dumps(value, default=str).replace('"', "")


def _field_lines(cfg: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """`key: type = default` and the field's comment for every field of `cfg`, nested dataclasses one
    level deep (`env.image_size`)."""
    from omegaconf import OmegaConf

    from vla.core.config import field_docs

    cls = OmegaConf.get_type(cfg)
    docs = field_docs(cls) if isinstance(cls, type) else {}
    types = {}
    if isinstance(cls, type) and hasattr(cls, "__dataclass_fields__"):
        types = {n: getattr(f.type, "__name__", str(f.type)) for n, f in cls.__dataclass_fields__.items()}
    lines: list[str] = []
    for key in cfg.keys():
        name = f"{prefix}{key}"
        node = cfg._get_node(key)
        missing = OmegaConf.is_missing(cfg, key)
        sub = None if missing else OmegaConf.get_type(cfg, key)
        if not missing and OmegaConf.is_dict(node) and depth == 0 and sub not in (dict, None):
            head = f"  {name}.*  ({getattr(sub, '__name__', sub)})"
            lines.append(head + (f"  # {docs[key]}" if key in docs else ""))
            lines += _field_lines(node, f"{name}.", depth + 1)
            continue
        if missing:
            value = "???  (required)"
        elif OmegaConf.is_interpolation(cfg, key):
            value = str(node._value())
        else:
            value = _value_text(OmegaConf.to_container(node) if OmegaConf.is_config(node) else node._value())
        type_ = f": {types[key]}" if key in types else ""
        lines.append(f"  {name}{type_} = {value}" + (f"  # {docs[key]}" if key in docs else ""))
    return lines


def command_help(name: str) -> str:
    """What `vla NAME --help` prints: purpose, usage, and the command's config fields (never runs it)."""
    target, purpose = COMMANDS[name]
    config, _, keys = CONFIGS.get(name, ("", "", ()))
    out = [f"vla {name}: {purpose}", "", f"usage: {usage_line(name)}"]
    if keys:
        labels = CONFIGS[name][1].replace("[", "").replace("]", "").split()
        out.append("positionals: " + ", ".join(f"{lab} sets {k}" for lab, k in zip(labels, keys)))
    if not config:
        return "\n".join(out)
    from vla.core.config import compose

    _import_command(target)  # registers the command's schema
    try:
        cfg = compose(config)
    except ValueError as e:
        return "\n".join([*out, "", f"(config {config!r} does not compose: {e})"])
    out += ["", f"config fields (configs/{config}.yaml; `vla show-config {name}` prints it composed):"]
    if name == "model-info":  # the preset composes under a `model` key that overrides leave out
        out[-1] = "config fields of a model preset (shown: configs/model/tiny.yaml):"
        cfg = cfg.model
    return "\n".join(out + _field_lines(cfg))


def _config_name(argv: Sequence[str]) -> tuple[str, list[str]]:
    """show-config's NAME as typed: a command (`ros2 run`, `import rosbag`) or a config (`ros2_run`)."""
    from vla.core.config import config_dir

    configs = sorted(p.stem for p in config_dir().glob("*.yaml"))
    if argv and argv[0] in configs:
        return argv[0], list(argv[1:])
    try:
        name, rest = resolve(argv)
    except KeyError:
        name, rest = "", []
    if name and CONFIGS.get(name, ("",))[0]:
        return CONFIGS[name][0], rest
    commands = [n for n, c in CONFIGS.items() if c[0]]
    raise ValueError(
        f"unknown name {' '.join(argv[:2])!r}; expected a command ({', '.join(commands)}) "
        f"or a config ({', '.join(configs)})"
    )


def register_all_schemas() -> None:
    """Import every command's module: each registers its config schema(s) in hydra's ConfigStore."""
    for target, _ in COMMANDS.values():
        module = target.split(":")[0]
        if module != __name__:
            with _quiet_native_stderr():
                importlib.import_module(module)


def show_config(argv: Sequence[str]) -> int:
    from vla.core.config import compose, to_yaml

    if not argv:
        print("usage: vla show-config COMMAND|CONFIG [key=value ...]", file=sys.stderr)
        return 2
    try:
        config, rest = _config_name(argv)
    except ValueError as e:
        print(f"vla show-config: {e}", file=sys.stderr)
        return 2
    register_all_schemas()
    print(to_yaml(compose(config, rest)), end="")
    return 0


def _usage() -> str:
    width = max(len(k) for k in COMMANDS)
    lines = ["usage: vla <command> [args] [key=value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    lines += ["", "vla <command> --help: the command's usage and config fields; vla --version: the version"]
    return "\n".join(lines)


def _bad_argument(exc: BaseException, name: str) -> Any:
    """The ConfigError behind `exc` (itself, a cause, or a hydra/omegaconf error it wraps), else None."""
    from vla.core import config as c

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, c.ConfigError):
            return cur
        if isinstance(cur, c.MissingMandatoryValue):
            return c.missing_error(cur)
        if isinstance(cur, (c.HydraException, c.OmegaConfBaseException)):
            return c.config_error(cur, CONFIGS.get(name, ("",))[0])
        cur = cur.__cause__ or cur.__context__
    return None


def resolve(argv: Sequence[str]) -> tuple[str, list[str]]:
    """Find the longest command name that prefixes argv; return (name, remaining args)."""
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name, list(argv[n:])
    raise KeyError(argv[0] if argv else "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"vla {version()}")
        return 0
    if argv[:1] == ["help"] and len(argv) > 1:
        argv = [*argv[1:], "--help"]
    if not argv or argv[0] in (*HELP_FLAGS, "help"):
        print(_usage())
        return 0
    try:
        name, rest = resolve(argv)
    except KeyError:
        print(f"vla: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if any(a in HELP_FLAGS for a in rest):
        print(command_help(name))
        return 0
    func = _import_command(COMMANDS[name][0])
    try:
        return int(func(rest) or 0)
    except Exception as e:
        # Bad input: one clear line, no traceback (set VLA_DEBUG=1 for it).
        if os.environ.get("VLA_DEBUG"):
            raise
        bad = _bad_argument(e, name)
        if bad is not None:
            hint = f" (usage: {usage_line(name)})" if bad.kind == "missing" else ""
            print(f"vla {name}: {bad}{hint}", file=sys.stderr)
            return 2
        if not isinstance(e, (ValueError, FileNotFoundError, FileExistsError, KeyError)):
            raise
        print(f"vla {name}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
