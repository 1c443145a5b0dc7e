"""The scan of docs/robustness.md (section 2): every command with hostile values, one field at a time.

    python -m tests.adversarial.scan setup DIR            # small real inputs under DIR (~10 s)
    python -m tests.adversarial.scan run DIR OUT.jsonl    # ~1,570 command lines, 40-90 min on 2 cores
    python -m tests.adversarial.scan summary OUT.jsonl    # verdict counts, then every line to look at

Not a test module (pytest does not collect it): the per-case tests are test_cli_hostile.py. Each command
(`goals` counted once per subcommand) runs from a small valid command line (BASES), with one config field
at a time set to values of its kind: numbers NaN, -1, 1e30 and a word; lists [], [nan] and a word;
strings "", 5000 characters and, for path-like names, a file, a directory and a missing path (else "nan");
config groups a word, "" and 5000 characters. The fields of the shared sub-configs (model, pointcloud, env,
robot, topics) are sampled outside the command that owns them. Each line runs `vla.cli.main` in a forked
child (its own process group, cwd and copies of the file and directory) with a 12 s limit.

Verdicts: exit2 / exit1 (one `vla ...` line on stderr), accepted (exit 0), running (still going at 12 s:
a valid value doing real work, or a hang), traceback, crashN (another exit status), exitN-multi (more
than one line). Whether an accepted value should have been refused, or an exit line is cryptic, is read
by a person from `summary`."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

LIMIT_S = float(os.environ.get("SCAN_LIMIT_S", 12))
LONG = "x" * 5000
PATHY = re.compile(
    r"(path|out|data$|checkpoint|file|source|bag|record|summary|result|normalizer|json|root|"
    r"annotations|urdf|predictions|dir)"
)
# command -> (config it composes, argv prefix, the valid base overrides)
BASES: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "collect": ("collect", ["collect"], {"episodes": "1", "out": "{nope}/s.zarr"}),
    "train": (
        "train",
        ["train"],
        {
            "data.path": "{store}",
            "out": "{nope}",
            "cameras": "[front]",
            "procs": "1",
            "trainer.progress": "false",
            "trainer.steps": "2",
            "trainer.batch_size": "4",
            "val_episodes": "1",
        },
    ),
    "eval": ("eval", ["eval"], {"policy": "random", "references": "[]", "episodes": "1", "out": "{nope}"}),
    "demo": ("demo", ["demo"], {"episodes": "1", "steps": "1", "out": "{nope}"}),
    "goals generate": (
        "goal_diffusion",
        ["goals", "generate"],
        {
            "generate.episodes": "1",
            "generate.tasks": "[pick]",
            "generate.out": "{nope}/g.npz",
            "generate.image_size": "64",
        },
    ),
    "goals train": (
        "goal_diffusion",
        ["goals", "train"],
        {"train.data": "{goals}", "train.steps": "1", "train.out": "{nope}"},
    ),
    "goals sample": (
        "goal_diffusion",
        ["goals", "sample"],
        {"sample.checkpoint": "{nope}", "sample.data": "{goals}"},
    ),
    "tokenizer fit": ("tokenizer_fit", ["tokenizer", "fit"], {"source": "{store}", "out": "{nope}"}),
    "tokenizer report": ("tokenizer_report", ["tokenizer", "report"], {"path": "{tok}", "source": "{store}"}),
    "dataset view": ("dataset_view", ["dataset", "view"], {"path": "{store}", "out": "{nope}"}),
    "import lerobot": ("import_lerobot", ["import", "lerobot"], {"path": "{lerobot}", "out": "{nope}"}),
    "export lerobot": (
        "export_lerobot",
        ["export", "lerobot"],
        {"path": "{store}", "out": "{nope}", "codec": "mpeg4"},
    ),
    "import rosbag": ("ros2_import_rosbag", ["import", "rosbag"], {"bag": "{bag}", "out": "{nope}"}),
    "vqa generate": ("vqa_generate", ["vqa", "generate"], {"out": "{nope}", "scenes": "1"}),
    "eval-vqa": (
        "eval_vqa",
        ["eval-vqa"],
        {
            "data": "vqa_vqav2",
            "data.path": "{vqa_q}",
            "data.annotations": "{vqa_a}",
            "data.image_root": "{vqa_images}",
            "predictions": "{vqa_predictions}",
            "out": "{nope}",
        },
    ),
    "ros2 run": ("ros2_run", ["ros2", "run"], {"duration_s": "1"}),
    "ros2 sim-robot": ("ros2_sim_robot", ["ros2", "sim-robot"], {"episodes": "1", "wait_for_command_s": "1"}),
    "ros2 eval": (
        "ros2_eval",
        ["ros2", "eval"],
        {"episodes": "1", "wait_for_command_s": "1", "out": "{nope}"},
    ),
    "model-info": ("model/tiny", ["model-info", "tiny"], {}),
}


def inputs(root: Path) -> dict[str, str]:
    return {
        "store": str(root / "s.zarr"),
        "file": str(root / "afile.txt"),
        "dir": str(root / "adir"),
        "tok": str(root / "tok" / "action_tokenizer.json"),
        "lerobot": str(root / "lerobot"),
        "bag": str(root / "bag"),
        "vqa_q": str(root / "vqa" / "q.json"),
        "vqa_a": str(root / "vqa" / "a.json"),
        "vqa_images": str(root / "vqa" / "val2014"),
        "vqa_predictions": str(root / "vqa" / "p.jsonl"),
        "goals": str(root / "g.npz"),
    }


def setup(root: Path) -> None:
    """The small real inputs the base command lines read."""
    from tests.adversarial.conftest import tiny_store
    from tests.robot_io.test_bag import _teleop_bag
    from tests.vla.eval.test_vqa import _vqav2
    from vla.cli import main as cli

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    p = inputs(root)
    tiny_store(Path(p["store"]))
    Path(p["file"]).write_text("not what you expected\n")
    Path(p["dir"]).mkdir()
    assert cli(["tokenizer", "fit", p["store"], "tokenizer=uniform", f"out={root / 'tok'}"]) == 0
    assert cli(["export", "lerobot", p["store"], f"out={p['lerobot']}", "codec=mpeg4"]) == 0
    _teleop_bag(Path(p["bag"]), "mcap")
    (root / "vqa").mkdir()
    _vqav2(root / "vqa")
    preds = [
        {"id": "100", "prediction": "red"},
        {"id": "101", "prediction": "2"},
        {"id": "102", "prediction": "yes"},
    ]
    Path(p["vqa_predictions"]).write_text("\n".join(json.dumps(x) for x in preds) + "\n")
    argv = ["goals", "generate", "generate.episodes=1", "generate.tasks=[pick]", f"generate.out={p['goals']}"]
    assert cli([*argv, "generate.image_size=64"]) == 0


def _kind(node: Any) -> str:
    from omegaconf import OmegaConf

    if OmegaConf.is_list(node):
        return "list"
    if OmegaConf.is_dict(node):
        return "dict"
    if isinstance(node, bool):
        return "bool"
    if isinstance(node, (int, float)):
        return "number"
    return "str" if isinstance(node, str) else "none"


def values_for(key: str, kind: str) -> list[str]:
    if kind == "number":
        return ["nan", "-1", "1e30", "abc"]
    if kind == "bool":
        return ["abc"]
    if kind == "list":
        return ["[]", "[nan]", "abc"]
    if kind == "dict":
        return ["abc", ""]
    if kind == "group":
        return ["abc", "", LONG]
    out = ["", LONG] + (["{file}", "{dir}", "{nope2}"] if PATHY.search(key.split(".")[-1]) else ["nan"])
    return out + (["-1", "1e30"] if kind == "none" else [])


def _sample(name: str, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The shared sub-configs in full only where they belong (model-info: the model; collect: env; ros2 run:
    robot; goals train: its model and pointcloud); elsewhere every 4th field (topics every 6th)."""
    full = {"collect": ("env.",), "ros2 run": ("robot.",), "goals train": ("model.", "pointcloud.")}
    out, seen = [], collections.Counter()
    for key, kind in keys:
        pre = next(
            (p for p in ("model.", "pointcloud.", "env.", "robot.", "topics.", "task.") if key.startswith(p)),
            None,
        )
        if pre is None or pre in full.get(name, ()):
            out.append((key, kind))
            continue
        if name.startswith("goals") and name != "goals train" and pre in ("model.", "pointcloud."):
            continue
        seen[pre] += 1
        step = {"topics.": 6, "task.": 1}.get(pre, 2 if name == "model-info" else 4)
        if (seen[pre] - 1) % step == 0:
            out.append((key, kind))
    return out


def command_lines(paths: dict[str, str]) -> list[dict[str, Any]]:
    from omegaconf import OmegaConf

    from vla import cli
    from vla.core.config import compose, config_dir, config_keys

    cli.register_all_schemas()
    lines = []
    for name, (config, prefix, base) in BASES.items():
        overrides = (
            [f"{k}={v}".format(**paths, nope="/x") for k, v in base.items()] if name != "model-info" else []
        )
        cfg = compose(config, overrides)
        if name.startswith("goals"):
            cfg = OmegaConf.create({k: cfg[k] for k in cfg if k in (name.split()[1], "model", "pointcloud")})
        keys = []
        for key in config_keys(cfg):
            node = OmegaConf.select(cfg, key, throw_on_missing=False)
            if not (OmegaConf.is_dict(node) and len(node) and not key.startswith("mapping")):
                keys.append((key, _kind(node)))
        text = (config_dir() / f"{config}.yaml").read_text()
        keys += [(g, "group") for g in re.findall(r"^\s*-\s*([a-z_]+)\s*:\s*\S+", text, re.M)]
        if name == "model-info":
            keys = [(k[len("model.") :], kind) for k, kind in keys if k.startswith("model.")]
        done = set()
        for key, kind in _sample(name, keys):
            if key in done:
                continue
            done.add(key)
            for value in values_for(key, kind):
                args = {**base, key: value}
                lines.append(
                    {
                        "cmd": name,
                        "key": key,
                        "value": value,
                        "argv": prefix + [f"{k}={v}" for k, v in args.items()],
                    }
                )
    return lines


def run_one(line: dict[str, Any], paths: dict[str, str], work: Path) -> tuple[int | None, str, float]:
    d = Path(tempfile.mkdtemp(dir=work))
    shutil.copy(paths["file"], d / "afile.txt")
    (d / "adir").mkdir()
    names = {
        **paths,
        "file": str(d / "afile.txt"),
        "dir": str(d / "adir"),
        "nope": str(d / "nope"),
        "nope2": str(d / "nope2"),
    }
    argv = [a.format(**names) if "{" in a and len(a) < 300 else a for a in line["argv"]]
    err_file = d / ".stderr"
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, cwd, stderr file; stdout discarded
        code = 3
        try:
            os.setpgid(0, 0)
            os.chdir(d)
            os.dup2(os.open(err_file, os.O_WRONLY | os.O_CREAT), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr, sys.stdout = os.fdopen(2, "w", buffering=1), os.fdopen(1, "w")
            from vla.cli import main

            code = int(main(argv) or 0)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stderr.flush()
            os._exit(code)
    rc = None
    while time.time() - t0 < LIMIT_S:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    try:  # the child (still running at the limit) and anything it started
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if rc is None:
        os.waitpid(pid, 0)
    err = err_file.read_text(errors="replace")
    shutil.rmtree(d, ignore_errors=True)
    return rc, err, time.time() - t0


def verdict(rc: int | None, err: str) -> str:
    if rc is None:
        return "running"
    if rc == 0:
        return "accepted"
    if rc == 3 or "Traceback (most recent call last)" in err:
        return "traceback"
    if rc not in (1, 2):
        return f"crash{rc}"
    lines = [x for x in err.splitlines() if x.startswith("vla ")]
    return f"exit{rc}" if len(lines) == 1 else f"exit{rc}-multi"


def run(root: Path, out: Path, only: list[str]) -> None:
    import torch  # noqa: F401  (imported once, before the forks)

    import action_tokenizers.fast  # noqa: F401
    import action_tokenizers.quantile  # noqa: F401
    import action_tokenizers.uniform  # noqa: F401

    paths = inputs(root)
    lines = command_lines(paths)
    if only:
        lines = [x for x in lines if any(o in f"{x['cmd']} {x['key']}={x['value']}" for o in only)]
    work = Path(tempfile.mkdtemp(prefix="vla-scan-"))
    with open(out, "w") as f:
        for line in lines:
            rc, err, wall = run_one(line, paths, work)
            v = verdict(rc, err)
            said = [x for x in err.splitlines() if x.startswith("vla ")]
            msg = said[-1] if said else (err.strip().splitlines() or [""])[-1]
            rec = {
                "cmd": line["cmd"],
                "key": line["key"],
                "value": line["value"][:20],
                "verdict": v,
                "rc": rc,
                "msg": msg[:400],
                "err": "" if v in ("exit1", "exit2") else err[-3000:],
                "s": round(wall, 1),
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
    shutil.rmtree(work, ignore_errors=True)


def summary(path: Path) -> None:
    recs = [json.loads(x) for x in open(path)]
    print(f"{len(recs)} command lines:", dict(collections.Counter(r["verdict"] for r in recs)))
    for r in recs:
        if r["verdict"] not in ("exit2",):
            print(f"{r['verdict']:12} vla {r['cmd']} {r['key']}={r['value']!r}: {r['msg'][-200:]}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.pop("VLA_DEBUG", None)
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "setup":
        setup(Path(sys.argv[2]).resolve())
    elif what == "run":
        run(Path(sys.argv[2]).resolve(), Path(sys.argv[3]), sys.argv[4:])
    elif what == "summary":
        summary(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
