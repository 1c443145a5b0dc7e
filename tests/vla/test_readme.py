"""The README runs as written. Its ```bash blocks are read line by line (continuations joined, comments
dropped) and checked against the CLI in the default run: every `vla` line names a command of
`vla.cli.COMMANDS`, its positionals and overrides compose against the command's config schema (an unknown
key or a bad value fails, as `vla show-config` would), named policies and tasks are in their registries,
and every input a line reads (a store, a bag, a checkpoint) is written by an earlier line, so the blocks
paste top to bottom. The "Python API" blocks run as written (in-process, in a temporary directory that
holds a tiny `outputs/train/pick` run the test trains). `test_readme_shell_blocks_run_in_order_shrunk`
(about 80 s on 2 cores, in the default run) runs every shell line for real in a temporary directory,
in order, with sizes shrunk by overrides appended to each line (episodes, steps, image size, durations).

    python -m pytest tests/vla/test_readme.py                 # parse, Python API, every command shrunk
    python -m pytest tests/vla/test_readme.py -k "not shrunk" # parse + Python API only (~20 s)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import sim
from vla import cli
from vla.core.config import compose, split_positionals
from vla.core.policy import list_policies
from vla.models.vla import VLA

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Lines the shrunk run leaves out: the two main commands set up .venv and run the demo or the whole test
# suite (each is its own job), and the torchrun line needs a cluster and a pretrained backbone.
NOT_RUN = ("bash", "torchrun")

# Overrides appended to a README line in the shrunk run (hydra: the last value of a key wins).
SHRINK: dict[str, list[str]] = {
    "collect": ["episodes=6", "num_envs=1", "env.image_size=32"],
    "dataset view": ["size=64"],
    "train": ["trainer.steps=2", "trainer.batch_size=4", "trainer.progress=false"],
    "eval": [
        "episodes=1",
        "num_envs=1",
        "env.image_size=32",
        "references=[]",
        "failure_videos=0",
        "success_videos=0",
        "progress=false",
    ],
    # the robot renders at the size the README's policy was trained at (64 px): a smaller image would be
    # held by the node as an input mismatch, and the line would "run" without a single command
    "ros2 sim-robot": ["rate_hz=20"],
    "ros2 run": ["duration_s=8", "rate_hz=20"],
}
INPUT_KEYS = ("data.path", "source", "path", "bag", "checkpoint")
OUTPUT_KEYS = ("out", "record")


@dataclass(frozen=True)
class Line:
    text: str  # as written (continuations joined)
    argv: list[str]  # shell words, the trailing `&` removed
    background: bool

    @property
    def vla_args(self) -> list[str] | None:
        """The arguments after `vla` (or `torchrun ... -m vla.cli`); None for other programs."""
        if self.argv[0] == "vla":
            return self.argv[1:]
        if self.argv[0] == "torchrun" and "vla.cli" in self.argv:
            return self.argv[self.argv.index("vla.cli") + 1 :]
        return None

    @property
    def name(self) -> str:
        args = self.vla_args
        if not args:
            return ""
        try:
            return cli.resolve(args)[0]
        except KeyError:
            raise AssertionError(f"`{self.text}`: no such command in vla.cli.COMMANDS") from None


def shell_lines(text: str) -> list[Line]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for raw in re.sub(r"\\\n", " ", block).splitlines():
            words = shlex.split(raw, comments=True)
            if words:
                background = words[-1] == "&"
                lines.append(Line(raw.strip(), words[:-1] if background else words, background))
    return lines


def python_blocks(text: str, section: str) -> list[str]:
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


LINES = shell_lines(README.read_text())


def _settings(line: Line) -> dict[str, str]:
    """key -> value of a `vla` line: its overrides plus its positionals under the keys they set."""
    name, rest = line.name, (line.vla_args or [])[len(line.name.split()) :]
    keys = cli.CONFIGS.get(name, ("", "", ()))[2] or ("path",)
    return dict(a.lstrip("+").split("=", 1) for a in split_positionals(rest, keys))


def test_readme_has_the_commands_a_new_user_needs():
    names = [line.name for line in LINES]
    for needed in ("collect", "dataset info", "dataset view", "train", "eval", "import rosbag", "ros2 run"):
        assert needed in names, f"README shell blocks lost `vla {needed}`"
    assert [line.text for line in LINES[:2]] == [
        "bash scripts/demo.sh     # set up .venv (first run: ~2 minutes), then run the main job: `vla demo`",
        "bash scripts/test.sh     # set up .venv, then run the test suite (pytest)",
    ]


@pytest.mark.parametrize("line", LINES, ids=[f"{i:02d}-{line.argv[0]}" for i, line in enumerate(LINES)])
def test_every_readme_line_parses_against_the_cli(line):
    if line.argv[0] == "bash":
        script = ROOT / line.argv[1]
        assert script.is_file(), f"{line.text}: no {script}"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        return
    args = line.vla_args
    assert args, f"{line.text}: only `vla`, `torchrun -m vla.cli` and `bash scripts/...` lines are expected"
    name, rest = line.name, args[len(line.name.split()) :]
    config, _, keys = cli.CONFIGS.get(name, ("", "", ()))
    if config:
        cli.register_all_schemas()
        compose(config, split_positionals(rest, keys))  # ConfigError: unknown key, bad value or choice
    settings = _settings(line)
    if "policy" in settings:
        assert settings["policy"] in list_policies()
    if "tasks" in settings:
        assert set(settings["tasks"].strip("[]").split(",")) <= set(sim.list_tasks())


def test_readme_lines_read_only_what_earlier_lines_wrote():
    """A store, bag or checkpoint a line reads is written (`out=`, `record=`) by an earlier line."""
    made: list[Path] = []
    for line in LINES:
        if line.vla_args is None:
            continue
        settings = _settings(line)
        for key in INPUT_KEYS:
            value = settings.get(key)
            if value is None or value.isupper():  # an all-caps placeholder (the cluster line's STORE)
                continue
            path = Path(value)
            ok = any(path == m or m in path.parents for m in made) or (ROOT / path).exists()
            assert ok, f"`{line.text}` reads {key}={value}, which no earlier README line writes"
        made += [Path(settings[k]) for k in OUTPUT_KEYS if k in settings]


def test_readme_ros2_lines_end_by_themselves():
    """Pasted in order, the robot waits for the node, and the node stops: no line runs forever."""
    for line in LINES:
        settings = _settings(line) if line.vla_args else {}
        if line.name == "ros2 sim-robot":
            assert float(settings.get("wait_for_command_s", 0)) > 0 and line.background, line.text
            assert settings.get("episodes", "1") != "0", line.text
        if line.name == "ros2 run":
            assert float(settings.get("duration_s", 0)) > 0 or int(settings.get("max_steps", 0)) > 0, (
                line.text
            )


@contextlib.contextmanager
def one_torch_thread():
    """Torch on one thread: two threads on a busy 2-core machine cost 10x in spin-waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run_dir(tmp_path_factory):
    """A directory holding `outputs/train/pick`: a tiny VLA trained for 2 steps on 2 collected episodes."""
    root = tmp_path_factory.mktemp("readme_api")
    store, run = root / "outputs/demos/pick.zarr", root / "outputs/train/pick"
    assert cli.main(["collect", "task=pick", "episodes=2", "env.image_size=32", f"out={store}"]) == 0
    args = ["train", str(store), f"out={run}", "val_episodes=0", "trainer.steps=2", "trainer.batch_size=4"]
    args += ["model.vision.image_size=32", "model.vision.hf.patch_size=8", "trainer.progress=false"]
    with one_torch_thread():
        assert cli.main(args) == 0
    return root


def test_python_api_blocks_run_as_written(tiny_run_dir, monkeypatch):
    blocks = python_blocks(README.read_text(), "Python API")
    assert len(blocks) == 2
    episode, registries = blocks
    assert len([s for s in episode.splitlines() if s.strip()]) < 10, "the quick start stays under 10 lines"
    monkeypatch.chdir(tiny_run_dir)
    out = io.StringIO()
    for block in blocks:
        with contextlib.redirect_stdout(out), one_torch_thread():
            exec(compile(block, "README.md (Python API)", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue()
    assert re.search(r"^picked: (True|False)$", printed, re.M), printed
    for name in ("vla", "expert", "pick_colour", "fast", "tiny_vla_film", "siglip"):
        assert f"'{name}'" in printed, f"{name} missing from the registry listing:\n{printed}"


def test_vla_from_pretrained_takes_a_run_directory(tiny_run_dir):
    run = tiny_run_dir / "outputs/train/pick"
    latest = max((run / "checkpoints").glob("step_*"))
    a, b = VLA.from_pretrained(run).state_dict(), VLA.from_pretrained(latest).state_dict()
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint directory"):
        VLA.from_pretrained(tiny_run_dir / "outputs")


def _program(line: Line) -> list[str]:
    """`vla ...` as the venv's `vla` script when there is one, else `python -m vla.cli ...`."""
    script = Path(sys.executable).with_name("vla")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "vla.cli"]
    return [*head, *line.argv[1:], *SHRINK.get(line.name, [])]


@pytest.mark.timeout(900)
def test_readme_shell_blocks_run_in_order_shrunk(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLA_DEBUG": "1"}
    background: list[tuple[Line, subprocess.Popen]] = []
    for line in LINES:
        if line.argv[0] in NOT_RUN:
            continue
        argv = _program(line)
        if line.background:
            proc = subprocess.Popen(
                argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            background.append((line, proc))
            continue
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (
            f"`{line.text}` (shrunk: {argv[1:]}) failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
        if line.name == "ros2 run":  # the node drove the robot: it sent commands, it did not only hold
            sent = re.search(r"vla ros2 run: (\d+) commands in", r.stdout + r.stderr)
            assert sent and int(sent.group(1)) > 0, f"`{line.text}` sent no command:\n{r.stderr[-3000:]}"
        for bg_line, proc in background:  # a background robot ends with its episode
            text = proc.communicate(timeout=180)[0].decode(errors="replace")
            assert proc.returncode == 0, f"`{bg_line.text}` failed:\n{text[-3000:]}"
        background = []
    assert not background, "a background line was left running at the end of the README"
    out = tmp_path / "outputs"
    for made in ("view/pick/contact_sheet.png", "view/pick/episode_0005.mp4", "teleop.zarr", "bag1"):
        assert (out / made).exists(), f"outputs/{made} was not written"
    for run in ("pick", "pick_l1", "pick_static"):
        assert (out / "train" / run / "checkpoints").is_dir()
