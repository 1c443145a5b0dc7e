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
