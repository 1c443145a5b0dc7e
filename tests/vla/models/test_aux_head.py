"""The auxiliary scene head (`vla train aux_weight=W`, vla.models.action_head.AuxHead): where the named
object and its goal are (aux/scene, recorded by `vla collect aux=true`) regressed from the action query.
On a real tiny store: the processor hands the normalised current-frame target, the loss learns it, the
checkpoint keeps the head and reloads without the aux feature in the observation, a killed run resumes,
and bad input (no aux feature, the token head, resuming without the weight) is one line and exit 2."""

import json
import re

import numpy as np
import pytest
import torch

from vla.cli import main as cli
from vla.core.types import AUX_KEY, AUX_NAMES
from vla.data import synthetic
from vla.data.recorder import aux_feature
from vla.data.store import EpisodeStore
from vla.models.vla import VLA

RUN = ["cameras=[front]", "trainer.progress=false", "trainer.batch_size=8", "val_episodes=1",
       "model.vision.image_size=16", "action_head=l1", "use_state=false", "trainer.log_every=1"]  # fmt: skip


@pytest.fixture(scope="module")
def aux_store(tmp_path_factory):
    """4 episodes of 12 frames; aux/scene is one fixed position per episode (target, goal) in metres."""
    path = tmp_path_factory.mktemp("aux") / "aux.zarr"
    feats = {**synthetic.features(16, 16), AUX_KEY: aux_feature()}
    st = EpisodeStore.create(path, feats, fps=10)
    for s in range(4):
        ep = synthetic.episode(synthetic.features(16, 16), 12, s)
        ep[AUX_KEY] = np.tile(np.array([0.4 + 0.05 * s, -0.1 * s, 0.02, 0.6, 0.1, 0.02], np.float32), (12, 1))
        st.append_episode(ep, {"instruction": "put the red cube on the plate", "task": "place"})
    st.close()
    return path


def _log(run, split="train"):
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("split") == split]


def test_aux_head_trains_saves_and_resumes(aux_store, tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    assert cli(["train", str(aux_store), f"out={run}", "trainer.steps=40", "aux_weight=1.0", *RUN]) == 0
    rows = _log(run)
    first, last = np.mean([r["aux_l1"] for r in rows[:3]]), np.mean([r["aux_l1"] for r in rows[-3:]])
    assert last < 0.6 * first, (first, last)  # the auxiliary loss reaches the weights
    for r in rows:  # the logged loss is the action loss plus the weighted auxiliary one
        assert r["loss"] == pytest.approx(r["action_loss"] + r["aux_l1"], rel=1e-4, abs=1e-6)
    assert "aux_l1" in _log(run, "val")[-1]
    ck = run / "checkpoints" / "step_00000040"
    assert json.loads((ck / "config.json").read_text())["vla"]["aux_dim"] == len(AUX_NAMES)
    vla = VLA.from_pretrained(ck)
    assert vla.aux_head is not None and vla.aux_weight == 0.0  # acting never weighs or runs it
    batch = vla.processor.collate([vla_sample(aux_store, i) for i in range(3)])
    raw = torch.tensor(np.stack([vla_sample(aux_store, i)[AUX_KEY][-1] for i in range(3)]))
    assert torch.allclose(vla.processor.normalizer.unnormalize(AUX_KEY, batch["aux"]), raw, atol=1e-5)
    obs = {"images/front": np.zeros((16, 16, 3), np.uint8), "instruction": "put the red cube on the plate"}
    assert vla.predict_action([obs]).shape == (1, 7)  # no aux/scene in the observation: not needed
    # resume continues the same head (the same weights at the start of the new steps)
    assert cli(["train", str(aux_store), f"out={run}", "trainer.steps=42", "aux_weight=1.0",
                "trainer.resume=true", *RUN]) == 0  # fmt: skip
    assert max(r["step"] for r in _log(run)) == 42


def vla_sample(store, i):
    """Window i of the store as the trainer reads it (images, action and aux/scene, one frame)."""
    from vla.data.windows import WindowDataset, WindowSpec

    return WindowDataset(str(store), WindowSpec(obs_keys=["images/front", AUX_KEY]))[i] | {
        "instruction": "put the red cube on the plate"
    }


@pytest.mark.parametrize(
    ("store_name", "extra", "message"),
    [
        ("plain", ["aux_weight=1.0"], "aux/scene.*vla collect aux=true"),
        ("aux", ["aux_weight=1.0", "action_head=tokens"], "needs action_head=l1"),
        ("aux", ["aux_weight=-1"], "aux_weight must be >= 0"),
    ],
)
def test_bad_aux_input_is_one_line_exit_2(aux_store, tiny_train_store, tmp_path, capsys, store_name, extra, message):  # noqa: E501
    """Each before anything is written."""
    store = aux_store if store_name == "aux" else tiny_train_store
    out = tmp_path / "run"
    assert cli(["train", str(store), f"out={out}", "trainer.steps=2", *RUN, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vla train: "), err
    assert re.search(message, err[0]), err
    assert not out.exists()


def test_resuming_an_aux_run_without_its_weight_is_refused(aux_store, tmp_path, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    assert cli(["train", str(aux_store), f"out={run}", "trainer.steps=2", "aux_weight=0.5", *RUN]) == 0
    capsys.readouterr()
    assert cli(["train", str(aux_store), f"out={run}", "trainer.steps=4", "trainer.resume=true", *RUN]) == 2
    err = capsys.readouterr().err.strip()
    assert "auxiliary head" in err and "aux_weight" in err
