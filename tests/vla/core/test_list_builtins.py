"""What a user lists is complete on first call: `policies.list_policies()`, `sim.list_tasks()`,
`action_tokenizers.list_tokenizers()` and `vla.backbones.list_model_presets()` / `list_vision_encoders()` /
`list_connectors()` / `list_point_encoders()`, each called from a fresh interpreter that imported only that
package, name every built-in and import none of the modules behind the entries (no registry is filled by
an import side effect). Each list is checked against a source of truth outside its registry: the config
presets (`configs/task/`, `configs/tokenizer/`, `configs/model/`) and the documented built-in names.

    python -m pytest tests/vla/core/test_list_builtins.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vla.backbones import compose_model_config, list_model_presets

ROOT = Path(__file__).resolve().parents[3]

# Modules behind registry entries on higher floors or heavy imports: listing must not import them.
LAZY = [
    "sim.experts",
    "sim.goal_tasks",
    "sim.concept_tasks",
    "policies.vla",
    "policies.goal_imagination",
    "vla.models",
    "action_tokenizers.fast",
    "action_tokenizers.quantile",
    "vla.backbones.fused",
]

CALLS = {
    "policies": "policies.list_policies()",
    "sim": "sim.list_tasks()",
    "action_tokenizers": "action_tokenizers.list_tokenizers()",
    "vla.backbones": "[vla.backbones.list_model_presets(), vla.backbones.list_vision_encoders(), "
    "vla.backbones.list_connectors(), vla.backbones.list_point_encoders()]",
}


def _presets(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "configs" / group).glob("*.yaml"))


def _fresh_listing(package: str) -> tuple[object, list[str]]:
    """Import only `package` in a new interpreter, call its list function(s); the result and which of
    LAZY got imported."""
    code = (
        f"import json, sys\nimport {package}\nresult = {CALLS[package]}\n"
        f"print(json.dumps([result, [m for m in {LAZY!r} if m in sys.modules]]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    result, imported = json.loads(r.stdout.strip().splitlines()[-1])
    return result, imported


def test_policies_lists_every_builtin_without_importing_them():
    names, imported = _fresh_listing("policies")
    assert names == ["constant", "expert", "goal_imagination", "random", "vla"]
    assert imported == []


def test_tasks_are_the_task_presets():
    names, imported = _fresh_listing("sim")
    assert names == _presets("task")
    assert imported == []


def test_tokenizers_are_the_tokenizer_presets():
    names, imported = _fresh_listing("action_tokenizers")
    assert names == _presets("tokenizer")
    assert imported == []


def test_backbone_lists_name_every_builtin():
    (presets, vision, connectors, points), imported = _fresh_listing("vla.backbones")
    assert presets == _presets("model") and {"tiny", "tiny_vla_film", "siglip_qwen2_0p5b"} <= set(presets)
    assert vision == ["clip", "conv", "dinov2", "efficientnet_lite0", "fused", "siglip", "vit"]
    assert connectors == ["cross_attn", "linear", "mlp2x_gelu", "perceiver", "qformer", "token_merge"]
    assert points == ["point_patch", "pointnet"]
    assert imported == []


@pytest.mark.parametrize("preset", list_model_presets())
def test_every_listed_model_preset_composes(preset):
    cfg = compose_model_config(preset)
    assert cfg.vision.name and cfg.lm.arch
