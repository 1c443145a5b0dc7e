"""Probe: every command with hostile values (issue 21: "20 commands print raw tracebacks for bad arguments",
"7 cryptic one-liners"). A value that is NaN, negative, huge, of the wrong type or empty, a directory where
a file is expected or a file where a directory is expected, is one line on stderr naming what is wrong,
exit code 2 (a bad argument) or 1 (an input the command met), and no traceback. Each case runs the real
command in this process and stops before any real work (the value is checked first).

The cases after the first block are the scan's findings (docs/robustness.md, section 2): each was a
traceback, a hang, a cryptic line or a value accepted silently, and is now one line naming the key and its
range."""

from __future__ import annotations

import re

import pytest

from tests.adversarial.conftest import tiny_store


def case(argv: list[str], expected: str) -> object:
    """One case, named by its command line (long values shortened)."""
    name = " ".join(a if len(a) < 40 else a[:12] + "..." for a in argv)
    return pytest.param(argv, expected, id=name)


TRAIN = ["train", "{store}", "out={nope}", "cameras=[front]", "procs=1", "trainer.progress=false"]
# (argv with {store}, {file}, {dir}, {nope} placeholders, the one line it must print)
CASES = [
    # a file where a directory is expected: the atomic writers (vla.core.io) say so, for every command
    case(
        ["eval", "policy=random", "references=[]", "episodes=1", "out={file}"],
        r"cannot write {file}/config\.yaml: {file} is a file, not a directory",
    ),
    case(
        ["demo", "episodes=1", "out={file}"],
        r"cannot write {file}/config\.yaml: {file} is a file, not a directory",
    ),
    case(["collect", "episodes=1", "out={file}/s.zarr"], r"{file} is a file, not a directory"),
    case(["dataset", "view", "{store}", "out={file}"], r"out={file} is a file; expected a directory"),
    case(["tokenizer", "fit", "{file}"], r"{file}: expected an episode store directory, \.npy or \.npz file"),
    case(["tokenizer", "report", "{file}", "{store}"], r"action tokenizer file {file} is not valid JSON"),
    case(["import", "lerobot", "{file}", "out={nope}"], r"LeRobot dataset directory not found: {file}"),
    case(
        ["eval", "checkpoint={file}", "policy=vla", "episodes=1"], r"{file} is neither a checkpoint directory"
    ),
    # a directory (or nothing) where a file or a store is expected
    case(["dataset", "info", "{dir}"], r"episode store not found \(no zarr\.json\): {dir}"),
    case(["dataset", "verify", "{dir}"], r"episode store not found \(no zarr\.json\): {dir}"),
    case(
        ["import", "rosbag", "{dir}", "out={nope}"],
        r"rosbag2 directory not found \(no metadata\.yaml[^)]*\): {dir}",
    ),
    case(["train", "{dir}", "out={nope}"], r"episode store not found \(no zarr\.json\): {dir}"),
    case(["eval-vqa", "data.path={dir}", "predictions={file}"], r"data\.path: file not found: {dir}"),
    # NaN, negative, huge, wrong type, empty
    case(["collect", "episodes=-1", "out={nope}"], r"episodes must be >= 1, got -1"),
    case(["collect", "episodes=nan", "out={nope}"], r"bad value for 'episodes'"),
    case(
        ["collect", "env.image_size=16384", "episodes=1", "out={nope}"],
        r"env\.image_size=16384 is above the limit",
    ),
    case(
        ["train", "{store}", "out={nope}", "cameras=[front]", "trainer.steps=-1"],
        r"steps, batch_size and grad_accum must all be >= 1",
    ),
    case(
        ["train", "{store}", "out={nope}", "cameras=[front]", "trainer.lr=abc"],
        r"bad value for 'trainer\.lr'",
    ),
    case(TRAIN + ["trainer.lr=nan"], r"trainer\.lr must be a finite number >= 0, got nan"),
    case(TRAIN + ["trainer.log_every=0"], r"trainer\.log_every must be >= 1, got 0"),
    case(TRAIN + ["trainer.device="], r"trainer\.device: unknown device ''"),
    case(
        ["train", "{store}", "out={file}", "cameras=[front]", "procs=1", "trainer.steps=1"],
        r"cannot write {file}/config\.yaml: {file} is a file, not a directory",
    ),
    case(["eval", "episodes=-1", "policy=random", "references=[]"], r"episodes: expected >= 1, got -1"),
    case(
        ["eval", "video_camera=nan", "policy=random", "references=[]", "episodes=1"],
        r"video_camera='nan': expected one of",
    ),
    case(["demo", "steps=-1", "out={nope}"], r"steps must be >= 1, got -1"),
    case(["goals", "generate", "generate.episodes=-1"], r"generate\.episodes must be >= 1, got -1"),
    case(["export", "lerobot", "{store}", "out={nope}", "chunks_size=-1"], r"chunks_size must be >= 1"),
    case(["vqa", "generate", "{nope}", "scenes=-1"], r"need scenes >= 1"),
    case(["ros2", "run", "rate_hz=-1"], r"rate_hz must be > 0, got -1\.0"),
    case(["ros2", "run", "robot.max_translation=nan"], r"max_translation must be a positive number, got nan"),
    case(["ros2", "sim-robot", "episodes=-1"], r"episodes must be >= 0, got -1"),
    case(["model-info", "nope"], r"unknown model preset 'nope'"),
    # found by the scan of docs/robustness.md (section 2): tracebacks, a hang, cryptic lines and values
    # accepted silently, each now one line naming the key and its range
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", "tokenizer.min_frequency=-1"],
        r"tokenizer\.min_frequency must be an integer in \[0, 2147483647\], got -1",
    ),
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", "tokenizer.min_frequency=1e30"],
        r"tokenizer\.min_frequency must be an integer in \[0, 2147483647\], got 1e\+30",
    ),
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", "tokenizer.vocab_size=1e30"],
        r"tokenizer\.vocab_size must be an integer in \[1, 1048576\], got 1e\+30",
    ),
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", "tokenizer.scale=1e30"],
        r"tokenizer\.scale must be a positive number in \(0, 10000\], got 1e\+30",
    ),
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", "tokenizer.chunk_len=nan"],
        r"tokenizer\.chunk_len must be an integer in \[1, 1024\], got nan",
    ),
    case(
        ["tokenizer", "fit", "{store}", "out={nope}", f"normalizer={'x' * 300}"],
        r"normalizer=x+\.\.\. \(300 characters\) is too long for a path",
    ),
    case(
        ["tokenizer", "report", "{file}", "{store}", f"normalizer={'x' * 5000}"],
        r"normalizer=x+\.\.\. \(5000 characters\) is too long for a path",
    ),
    case(
        ["dataset", "view", "{store}", "out={nope}", "cameras=[]"], r"cameras: expected at least one camera"
    ),
    case(["dataset", "view", "{store}", "out={nope}", "fps=1e30"], r"fps must be in \[0, 1000\], got 1e\+30"),
    case(["dataset", "view", "{store}", "out={nope}", "fps=-1"], r"fps must be in \[0, 1000\], got -1\.0"),
    case(
        ["dataset", "view", "{store}", "out={nope}", "fps=nan"],
        r"fps must be a finite number in \[0, 1000\], got nan",
    ),
    case(["ros2", "run", "robot.urdf={file}"], r"robot\.urdf={file} is not a URDF"),
    case(["ros2", "run", "duration_s=nan"], r"duration_s must be a finite number >= 0, got nan"),
    case(["ros2", "run", "duration_s=inf"], r"duration_s must be a finite number >= 0, got inf"),
    case(["ros2", "run", "rate_hz=inf"], r"rate_hz must be a finite number > 0, got inf"),
    case(["ros2", "sim-robot", "rate_hz=nan"], r"rate_hz must be a finite number > 0, got nan"),
    case(
        ["demo", f"preset={'x' * 5000}", "out={nope}"],
        r"unknown preset 'x+\.\.\. \(5000 characters\)'; choose one of: full, long, pick",
    ),
    case(["demo", "preset=nan", "out={nope}"], r"unknown preset 'nan'; choose one of"),
    case(["demo", "cameras=[]", "out={nope}"], r"cameras=\[\]: expected some of"),
    case(["collect", "task=nan", "out={nope}"], r"unknown task 'nan'; choose one of"),
    case(
        TRAIN + ["tokenizer.action_dim=nan"],
        r"tokenizer\.action_dim must be an integer in \[1, 1024\], got nan",
    ),
    case(
        TRAIN + ["tokenizer.n_bins=1e30"], r"tokenizer\.n_bins must be an integer in \[2, 65536\], got 1e\+30"
    ),
    case(TRAIN + ["tokenizer.low=abc"], r"tokenizer\.low must be a finite number or 7 of them, got 'abc'"),
    case(TRAIN + ["mixture=[nan]"], r"bad value for 'mixture': Cannot assign float"),
    case(TRAIN + ["val_episodes=-1"], r"val_episodes must be >= 0, got -1"),
    case(TRAIN + ["model.lm.hf.num_hidden_layers=nan"], r"model\.lm\.hf\.num_hidden_layers must be a finite"),
    case(TRAIN + ["model.state.hidden=-1"], r"model\.state\.hidden must be >= 0, got -1"),
    case(
        ["model-info", "tiny", "lm.hf.num_hidden_layers=abc"],
        r"model\.lm\.hf\.num_hidden_layers must be a finite number in \[0, 2147483647\], got 'abc'",
    ),
    case(["model-info", "tiny", "lm.hf.tie_word_embeddings=abc"], r"model\.lm\.hf: .*expected bool, got str"),
    case(["model-info", "tiny", "points.name=nope"], r"unknown point-cloud encoder 'nope'"),
    case(["model-info", "tiny", ""], r"OUT_DIR: expected a directory path, got ''"),
    case(["goals", "generate", "generate.out="], r"generate\.out: expected a path, got ''"),
    case(["goals", "generate", "generate.noise=nan"], r"generate\.noise must be a finite number in \[0, 1\]"),
    case(["vqa", "generate", "{nope}", "seed=-1"], r"seed must be >= 0, got -1"),
    case(
        ["vqa", "generate", "{nope}", "concept_rate=nan"], r"concept_rate must be a finite number in \[0, 1\]"
    ),
    case(
        ["vqa", "generate", "{nope}", "questions_per_scene=-1"], r"questions_per_scene must be >= 1, got -1"
    ),
    case(["export", "lerobot", "{store}", "out={nope}", "crf=-1"], r"crf must be in \[0, 51\], got -1"),
    case(["collect", "episodes=1", "noise=nan", "out={nope}"], r"noise must be a finite number in \[0, 1\]"),
    case(TRAIN + ["tokenizer.low=1e30"], r"tokenizer\.low/high must lie within \+-1e\+06"),
    case(
        TRAIN + ["tokenizer.chunk_len=nan"],
        r"tokenizer\.chunk_len must be an integer in \[1, 1024\], got nan",
    ),
    case(TRAIN + ["action_label_sigma=nan"], r"action_label_sigma must be a finite number in \[0, 1000\]"),
    case(TRAIN + ["instruction_synonym_p=2"], r"instruction_synonym_p must be in \[0, 1\], got 2"),
    case(TRAIN + ["instruction_synonyms=shapes"], r"unknown instruction_synonyms 'shapes'; expected '' or one of"),
    case(["ros2", "run", "robot.joint_names=[]"], r"robot\.joint_names: expected the arm's joints, got \[\]"),
    case(["ros2", "run", "camera="], r"camera='': expected a name of 1-64 letters"),
    case(["ros2", "eval", "sim_args=[nan]"], r"sim_args: cannot parse the arguments"),
    case(["ros2", "eval", "out={file}"], r"out={file} is a file; expected a directory"),
    case(["ros2", "eval", "env.cameras=[]"], r"env\.cameras=\[\]: expected some of"),
    case(
        ["goals", "train", "train.data={file}", "train.out={nope}"], r"train\.data={file} is not a goal-scene"
    ),
    case(["collect", "episodes=1", "out={file}"], r"out={file} exists and is not an episode store"),
    case(["vqa", "generate", "{nope}", "question_types=[]"], r"question_types: expected at least one"),
    case(
        ["eval-vqa", "data.path={file}", "predictions={file}", "batch_size=-1"],
        r"batch_size must be >= 1, got -1",
    ),
    case(
        ["eval", "policy=random", "references=[]", "episodes=1", "reference_episodes=-1"],
        r"reference_episodes: expected >= 1 \(or null\), got -1",
    ),
    case(
        ["eval", "policy=random", "references=[]", "episodes=1", f"out={'x' * 5000}"],
        r"out=x+\.\.\. \(5000 characters\) is too long for a path",
    ),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "afile.txt").write_text("not what you expected\n")
    (root / "adir").mkdir()
    return {
        "store": str(tiny_store(root / "s.zarr")),
        "file": str(root / "afile.txt"),
        "dir": str(root / "adir"),
    }


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_a_hostile_value_is_one_line(places, tmp_path, monkeypatch, vla, argv, expected):
    monkeypatch.chdir(tmp_path)  # relative default outputs land here
    names = {**places, "nope": str(tmp_path / "nope")}
    argv = [a.format(**names) for a in argv]
    expected = expected.format(**{k: re.escape(v) for k, v in names.items()})
    code, err = vla(*argv)
    name = (
        " ".join(argv[:2])
        if argv[0] in ("dataset", "tokenizer", "import", "export", "vqa", "ros2")
        else argv[0]
    )
    assert code in (1, 2) and len(err) == 1, err
    assert err[0].startswith(f"vla {name}: ") and re.search(expected, err[0]), err
    assert not (tmp_path / "nope").exists()  # nothing written


@pytest.mark.parametrize(
    ("config", "value"), [("import_lerobot", "stack"), ("import_lerobot", "nan"), ("eval_vqa", "vqa")]
)
def test_a_field_named_like_a_config_group_takes_its_value(config, value):
    """`task=` of `vla import lerobot` and `vla eval-vqa` is a plain field, which hydra took for the config
    group configs/task/: "unknown key 'task' (did you mean 'task'?)", and for `task=nan` "Config group
    override must be a string or a list. Got float"."""
    from vla.cli import register_all_schemas
    from vla.core.config import compose

    register_all_schemas()
    assert compose(config, [f"task={value}"]).task == value


def test_an_empty_output_directory_is_filled(tmp_path, vla):
    """`out=` naming an existing empty directory is filled, as the commands say (LeRobot export and import
    said `... already exists`, exit 1)."""
    store = tiny_store(tmp_path / "s.zarr")
    (tmp_path / "v3").mkdir()
    (tmp_path / "back").mkdir()
    assert vla("export", "lerobot", store, f"out={tmp_path / 'v3'}", "codec=mpeg4")[0] == 0
    code, err = vla("import", "lerobot", tmp_path / "v3", f"out={tmp_path / 'back'}")
    assert code == 0 and (tmp_path / "back" / "zarr.json").is_file(), err


def test_a_bag_import_refuses_a_rate_it_cannot_resample_to(tmp_path, vla):
    """`rate_hz=1e30` divided by zero, `camera=''` wrote a store key `images/`."""
    from tests.robot_io.test_bag import _teleop_bag

    _teleop_bag(tmp_path / "bag", "mcap")
    for arg, expected in (
        ("rate_hz=1e30", "rate_hz must be in (0, 1000], got 1e+30"),
        ("rate_hz=nan", "rate_hz must be a finite number in (0, 1000], got nan"),
        ("camera=", "camera='': expected a name of 1-64 letters"),
    ):
        code, err = vla("import", "rosbag", tmp_path / "bag", f"out={tmp_path / 's.zarr'}", arg)
        assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "s.zarr").exists()
