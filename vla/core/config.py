"""Hydra configuration: dataclass schemas in the ConfigStore, YAML presets in `configs/`, overrides.

Each command module declares its schema with `@register_config("<name>")` on a dataclass; importing the
module registers it (no initialisation step). A YAML preset `configs/<name>.yaml` lists
`defaults: [<name>_schema, ...groups..., _self_]`, so hydra validates the YAML against the dataclass.

    cfg = compose("collect", ["task=pick", "episodes=20"])   # DictConfig, typed by the schema
    save_resolved(cfg, run_dir)                               # run_dir/config.yaml, atomically

Command-line form (see `vla.cli`): `vla collect task=pick episodes=20`. A bad override (unknown key, wrong
type, unknown group choice, missing value) is raised as one `ConfigError` line with a "did you mean";
a command's own checks of its arguments raise `ConfigError` too (directly, or through `argument_checks`),
so the CLI prints every bad argument as one line and exits with code 2. `field_docs` reads a schema's
field comments for `vla CMD --help`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import io
import math
import os
import re
import tokenize
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from vla.core.io import atomic_write_text

T = TypeVar("T")


def config_dir() -> Path:
    """Directory of the YAML presets: package data `vla/configs`, or the repo's `configs/`."""
    env = os.environ.get("VLA_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]  # the `vla` package
    for cand in (here / "configs", here.parent / "configs"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"no configs directory found next to {here} (set VLA_CONFIG_DIR)")


def register_config(name: str, group: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: store a dataclass schema in hydra's ConfigStore as `<name>_schema`."""

    def deco(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"@register_config expects a dataclass, got {cls!r}")
        ConfigStore.instance().store(name=f"{name}_schema", node=cls, group=group)
        return cls

    return deco


class ConfigError(ValueError):
    """A bad override or config value, as one line; `kind` is unknown-key, unknown-choice, bad-value,
    missing or syntax, `key` the dotted key it concerns."""

    def __init__(self, message: str, key: str = "", kind: str = "bad-value") -> None:
        super().__init__(message)
        self.key = key
        self.kind = kind


@contextlib.contextmanager
def argument_checks(key: str = "", kind: str = "bad-value") -> Iterator[None]:
    """Checks of a command's own arguments run inside this block: the ValueError, FileNotFoundError or
    KeyError one raises leaves it as a `ConfigError` (its first line, the original as its cause), which
    the CLI prints as one line with exit code 2. Wrap only validation that runs before any work starts,
    never the work itself: a failure there is not a bad argument."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError, KeyError) as e:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise ConfigError(first, key=key, kind=kind) from e


def check_number(
    value: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> None:
    """A number argument of a command: finite and within [low, high] (low excluded with `low_open`), else
    a ConfigError naming `key` and the range (one line, exit 2): `rate_hz must be > 0, got -1.0`,
    `duration_s must be a finite number >= 0, got nan`. NaN passes every comparison, so a check written
    as `if value < 0: refuse` lets it through; this one does not."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    finite = number and math.isfinite(value)
    if (
        finite
        and (low is None or (value > low if low_open else value >= low))
        and (high is None or value <= high)
    ):
        return

    def text(x: float) -> str:  # 1000 and 2147483647 as written, 0.5 and 1e+30 as :g writes them
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"

    if low is not None and high is not None:
        rule = f"in {'(' if low_open else '['}{text(low)}, {text(high)}]"
    elif low is not None:
        rule = f"{'>' if low_open else '>='} {text(low)}"
    else:
        rule = f"<= {text(high)}" if high is not None else "a number"
    rule = rule if finite or rule == "a number" else f"a finite number {rule}"
    raise ConfigError(f"{key} must be {rule}, got {value!r}", key)


NAME_MAX = 255  # bytes of one file name (Linux, macOS)
PATH_MAX = 4096  # bytes of a whole path


def check_path_name(value: Any, key: str) -> None:
    """A path argument the file system can name at all: no component over NAME_MAX bytes and at most
    PATH_MAX in all, else a ConfigError naming `key` (where `Path(value).exists()` raises
    `OSError: File name too long`). None and "" pass (the command decides what they mean)."""
    if not value:
        return
    text = str(value)
    longest = max(len(part.encode()) for part in text.split("/"))
    if longest > NAME_MAX or len(text.encode()) >= PATH_MAX:
        raise ConfigError(
            f"{key}={shown(text)} is too long for a path (at most {NAME_MAX} bytes a name, "
            f"{PATH_MAX - 1} in all)",
            key,
        )


def shown(value: str, width: int = 40) -> str:
    """A value as a message shows it: a 5000-character one shortened to `width` (`xxxx...` (5000 chars))."""
    return value if len(value) <= width else f"{value[: width - 3]}... ({len(value)} characters)"


def group_choices(group: str) -> list[str]:
    """The YAML presets of a config group (`task` -> ['arrange', ..., 'stack_goal']), no schema entries."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config, nested ones included (`trainer`, `trainer.steps`, ...)."""
    out: list[str] = []
    if not OmegaConf.is_dict(cfg):
        return out
    for key in cfg.keys():
        name = f"{prefix}{key}"
        out.append(name)
        if not OmegaConf.is_missing(cfg, key) and OmegaConf.is_dict(cfg._get_node(key)):
            out += config_keys(cfg._get_node(key), prefix=f"{name}.")
    return out


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _keys_of(config_name: str) -> list[str]:
    """The keys of a config as composed without overrides (empty if even that fails)."""
    try:
        return config_keys(compose(config_name))
    except (ValueError, HydraException, OmegaConfBaseException):
        return []


def config_error(exc: BaseException, config_name: str) -> ConfigError:
    """A hydra/omegaconf error of composing `config_name` as one readable line, with a suggestion."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MissingConfigException):
        m = re.search(r"Could not find '([^']+)/([^'/]*)'", str(exc))
        if m:
            group, choice = m.group(1), m.group(2)
            choices = group_choices(group)
            listed = ", ".join(choices)
            return ConfigError(
                f"unknown {group} '{choice}'{_did_you_mean(choice, choices)}; choose one of: {listed}",
                key=group,
                kind="unknown-choice",
            )
    if isinstance(exc, OverrideParseException):
        return ConfigError(f"cannot parse the arguments ({first}); overrides are key=value", kind="syntax")
    m = re.search(r"Could not override '([^']+)'", str(exc))
    if m:
        key = m.group(1)
        return ConfigError(
            f"unknown key '{key}'{_did_you_mean(key, _keys_of(config_name))}", key, "unknown-key"
        )
    if isinstance(cause, MissingMandatoryValue):
        return missing_error(cause)
    key = str(getattr(cause, "full_key", "") or "")
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else first
    if key:
        return ConfigError(f"bad value for '{key}': {detail}", key, "bad-value")
    return ConfigError(detail, kind="bad-value")


def missing_error(exc: MissingMandatoryValue) -> ConfigError:
    key = str(getattr(exc, "full_key", "") or "")
    return ConfigError(f"missing value for '{key}'", key, "missing")


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `configs/<config_name>.yaml` with command-line style `key=value` overrides.

    A bad override raises `ConfigError` (a ValueError): one line, with a "did you mean" where one fits."""
    path = config_dir()
    if not (path / f"{config_name}.yaml").is_file():
        known = sorted(p.stem for p in path.glob("*.yaml"))
        raise ValueError(f"unknown config {config_name!r} in {path}; expected one of {known}")
    overrides, fields = _field_overrides(path, config_name, overrides)
    _check_group_names(path, overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(path), version_base=None):
            cfg = _hydra_compose(config_name=config_name, overrides=list(overrides))
            for key, value in fields:
                if key not in cfg:
                    raise ConfigError(
                        f"unknown key '{key}'{_did_you_mean(key, list(cfg))}", key, "unknown-key"
                    )
                OmegaConf.update(cfg, key, value, merge=False)
    except (HydraException, OmegaConfBaseException) as e:
        error = config_error(e, config_name)
        if not error.key and error.kind == "bad-value":
            error = _naming_the_key(error, path, config_name, overrides)
        raise error from e
    except ValueError as e:  # hydra's own: a group choice that parses as a number (`task=nan`)
        if isinstance(e, ConfigError) or "Config group override" not in str(e):
            raise
        groups = [o.partition("=") for o in overrides if (path / o.partition("=")[0]).is_dir()]
        key, _, value = next((g for g in groups if g[2] not in group_choices(g[0])), groups[0])
        raise ConfigError(
            f"unknown {key} '{value}'; choose one of: {', '.join(group_choices(key))}", key, "unknown-choice"
        ) from e
    return cfg


def _naming_the_key(
    error: ConfigError, path: Path, config_name: str, overrides: Sequence[str]
) -> ConfigError:
    """`error` (an omegaconf message that names no key: `Cannot assign float to Dict[str, Any]` for
    `mixture=[nan]`) with the key of the first override that fails on its own, found by composing again
    with one override at a time (only on this error path)."""
    for override in overrides:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(path), version_base=None):
                _hydra_compose(config_name=config_name, overrides=[override])
        except (HydraException, OmegaConfBaseException, ValueError):
            key = override.partition("=")[0].lstrip("+~")
            return ConfigError(f"bad value for '{key}': {error}", key, error.kind)
    return error


def _groups_used(path: Path, config_name: str) -> set[str]:
    """The config groups a preset's defaults list selects (`collect.yaml`: env, task)."""
    defaults = OmegaConf.load(path / f"{config_name}.yaml").get("defaults", []) or []
    used = set()
    for entry in defaults:
        for key in entry.keys() if isinstance(entry, (dict, DictConfig)) else ():
            used.add(str(key).split()[-1].lstrip("/").split("@")[0])
    return used


def _field_overrides(
    path: Path, config_name: str, overrides: Sequence[str]
) -> tuple[list[str], list[tuple[str, Any]]]:
    """Split off the overrides of a plain field whose name is also a config group the preset does not use
    (`vla import lerobot task=stack`, `vla eval-vqa task=vqa`: hydra takes `task=` for the group
    configs/task/ and refuses it, "unknown key 'task'"). Returns (hydra's overrides, [(key, value)] to
    set after composing, the value typed as hydra types it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    rest: list[str] = []
    fields: list[tuple[str, Any]] = []
    used: set[str] | None = None
    for override in overrides:
        key, sep, _ = override.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_]\w*", key) and (path / key).is_dir():
            used = _groups_used(path, config_name) if used is None else used
            if key not in used:
                try:
                    parsed = OverridesParser.create().parse_override(override)
                except HydraException as e:
                    raise config_error(e, config_name) from e
                fields.append((key, parsed.value()))
                continue
        rest.append(override)
    return rest, fields


def _check_group_names(path: Path, overrides: Sequence[str]) -> None:
    """A config group choice longer than a file name can be (`preset=<5000 characters>`) is an unknown
    choice, said before hydra looks for its file (where it would be `OSError: File name too long`)."""
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and len(value.encode()) > 255 and (path / key).is_dir():
            choices = group_choices(key)
            raise ConfigError(
                f"unknown {key} '{shown(value)}'; choose one of: {', '.join(choices)}", key, "unknown-choice"
            )


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its description in a dataclass's source: `metadata["help"]`, else the trailing
    `# comment` on the field's line, else the comment lines right above it (base classes included)."""
    docs: dict[str, str] = {}
    for klass in reversed([c for c in getattr(cls, "__mro__", ()) if dataclasses.is_dataclass(c)]):
        docs.update(_source_field_comments(klass))
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            help_ = f.metadata.get("help") or f.metadata.get("doc")
            if help_:
                docs[f.name] = str(help_)
    return docs


_FIELD_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*:(?!=)")


def _source_field_comments(cls: type) -> dict[str, str]:
    """Comments of the fields declared in one class body (no inheritance); {} without source."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    lines = src.splitlines()
    body_indent: str | None = None
    out: dict[str, str] = {}
    for i, line in enumerate(lines, start=1):
        m = _FIELD_LINE.match(line)
        if not m or m.group(2) not in names or not m.group(1):
            continue
        body_indent = m.group(1) if body_indent is None else body_indent
        if m.group(1) != body_indent:
            continue
        text = comments.get(i, "")
        if not text:  # a comment block directly above the field
            above: list[str] = []
            j = i - 1
            while j >= 1 and j in comments and lines[j - 1].strip().startswith("#"):
                above.insert(0, comments[j])
                j -= 1
            text = " ".join(above)
        if text:
            out[m.group(2)] = text
    return out


def to_dataclass(cfg: DictConfig, cls: type[T]) -> T:
    """Turn a composed config into its schema dataclass (a plain, typed object for library code)."""
    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise missing_error(e) from e
    if isinstance(obj, cls):
        return obj
    if isinstance(obj, dict):
        return cls(**obj)
    raise TypeError(f"cannot convert config to {cls.__name__}: got {type(obj).__name__}")


def to_yaml(cfg: Any) -> str:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_resolved(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the fully resolved config next to a run's outputs (atomically)."""
    return atomic_write_text(Path(out_dir) / name, to_yaml(cfg))


def split_positionals(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """Positionals to overrides: (['d/x', 'a=1'], ['path']) -> ['path=d/x', 'a=1']."""
    out: list[str] = []
    pos = [a for a in argv if "=" not in a]
    rest = [a for a in argv if "=" in a]
    if len(pos) > len(names):
        raise ValueError(f"unexpected arguments {pos[len(names) :]}; expected key=value overrides")
    out += [f"{n}={v}" for n, v in zip(names, pos)]
    return out + rest
