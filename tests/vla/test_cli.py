"""The `vla` CLI skeleton: command resolution, config composition with overrides, clear errors."""

import dataclasses
import subprocess
import sys

import pytest

from vla import cli
from vla.core.config import compose, register_config, save_resolved, split_positionals, to_dataclass
from vla.core.io import atomic_directory, atomic_write_json, read_json


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "show-config" in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_resolve_prefers_subcommands(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "group sub", ("x:y", "h"))
    assert cli.resolve(["group", "sub", "a=1"]) == ("group sub", ["a=1"])
    assert cli.resolve(["show-config", "a"]) == ("show-config", ["a"])


@register_config("_test_schema_demo")
@dataclasses.dataclass
class _Demo:
    steps: int = 3
    label: str = "x"


def test_compose_with_overrides_and_schema(tmp_path, monkeypatch):
    (tmp_path / "demo.yaml").write_text("defaults:\n  - _test_schema_demo_schema\n  - _self_\nlabel: z\n")
    monkeypatch.setenv("VLA_CONFIG_DIR", str(tmp_path))
    cfg = compose("demo", ["steps=5"])
    assert cfg.steps == 5 and cfg.label == "z"
    obj = to_dataclass(cfg, _Demo)
    assert obj == _Demo(steps=5, label="z")
    with pytest.raises(Exception, match="steps"):  # schema typing: an int field rejects a word
        compose("demo", ["steps=abc"])
    with pytest.raises(ValueError, match="unknown config"):
        compose("nope")
    out = save_resolved(cfg, tmp_path / "run")
    assert "steps: 5" in out.read_text()


def test_split_positionals():
    assert split_positionals(["d/x", "a=1"], ["path"]) == ["path=d/x", "a=1"]
    with pytest.raises(ValueError, match="unexpected arguments"):
        split_positionals(["a", "b"], ["path"])


def test_atomic_writes(tmp_path):
    p = atomic_write_json(tmp_path / "a" / "x.json", {"k": [1, 2]})
    assert read_json(p) == {"k": [1, 2]}
    with pytest.raises(FileNotFoundError, match="stats"):
        read_json(tmp_path / "missing.json", what="stats")
    d = tmp_path / "ckpt"
    with atomic_directory(d) as tmp:
        (tmp / "f").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(d) as tmp:
        (tmp / "f").write_text("2")
        raise RuntimeError("killed")
    assert (d / "f").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")] == []


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "vla.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "commands:" in r.stdout


def _top_level_configs() -> list[str]:
    from vla.core.config import config_dir

    return sorted(p.stem for p in config_dir().glob("*.yaml"))


@pytest.mark.parametrize("name", _top_level_configs())
def test_every_preset_composes_with_its_schema(name):
    """Every command's preset composes (its module imports and registers the schema it names)."""
    cli.register_all_schemas()
    cfg = compose(name)
    assert len(cfg) > 0


def test_every_command_module_imports_and_its_function_exists():
    import importlib

    for name, (target, _) in cli.COMMANDS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


# --- `--help`, `--version`, show-config names, one-line errors for bad arguments (issue 20) ---


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_help_prints_and_writes_nothing(name, flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*name.split(), flag]) == 0
    out = capsys.readouterr().out
    assert cli.COMMANDS[name][1] in out and f"usage: vla {name}" in out
    assert list(tmp_path.iterdir()) == []  # `vla vqa generate --help` once generated into ./--help


def test_every_command_has_a_config_entry():
    assert set(cli.CONFIGS) == set(cli.COMMANDS)


def test_help_lists_fields_with_defaults_and_comments(capsys):
    assert cli.main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "  episodes: int = 20  # per task" in out
    assert "  env.image_size: int = " in out
    assert cli.main(["help", "train"]) == 0
    out = capsys.readouterr().out
    assert "trainer.steps: int = " in out and "usage: vla train [DATA_PATH]" in out
    assert cli.main(["help"]) == 0 and "commands:" in capsys.readouterr().out


def test_field_docs_reads_trailing_and_leading_comments():
    from vla.core.config import field_docs

    @dataclasses.dataclass
    class Cfg:
        a: int = 1  # the a: with a '#' inside
        # b is documented above
        # on two lines
        b: str = "x#y"
        c: float = dataclasses.field(default=0.0, metadata={"help": "from metadata"})
        d: int = 0

    assert field_docs(Cfg) == {
        "a": "the a: with a '#' inside",
        "b": "b is documented above on two lines",
        "c": "from metadata",
    }


def test_version(capsys):
    import vla

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vla {cli.version()}"
    assert cli.version().split(".")[0] == vla.__version__.split(".")[0]


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (["ros2", "run"], "ros2_run"),
        (["ros2_run"], "ros2_run"),
        (["train"], "train"),
        (["import", "rosbag"], "ros2_import_rosbag"),
    ],
)
def test_show_config_accepts_command_names(argv, config, capsys):
    assert cli.main(["show-config", *argv]) == 0
    spaced = capsys.readouterr().out
    cli.register_all_schemas()
    from vla.core.config import to_yaml

    assert spaced == to_yaml(compose(config))


def test_show_config_unknown_name_is_one_line(capsys):
    assert cli.main(["show-config", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ros2 run" in err[0] and "ros2_run" in err[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "episdes=5"], "vla eval: unknown key 'episdes' (did you mean 'episodes'?)"),
        (
            ["train", "trainer.stpes=5"],
            "vla train: unknown key 'trainer.stpes' (did you mean 'trainer.steps'?)",
        ),
        (
            ["collect", "task=pik"],
            "vla collect: unknown task 'pik' (did you mean 'pick'?); choose one of: arrange,",
        ),
        (["eval", "episodes=many"], "vla eval: bad value for 'episodes'"),
        (["import", "rosbag"], "vla import rosbag: missing value for 'bag' (usage: vla import rosbag BAG"),
        (["eval", "--bogus"], "vla eval: cannot parse the arguments"),
        (
            ["show-config", "collect", "episods=3"],
            "vla show-config: unknown key 'episods' (did you mean 'episodes'?)",
        ),
        (
            ["goals", "train", "train.stpes=3"],
            "vla goals: unknown key 'train.stpes' (did you mean 'train.steps'?)",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), captured.err
    assert "task_schema" not in err[0]
    assert list(tmp_path.iterdir()) == []


def test_compose_raises_config_error_with_suggestion():
    from vla.core.config import ConfigError

    cli.register_all_schemas()
    with pytest.raises(ConfigError, match=r"did you mean 'env.image_size'") as info:
        compose("collect", ["env.image_szie=3"])
    assert info.value.kind == "unknown-key" and info.value.key == "env.image_szie"


# Every command with a bad argument of its own (a value the command checks, a missing or wrong input path),
# or, where a command checks nothing itself, an unknown key: one line on stderr, exit code 2, nothing
# written. A command added to `cli.COMMANDS` is covered by the unknown-key default.
OWN_CHECKS: dict[str, tuple[list[str], str]] = {
    "collect": (["episodes=0"], "vla collect: episodes must be >= 1, got 0"),
    "train": (["none.zarr"], "vla train: training store not found: none.zarr"),
    "eval": (["episodes=0"], "vla eval: episodes: expected >= 1, got 0"),
    "demo": (["tasks=[nope]"], "vla demo: tasks=['nope']: expected some of"),
    "goals": (["train", "train.stpes=3"], "vla goals: unknown key 'train.stpes'"),
    "tokenizer fit": ([], "vla tokenizer fit: missing value for 'source' (usage: vla tokenizer fit SOURCE"),
    "dataset info": (
        ["missing.zarr"],
        "vla dataset info: episode store not found (no zarr.json): missing.zarr",
    ),
    "import lerobot": ([], "vla import lerobot: missing value for 'path' (usage: vla import lerobot PATH"),
    "export lerobot": ([], "vla export lerobot: missing value for 'path' (usage: vla export lerobot STORE"),
    "import rosbag": ([], "vla import rosbag: missing value for 'bag'"),
    "show-config": (["nope"], "vla show-config: unknown name 'nope'"),
    "model-info": (["tiny", "bogus_key=1"], "vla model-info: unknown key 'model.bogus_key'"),
}
MORE_OWN_CHECKS: list[tuple[list[str], str]] = [
    (["dataset", "info"], "vla dataset info: missing value for 'PATH' (usage: vla dataset info PATH"),
    (["dataset", "info", "a", "b"], "vla dataset info: unexpected arguments ['b']"),
    (
        ["dataset", "info", "a.zarr", "stat=true"],
        "vla dataset info: unknown key 'stat' (did you mean 'stats'?)",
    ),
    (["collect", "env.action_space=joint_pos"], "vla collect: the scripted experts act in ee_delta"),
    (["collect", "seed=-1"], "vla collect: seed must be >= 0"),
    (["eval", "tasks=[nope]"], "vla eval: unknown task 'nope'"),
    (["eval", "split=val"], "vla eval: unknown split 'val'"),
    (["eval", "policy=nope"], "vla eval: unknown policy 'nope'"),
    (["eval", "references=[expert,nope]"], "vla eval: unknown policy 'nope'"),
    (["eval", "checkpoint=nowhere"], "vla eval: checkpoint directory not found"),
    (["eval", "video_size=4"], "vla eval: video_size: expected 0"),
    (["demo", "steps=0"], "vla demo: steps must be >= 1"),
    (["train", "data.path=none.zarr", "chunk_len=0"], "vla train: chunk_len must be >= 1"),
    (
        ["train", "none.zarr", "trainer.resume=true", "overwrite=true"],
        "vla train: trainer.resume=true continues",
    ),
    (["ros2", "run", "rate_hz=0"], "vla ros2 run: rate_hz must be > 0, got 0.0"),
    (["ros2", "run", "transport=zenoh"], "vla ros2 run: unknown transport 'zenoh'; choose one of: dds"),
    (["ros2", "run", "robot.max_translation=-1"], "vla ros2 run: robot config 'panda': max_translation"),
    (["ros2", "run", "record=."], "vla ros2 run: record=. already exists (a recording is never overwritten)"),
    (["ros2", "sim-robot", "encoding=mono8"], "vla ros2 sim-robot: encoding must be rgb8/bgr8, got 'mono8'"),
    (["vqa", "generate", "v", "styles=[poem]"], "vla vqa generate: styles must be a non-empty subset"),
    (["vqa", "generate", "v", "tasks=[nope]"], "vla vqa generate: unknown task 'nope'"),
    (["eval-vqa", "checkpoint=c", "predictions=p"], "vla eval-vqa: give exactly one of checkpoint=DIR"),
    (["goals", "nope"], "vla goals: unknown subcommand 'nope'"),
    (["goals", "generate", "generate.split=val"], "vla goals: unknown split 'val'"),
    (["goals", "sample", "sample.checkpoint=nowhere"], "vla goals: checkpoint directory not found"),
    (["model-info", "tiny", "vision.name=nope"], "vla model-info: unknown vision encoder 'nope'"),
    (["model-info", "tiny", "out", "x"], "vla model-info: unexpected arguments ['x']"),
    (["model-info", "tiny", "overwrite=maybe"], "vla model-info: bad value for 'overwrite'"),
]


def _bad_argument_cases() -> list[tuple[list[str], str]]:
    cases = []
    for name in sorted(cli.COMMANDS):
        argv, expected = OWN_CHECKS.get(name, (["bogus_key=1"], f"vla {name}: unknown key '"))
        cases.append(([*name.split(), *argv], expected))
    return cases + MORE_OWN_CHECKS


def test_the_bad_argument_table_covers_every_command():
    covered = {cli.resolve(argv)[0] for argv, _ in _bad_argument_cases()}
    assert covered == set(cli.COMMANDS)


@pytest.mark.parametrize(
    ("argv", "expected"), _bad_argument_cases(), ids=lambda x: " ".join(x) if isinstance(x, list) else None
)
def test_every_command_rejects_a_bad_argument_in_one_line(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), captured.err
    assert "error:" not in err[0] and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written for a bad argument


# Each kind of bad argument, for every command it applies to: one line on stderr, exit code 2, nothing
# written (issue 20). `NOT_APPLICABLE` says which kinds a command cannot meet, so a command added to
# `cli.COMMANDS`, or a kind dropped from a command, fails the coverage test below.
KINDS = ("unknown key", "wrong type", "unknown choice", "missing value", "no such path")
BAD_ARGUMENT_KINDS: dict[str, dict[str, tuple[list[str], str]]] = {
    "collect": {
        "unknown key": (["episods=3"], "vla collect: unknown key 'episods' (did you mean 'episodes'?)"),
        "wrong type": (["episodes=many"], "vla collect: bad value for 'episodes'"),
        "unknown choice": (["task=pik"], "vla collect: unknown task 'pik' (did you mean 'pick'?)"),
    },
    "train": {
        "unknown key": (["trainer.stpes=5"], "vla train: unknown key 'trainer.stpes'"),
        "wrong type": (["trainer.steps=abc"], "vla train: bad value for 'trainer.steps'"),
        "unknown choice": (["model=nope"], "vla train: unknown model 'nope'; choose one of:"),
        "no such path": (["none.zarr"], "vla train: training store not found: none.zarr"),
    },
    "eval": {
        "unknown key": (["episdes=5"], "vla eval: unknown key 'episdes' (did you mean 'episodes'?)"),
        "wrong type": (["episodes=many"], "vla eval: bad value for 'episodes'"),
        "unknown choice": (["policy=nope"], "vla eval: unknown policy 'nope'"),
        "no such path": (["checkpoint=nowhere"], "vla eval: checkpoint directory not found"),
    },
    "demo": {
        "unknown key": (["stpes=3"], "vla demo: unknown key 'stpes' (did you mean 'steps'?)"),
        "wrong type": (["steps=abc"], "vla demo: bad value for 'steps'"),
        "unknown choice": (["preset=nope"], "vla demo: unknown preset 'nope'; choose one of:"),
    },
    "goals": {
        "unknown key": (["train", "train.stpes=3"], "vla goals: unknown key 'train.stpes'"),
        "wrong type": (["train", "train.steps=abc"], "vla goals: bad value for 'train.steps'"),
        "unknown choice": (["generate", "generate.tasks=[nope]"], "vla goals: unknown task 'nope'"),
        "missing value": ([], "vla goals: missing subcommand (usage: vla goals {generate|train|sample}"),
        "no such path": (["train", "train.data=none.npz"], "vla goals: goal-scene file not found: none.npz"),
    },
    "tokenizer fit": {
        "unknown key": (["a.npy", "holdot=0"], "vla tokenizer fit: unknown key 'holdot'"),
        "wrong type": (["a.npy", "holdout=abc"], "vla tokenizer fit: bad value for 'holdout'"),
        "unknown choice": (["a.npy", "tokenizer=nope"], "vla tokenizer fit: unknown tokenizer 'nope'"),
        "missing value": ([], "vla tokenizer fit: missing value for 'source'"),
        "no such path": (["missing.zarr"], "vla tokenizer fit: action source not found: missing.zarr"),
    },
    "tokenizer report": {
        "unknown key": (["t.json", "a.npy", "jsn_out=x"], "vla tokenizer report: unknown key 'jsn_out'"),
        "wrong type": (["t.json", "a.npy", "max_episodes=x"], "vla tokenizer report: bad value for"),
        "missing value": ([], "vla tokenizer report: missing value for 'path'"),
        "no such path": (["t.json", "a.npy"], "vla tokenizer report: action tokenizer file not found"),
    },
    "dataset info": {
        "unknown key": (["a.zarr", "stat=true"], "vla dataset info: unknown key 'stat'"),
        "wrong type": (["a.zarr", "stats=maybe"], "vla dataset info: bad value for 'stats'"),
        "missing value": ([], "vla dataset info: missing value for 'PATH'"),
        "no such path": (["missing.zarr"], "vla dataset info: episode store not found"),
    },
    "dataset view": {
        "unknown key": (["a.zarr", "sise=64"], "vla dataset view: unknown key 'sise' (did you mean 'size'?)"),
        "wrong type": (["a.zarr", "size=abc"], "vla dataset view: bad value for 'size'"),
        "missing value": ([], "vla dataset view: missing value for 'path'"),
        "no such path": (["missing.zarr"], "vla dataset view: episode store not found"),
    },
    "dataset verify": {
        "unknown key": (["a.zarr", "deep=1"], "vla dataset verify: unknown key 'deep'"),
        "missing value": ([], "vla dataset verify: missing value for 'STORE'"),
        "no such path": (["missing.zarr"], "vla dataset verify: episode store not found"),
    },
    "import lerobot": {
        "unknown key": (["d", "episode=[1]"], "vla import lerobot: unknown key 'episode'"),
        "wrong type": (["d", "episodes=abc"], "vla import lerobot: bad value for 'episodes'"),
        "unknown choice": (
            ["d", "image_compression=gzip"],
            "vla import lerobot: unknown image_compression 'gzip'; choose one of: lz4, zstd",
        ),
        "missing value": ([], "vla import lerobot: missing value for 'path'"),
        "no such path": (["missing_dir"], "vla import lerobot: LeRobot dataset directory not found"),
    },
    "export lerobot": {
        "unknown key": (["a.zarr", "codc=mpeg4"], "vla export lerobot: unknown key 'codc'"),
        "wrong type": (["a.zarr", "crf=abc"], "vla export lerobot: bad value for 'crf'"),
        "unknown choice": (["a.zarr", "codec=nope"], "vla export lerobot: unknown codec 'nope'"),
        "missing value": ([], "vla export lerobot: missing value for 'path'"),
        "no such path": (["missing.zarr", "out=x"], "vla export lerobot: episode store not found"),
    },
    "import rosbag": {
        "unknown key": (["bag", "out=s.zarr", "camra=x"], "vla import rosbag: unknown key 'camra'"),
        "wrong type": (["bag", "out=s.zarr", "rate_hz=abc"], "vla import rosbag: bad value for 'rate_hz'"),
        "unknown choice": (["bag", "out=s.zarr", "robot=ur9"], "vla import rosbag: unknown robot 'ur9'"),
        "missing value": (["bag"], "vla import rosbag: missing value for 'out'"),
        "no such path": (
            ["nobag", "out=s.zarr"],
            "vla import rosbag: rosbag2 directory not found (no metadata.yaml): nobag",
        ),
    },
    "vqa generate": {
        "unknown key": (["v", "scene=3"], "vla vqa generate: unknown key 'scene' (did you mean 'scenes'?)"),
        "wrong type": (["v", "scenes=abc"], "vla vqa generate: bad value for 'scenes'"),
        "unknown choice": (["v", "split=val"], "vla vqa generate: unknown split 'val'"),
    },
    "eval-vqa": {
        "unknown key": (["q.json", "predictons=p"], "vla eval-vqa: unknown key 'predictons'"),
        "wrong type": (["q.json", "batch_size=abc"], "vla eval-vqa: bad value for 'batch_size'"),
        "unknown choice": (["data=nope"], "vla eval-vqa: unknown data 'nope'; choose one of:"),
        "missing value": (["q.json"], "vla eval-vqa: give exactly one of checkpoint=DIR or predictions="),
        "no such path": (["q.json", "predictions=p.jsonl"], "vla eval-vqa: data.path: file not found"),
    },
    "ros2 run": {
        "unknown key": (["rate=5"], "vla ros2 run: unknown key 'rate'"),
        "wrong type": (["rate_hz=abc"], "vla ros2 run: bad value for 'rate_hz'"),
        "unknown choice": (["policy=nope"], "vla ros2 run: unknown policy 'nope'"),
        "no such path": (["checkpoint=nowhere"], "vla ros2 run: checkpoint directory not found"),
    },
    "ros2 eval": {
        "unknown key": (["episods=2"], "vla ros2 eval: unknown key 'episods'"),
        "wrong type": (["episodes=many"], "vla ros2 eval: bad value for 'episodes'"),
        "unknown choice": (["tasks=[pik]"], "vla ros2 eval: unknown task 'pik'"),
        "no such path": (["checkpoint=nowhere"], "vla ros2 eval: checkpoint directory not found"),
    },
    "ros2 sim-robot": {
        "unknown key": (["episods=1"], "vla ros2 sim-robot: unknown key 'episods'"),
        "wrong type": (["rate_hz=abc"], "vla ros2 sim-robot: bad value for 'rate_hz'"),
        "unknown choice": (["task=nope"], "vla ros2 sim-robot: unknown task 'nope'; choose one of:"),
    },
    "model-info": {
        "unknown key": (["tiny", "bogus_key=1"], "vla model-info: unknown key 'model.bogus_key'"),
        "wrong type": (["tiny", "vision.image_size=abc"], "vla model-info: bad value for"),
        "unknown choice": (["nope"], "vla model-info: unknown model preset 'nope'"),
        "missing value": ([], "vla model-info: missing value for 'PRESET'"),
    },
    "show-config": {
        "unknown key": (["collect", "episods=3"], "vla show-config: unknown key 'episods'"),
        "wrong type": (["collect", "episodes=abc"], "vla show-config: bad value for 'episodes'"),
        "unknown choice": (["nope"], "vla show-config: unknown name 'nope'"),
        "missing value": ([], "usage: vla show-config COMMAND|CONFIG"),
    },
}
# Kinds a command cannot meet: it has no required value (every key has a default), reads no input path,
# or offers no choice (dataset view's cameras and episodes are the store's: tests/vla/commands/).
NOT_APPLICABLE: dict[str, set[str]] = {
    "collect": {"missing value", "no such path"},
    "train": {"missing value"},  # data.path defaults to the README's store
    "eval": {"missing value"},
    "demo": {"missing value", "no such path"},
    "tokenizer report": {"unknown choice"},
    "dataset info": {"unknown choice"},
    "dataset view": {"unknown choice"},
    "dataset verify": {"wrong type", "unknown choice"},
    "vqa generate": {"missing value", "no such path"},
    "ros2 run": {"missing value"},
    "ros2 eval": {"missing value"},
    "ros2 sim-robot": {"missing value", "no such path"},
    "model-info": {"no such path"},
    "show-config": {"no such path"},
}


def test_every_command_meets_every_kind_of_bad_argument_that_applies():
    assert set(BAD_ARGUMENT_KINDS) == set(cli.COMMANDS)
    for name, cases in BAD_ARGUMENT_KINDS.items():
        skipped = NOT_APPLICABLE.get(name, set())
        assert not set(cases) & skipped and set(cases) | skipped == set(KINDS), name


@pytest.mark.parametrize(
    ("name", "kind"), [(name, kind) for name, cases in BAD_ARGUMENT_KINDS.items() for kind in cases]
)
def test_each_kind_of_bad_argument_is_one_line_and_exit_2(name, kind, tmp_path, monkeypatch, capsys):
    argv, expected = BAD_ARGUMENT_KINDS[name][kind]
    monkeypatch.chdir(tmp_path)
    assert cli.main([*name.split(), *argv]) == 2, capsys.readouterr().err
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), captured.err
    assert "error:" not in err[0] and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written for a bad argument
