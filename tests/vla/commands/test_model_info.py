"""`vla model-info`: summary JSON, optional initial checkpoint, clear errors for bad presets."""

import json

from vla import cli
from vla.models import VLM


def test_model_info_prints_summary_and_saves_checkpoint(tmp_path, capsys):
    out = tmp_path / "init"
    assert (
        cli.main(["model-info", "tiny", str(out), "connector.name=perceiver", "connector.num_queries=8"]) == 0
    )
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["connector"] == {"name": "perceiver", "visual_tokens": 8}
    assert info["parameters"]["total"] == sum(info["parameters"][k] for k in ("vision", "connector", "lm"))
    assert info["image_transform"]["size"] == 32
    assert "checkpoint written" in captured.err
    assert VLM.from_pretrained(out).connector.num_tokens(16) == 8


def test_model_info_errors(capsys):
    assert cli.main(["model-info", "nope"]) == 2
    assert "unknown model preset 'nope'" in capsys.readouterr().err
    assert cli.main(["model-info"]) == 2
