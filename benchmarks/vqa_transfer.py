"""The RT-2 transfer experiment: robot-only vs co-trained VLA, closed loop and VQA; prints ONE JSON line.

Both arms are `vla train` runs of the experiment presets (configs/experiment/transfer_robot.yaml and
transfer_cotrain.yaml): the same model (the `vla train` default), seed, steps, batch and robot data (pick
demonstrations, 64 px, static + wrist cameras); the co-trained arm also draws half of every batch from a
scene-VQA set whose questions use held-out concepts (colour synonyms, new object words, left/right). Each
checkpoint is then evaluated:

    concepts   closed loop on `pick_concepts` (sim/concept_tasks.py): pick layouts of the train
               colour-shape pairs, instructions naming the target only through a held-out concept
    heldout    closed loop on `pick`, the usual held-out seeds (unseen colour-shape pairs)
    seen       closed loop on `pick`, train seeds (the demonstrations' own layouts and words: a control)
    vqa        `vla eval-vqa` on the held-out scenes' questions (VQAv2 accuracy), split by concept use

    grounding  open loop, more sensitive than success: on the first `PROBE_STEPS` states of the expert's
               `pick_concepts` trajectories, how often the action predicted for an instruction is closer
               (xyz, L1) to the expert's than the action predicted for the same template naming a
               distractor. "seen" uses the target's own colour-shape name, "concept" the held-out-concept
               instruction; 0.5 is an instruction-blind model (ties count half; `same_action_share` is
               the share of states where all three instructions gave the same xyz action).

with success rates and 95% Wilson intervals (vla/eval/metrics.py), per-concept-kind success on
`pick_concepts`, and training throughput (samples/s) of both arms. Missing data is made first (`vla
collect`, `vla vqa generate`, commands as in the presets). Single-threaded torch on CPU.

    python benchmarks/vqa_transfer.py [--steps 2000] [--episodes 20] [--out outputs/transfer]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vla.core.io import atomic_write_json, read_json  # noqa: E402

GEN_ARGS = [  # the scene-VQA set of configs/experiment/transfer_cotrain.yaml
    "tasks=[pick]",
    "image_size=64",
    "styles=[short]",
    "concept_rate=0.5",
    "seed=200",
    "question_types=[colour,shape,count,exists,relation]",
    "progress=false",
]


def make_data(out: Path, demos: int, scenes: int) -> dict[str, str]:
    """The robot store and the scene-VQA set (made only if missing)."""
    from vla.cli import main as cli

    store, vqa = out / "pick.zarr", out / "scene_vqa"
    if not store.exists():
        args = ["collect", "task=pick", f"episodes={demos}", "env.image_size=64", "env.depth=false"]
        if cli([*args, f"out={store}"]) != 0:
            raise RuntimeError(f"collecting {store} failed")
    if not (vqa / "train.json").exists():
        if cli(["vqa", "generate", str(vqa), f"scenes={scenes}", *GEN_ARGS]) != 0:
            raise RuntimeError(f"generating {vqa} failed")
    return {"store": str(store), "vqa_train": str(vqa / "train.json"), "vqa_test": str(vqa / "test.json")}


def train(arm: str, data: dict[str, str], out: Path, steps: int) -> dict:
    """One arm through the real `vla train` path (load_config + run); returns its training figures."""
    from vla.core.config import save_resolved
    from vla.commands.train import load_config, run

    overrides = [
        f"+experiment=transfer_{arm}",
        f"data.path={data['store']}",
        f"out={out}",
        f"trainer.steps={steps}",
        f"trainer.save_every={steps}",
        "trainer.progress=false",
    ]
    if arm == "cotrain":
        overrides.append(f"cotrain.vqa.0.source.path={data['vqa_train']}")
    cfg = load_config(overrides)
    save_resolved(cfg, out)
    result = run(cfg)
    if result.status != "done":
        raise RuntimeError(f"{arm}: training stopped: {result.message}")
    logs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if x.strip()]
    last = [r for r in logs if r.get("split") == "train"][-1]
    fig = {
        "checkpoint": str(result.checkpoint),
        "samples_per_s": round(result.samples_per_s, 1),
        "train_wall_s": round(result.wall_time_s, 1),
        "final": {k: round(v, 4) for k, v in last.items() if k.startswith(("loss", "share", "action_acc"))},
        "val": {k: round(v, 4) for k, v in result.val.items()},
    }
    atomic_write_json(out / "train_figures.json", fig)
    return fig


def closed_loop(ckpt: str, task: str, split: str, episodes: int, out: Path) -> dict:
    """`vla eval` of a checkpoint on one task/split: success with its 95% Wilson interval."""
    from sim.concept_tasks import instruction_concepts
    from vla.core.config import compose, to_dataclass
    from vla.commands.eval import EvalConfig, evaluate
    from vla.eval.metrics import wilson_interval
    from vla.eval.report import write_report

    args = [f"checkpoint={ckpt}", f"tasks=[{task}]", f"split={split}", f"episodes={episodes}"]
    args += ["env.image_size=64", "env.depth=false", "references=[]", "failure_videos=0", "success_videos=0"]
    cfg = to_dataclass(compose("eval", [*args, f"out={out}", "progress=false"]), EvalConfig)
    res = evaluate(cfg)
    write_report(res, out)
    m = res["per_policy"]["vla"]["tasks"][task]
    row = {
        "success": f"{m['successes']}/{m['episodes']}",
        "rate": round(m["success_rate"], 3),
        "ci95": [round(m["ci95_low"], 3), round(m["ci95_high"], 3)],
    }
    if task == "pick_concepts":  # success per concept kind (colour synonym, object word, relation)
        kinds: dict[str, list[int]] = {}
        for ep in res["episodes"]:
            for c in instruction_concepts(ep["instruction"]):
                kinds.setdefault(c.split(":")[0], []).append(int(ep["success"]))
        row["by_kind"] = {}
        for kind, hits in sorted(kinds.items()):
            lo, hi = wilson_interval(sum(hits), len(hits))
            ci = [round(lo, 3), round(hi, 3)]
            row["by_kind"][kind] = {"success": f"{sum(hits)}/{len(hits)}", "ci95": ci}
    return row


PROBE_STEPS = 4


def grounding(ckpt: str, layouts: int) -> dict:
    """Open-loop instruction grounding on `layouts` pick_concepts train seeds (see the module docstring)."""
    import gymnasium as gym
    import numpy as np

    import sim
    from sim.concept_tasks import instruction_concepts
    from sim.experts import make_expert
    from sim.tasks import PickTask
    from vla.models.vla import VLA

    vla = VLA.from_pretrained(ckpt)
    env = gym.make(sim.ENV_ID, task="pick_concepts", split="train", image_size=64, depth=False)
    wins: dict[str, list[float]] = {"seen": [], "concept": []}
    by_kind: dict[str, list[float]] = {}
    blind: list[float] = []  # 1: the three instructions gave the same xyz action
    try:
        for seed in sim.task_seeds("pick_concepts", "train", layouts):
            obs, info = env.reset(seed=seed)
            lay = env.unwrapped.layout
            template = PickTask.templates[lay.template]
            target = template.format(o=lay.objects[lay.target].name)
            other = template.format(o=lay.objects[1].name)  # a distractor (pick has 1-3)
            kind = instruction_concepts(lay.instruction)[0].split(":")[0]
            expert = make_expert("pick_concepts", seed=seed)
            expert.reset(seed)
            for _ in range(PROBE_STEPS):
                ref = expert.select_action(obs, info)  # [7] the expert's action in this state
                pred = {
                    name: vla.predict_action(obs, text)[0, :3]  # [3] xyz of the first action
                    for name, text in (("seen", target), ("concept", lay.instruction), ("other", other))
                }
                err = {name: float(np.abs(a - ref[:3]).sum()) for name, a in pred.items()}
                blind.append(float(all(np.array_equal(a, pred["other"]) for a in pred.values())))
                for name in ("seen", "concept"):
                    w = 1.0 if err[name] < err["other"] else 0.5 if err[name] == err["other"] else 0.0
                    wins[name].append(w)
                by_kind.setdefault(kind, []).append(wins["concept"][-1])
                obs, _, term, trunc, info = env.step(ref)
                if term or trunc:
                    break
    finally:
        env.close()
    out = {k: round(float(np.mean(v)), 3) for k, v in wins.items()}
    out["concept_by_kind"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(by_kind.items())}
    out["same_action_share"] = round(float(np.mean(blind)), 3)
    out["states"] = len(wins["seen"])
    return out


def vqa(ckpt: str, test: str, out: Path) -> dict:
    """`vla eval-vqa` (task=auto: the co-trained arm is prompted with its task tag) on held-out scenes."""
    from vla.data.vqa import VQASourceConfig
    from vla.eval.vqa import EvalVQAConfig, run

    s = run(EvalVQAConfig(data=VQASourceConfig(path=test), checkpoint=ckpt, out=str(out), progress=False))
    by_concept = s.groups.get("concept", {})
    n_with = sum(r["n"] for k, r in by_concept.items() if k != "(none)")
    acc_with = sum(r["accuracy"] * r["n"] for k, r in by_concept.items() if k != "(none)")
    none = by_concept.get("(none)", {"accuracy": float("nan")})
    return {
        "n": s.n,
        "accuracy": round(s.accuracy, 3),
        "with_concept": round(acc_with / n_with, 3) if n_with else None,
        "without_concept": round(none["accuracy"], 3),
        "by_type": {k: round(r["accuracy"], 3) for k, r in sorted(s.groups["question_type"].items())},
    }


def table(line: dict) -> str:
    """The experiment's markdown table (docs/vqa.md) from the JSON line."""

    def cl(m: dict) -> str:
        lo, hi = m["ci95"]
        return f"{m['success']} ({100 * m['rate']:.0f}%, CI {100 * lo:.0f}-{100 * hi:.0f}%)"

    a, b = line["robot_only"], line["cotrained"]
    rows = [
        ("closed loop: held-out concepts (`pick_concepts`)", cl(a["concepts"]), cl(b["concepts"])),
    ]
    for kind in sorted(set(a["concepts"].get("by_kind", {})) | set(b["concepts"].get("by_kind", {}))):
        ka, kb = a["concepts"]["by_kind"].get(kind, {}), b["concepts"]["by_kind"].get(kind, {})
        rows.append((f"... {kind}", ka.get("success", "-"), kb.get("success", "-")))
    rows += [
        ("closed loop: `pick` held-out seeds", cl(a["heldout"]), cl(b["heldout"])),
        ("closed loop: `pick` training seeds (control)", cl(a["seen"]), cl(b["seen"])),
        (
            "grounding probe: seen words / held-out concepts",
            f"{a['grounding']['seen']:.2f} / {a['grounding']['concept']:.2f}",
            f"{b['grounding']['seen']:.2f} / {b['grounding']['concept']:.2f}",
        ),
        (
            "VQA accuracy, held-out scenes",
            f"{100 * a['vqa']['accuracy']:.1f}%",
            f"{100 * b['vqa']['accuracy']:.1f}%",
        ),
        (
            "... questions with / without a held-out concept",
            f"{100 * (a['vqa']['with_concept'] or 0):.1f}% / {100 * a['vqa']['without_concept']:.1f}%",
            f"{100 * (b['vqa']['with_concept'] or 0):.1f}% / {100 * b['vqa']['without_concept']:.1f}%",
        ),
        ("training throughput (samples/s)", f"{a['samples_per_s']}", f"{b['samples_per_s']}"),
        (
            "robot val action-token accuracy",
            f"{a['val'].get('action_acc', 0):.3f}",
            f"{b['val'].get('action_acc', 0):.3f}",
        ),
    ]
    out = ["| | robot-only | co-trained |", "|---|---|---|"]
    return "\n".join(out + [f"| {r} | {x} | {y} |" for r, x, y in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--episodes", type=int, default=20, help="closed-loop episodes per evaluation")
    ap.add_argument("--demos", type=int, default=100)
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--out", default="outputs/transfer")
    ap.add_argument(
        "--probe-layouts", type=int, default=60, help="pick_concepts seeds of the grounding probe"
    )
    ap.add_argument("--eval-only", action="store_true", help="reuse the arms' final checkpoints in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(args.out)
    data = make_data(out, args.demos, args.scenes)
    arms = {}
    for arm in ("robot", "cotrain"):
        run_dir = out / f"train_{arm}"
        if args.eval_only:
            fig = read_json(run_dir / "train_figures.json", "training figures")
        else:
            fig = train(arm, data, run_dir, args.steps)
        ck = fig["checkpoint"]
        n = args.episodes
        fig["concepts"] = closed_loop(ck, "pick_concepts", "train", n, out / f"eval_{arm}_concepts")
        fig["heldout"] = closed_loop(ck, "pick", "heldout", n, out / f"eval_{arm}_heldout")
        fig["seen"] = closed_loop(ck, "pick", "train", n, out / f"eval_{arm}_seen")
        fig["grounding"] = grounding(ck, args.probe_layouts)
        fig["vqa"] = vqa(ck, data["vqa_test"], out / f"eval_{arm}_vqa")
        arms[arm] = fig
        print(f"[vqa_transfer] {arm} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    from vla.commands.train import load_config

    model = load_config(["+experiment=transfer_robot"]).model
    line = {
        "benchmark": "vqa_transfer",
        "device": "cpu",
        "torch_threads": 1,
        "steps": args.steps,
        "batch": load_config(["+experiment=transfer_robot"]).trainer.batch_size,
        "model": {"vision": model.vision.name, "image_size": model.vision.image_size, "lm": model.lm.hf},
        "robot_episodes": args.demos,
        "vqa_scenes": args.scenes,
        "closed_loop_episodes": args.episodes,
        "throughput_ratio": round(arms["cotrain"]["samples_per_s"] / arms["robot"]["samples_per_s"], 3),
        "robot_only": arms["robot"],
        "cotrained": arms["cotrain"],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(table(line), file=sys.stderr)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
