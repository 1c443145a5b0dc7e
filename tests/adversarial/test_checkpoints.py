"""Probes on a real `vla train` run's checkpoints and its resume (issue 21, "Checkpoints and resume"):

* bits flipped inside the latest checkpoint's weights or optimiser state (nothing truncated: the headers
  are whole) used to load silently; model.safetensors now records a crc32 of its tensor data and
  train_state.pt's zip members are checked against their CRCs, so the run falls back to the newest intact
  checkpoint with one warning line, a damaged checkpoint named directly is one error line, and
  `trainer.resume=true` continues from the intact one;
* a train_state.pt whose pickle would run code is refused in one line, and the code never runs;
* a store re-collected at the same path passed the resume check (only the path was compared): every
  checkpoint now keeps a fingerprint of the stores it trained on, and a changed one is one line naming it
  unless `trainer.resume_force=true`."""

from __future__ import annotations

import os
import re
import shutil
import zipfile

import pytest
import torch

from tests.adversarial.conftest import tiny_store
from vla.models.checkpoint import TRAIN_STATE_FILE, WEIGHTS_FILE, Checkpoint, read_weights

TRAIN = [
    "cameras=[front]",
    "trainer.progress=false",
    "procs=1",
    "trainer.batch_size=4",
    "trainer.save_every=1",
]


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A real 2-step `vla train` run on a real store, with checkpoints at steps 1 and 2."""
    from vla.cli import main as cli

    root = tmp_path_factory.mktemp("run2")
    store = tiny_store(root / "s.zarr")
    assert (
        cli(["train", str(store), f"out={root / 'run'}", "trainer.steps=2", "trainer.keep_last=3", *TRAIN])
        == 0
    )
    return root


@pytest.fixture
def run(run2, tmp_path):
    """A copy of the run to damage; its checkpoints name the store at run2's path, which `_train` uses."""
    shutil.copytree(run2 / "run", tmp_path / "run")
    return tmp_path


def _flip(file, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x01
    file.write_bytes(bytes(data))


def _train(vla, root, store, *extra):
    return vla("train", store, f"out={root / 'run'}", *TRAIN, *extra)


@pytest.mark.parametrize("damage", ["weights", "train_state"])
def test_a_bit_flip_in_the_latest_checkpoint_falls_back_to_the_intact_one(run2, run, vla, capsys, damage):
    step1, step2 = run / "run/checkpoints/step_00000001", run / "run/checkpoints/step_00000002"
    if damage == "weights":
        _flip(step2 / WEIGHTS_FILE, (step2 / WEIGHTS_FILE).stat().st_size - 7)  # inside the last tensor
        expected = r"model.safetensors: its tensor data does not match the crc32 in its header"
    else:
        with zipfile.ZipFile(step2 / TRAIN_STATE_FILE) as z:  # the largest member: optimiser moments
            member = max(z.infolist(), key=lambda i: i.file_size)
        at = member.header_offset  # its local header: 30 bytes, then the name and the extra field
        head = (step2 / TRAIN_STATE_FILE).read_bytes()[at + 26 : at + 30]
        start = at + 30 + int.from_bytes(head[:2], "little") + int.from_bytes(head[2:], "little")
        _flip(step2 / TRAIN_STATE_FILE, start + member.file_size // 2)
        expected = r"train_state.pt is corrupt \(its member .* does not match its CRC\)"
    capsys.readouterr()
    assert Checkpoint.open(run / "run").path == step1
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(
        rf"checkpoint step_00000002 \({expected}.*\) in .* is damaged; using step_00000001", warning
    )
    if damage == "weights":
        with pytest.raises(ValueError, match=expected.split(": ", 1)[1]) as e:
            Checkpoint.open(step2)  # named directly, there is nothing to fall back to: one error line
        assert "\n" not in str(e.value)
        before = read_weights(step1)
        code, _ = _train(vla, run, run2 / "s.zarr", "trainer.steps=3", "trainer.resume=true")  # from step 1
        assert code == 0 and (run / "run/checkpoints/step_00000003").is_dir()
        after = read_weights(run / "run/checkpoints/step_00000003")
        assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained on from there


def test_a_train_state_that_would_run_code_is_refused(run2, run, vla):
    marker = run / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    step2 = run / "run/checkpoints/step_00000002"
    torch.save({"step": 2, "payload": Payload()}, step2 / TRAIN_STATE_FILE)
    code, err = _train(vla, run, run2 / "s.zarr", "trainer.steps=3", "trainer.resume=true")
    assert code == 1 and len(err) == 1, err
    assert "train_state.pt holds objects other than tensors, numbers and strings: refused" in err[0]
    assert not marker.exists()


@pytest.fixture
def recollected(run2):
    """run2's store re-collected at its path (same shape, other episodes); put back afterwards."""
    store, kept = run2 / "s.zarr", run2 / "kept.zarr"
    os.replace(store, kept)
    tiny_store(store, seeds=range(10, 13))
    yield store
    shutil.rmtree(store)
    os.replace(kept, store)


def test_a_store_recollected_at_the_same_path_needs_resume_force(recollected, run, vla):
    store = recollected
    code, err = _train(vla, run, store, "trainer.steps=3", "trainer.resume=true")
    assert code == 1 and len(err) == 1, err
    assert re.search(
        rf"trained with other settings \(data {re.escape(str(store))} 3 episodes/36 frames/crc32 \w+ -> "
        r"3 episodes/36 frames/crc32 \w+\).*resume_force=true",
        err[0],
    ), err
    assert not (run / "run/checkpoints/step_00000003").exists()
    code, err = _train(vla, run, store, "trainer.steps=3", "trainer.resume=true", "trainer.resume_force=true")
    assert code == 0 and (run / "run/checkpoints/step_00000003").is_dir()
