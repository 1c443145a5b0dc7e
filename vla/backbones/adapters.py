"""Freeze / unfreeze / LoRA per named component of a model assembled from the backbone library.

A model mixes in `ComponentControls` and lists its parts in `components()` (e.g. vision, connector, lm,
state, points). LoRA uses peft's `inject_adapter_in_model` on one component's nn.Linear / nn.Conv2d layers
(those inside torch's nn.MultiheadAttention are skipped: it reads their weights directly), and leaves only
the adapter weights of that component trainable.

    model.freeze(["vision"])                         # requires_grad False on every vision parameter
    model.apply_lora("lm", r=8, alpha=16)            # LoRA adapters in the LM, base weights frozen
    model.trainable_parameters_by_component()        # {"vision": 0, "connector": 1.2e5, "lm": 2.0e4, ...}
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

LORA_MARK = "lora_"


def lora_target_names(module: nn.Module) -> list[str]:
    """Dotted names of the layers of `module` that LoRA can wrap: nn.Linear, nn.Conv2d and GPT-2's Conv1D;
    an LM's output head (often tied to the input embeddings) is left alone."""
    skip: set[str] = set()
    for name, sub in module.named_modules():
        if isinstance(sub, nn.MultiheadAttention):
            skip.update(f"{name}.{child}" if name else child for child, _ in sub.named_modules() if child)
    return [
        name
        for name, sub in module.named_modules()
        if name
        and name not in skip
        and not name.endswith("lm_head")
        and (isinstance(sub, (nn.Linear, nn.Conv2d)) or type(sub).__name__ == "Conv1D")
    ]


class ComponentControls:
    """Mixin: per-component freezing and LoRA for an nn.Module that implements `components()`."""

    def components(self) -> dict[str, nn.Module]:  # overridden by the model
        return {}

    def component(self, name: str) -> nn.Module:
        comps = self.components()
        if name not in comps:
            raise ValueError(f"unknown component {name!r}; this model has {sorted(comps)}")
        return comps[name]

    def freeze(self, names: Iterable[str]) -> None:
        for name in names:
            for p in self.component(name).parameters():
                p.requires_grad_(False)

    def unfreeze(self, names: Iterable[str]) -> None:
        """Make a component fully trainable (with LoRA applied: only its adapters). Parameters under a
        prefix a submodule lists in its `frozen_prefixes` (e.g. the conv encoder's pretrained trunk,
        `("trunk.",)`) stay frozen."""
        for name in names:
            comp = self.component(name)
            has_lora = any(LORA_MARK in n for n, _ in comp.named_parameters())
            fixed = tuple(
                f"{mod_name}.{pre}" if mod_name else pre
                for mod_name, mod in comp.named_modules()
                for pre in getattr(mod, "frozen_prefixes", ())
            )
            for n, p in comp.named_parameters():
                p.requires_grad_((LORA_MARK in n or not has_lora) and not n.startswith(fixed))

    def inject_lora(self, name: str, r: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> int:
        """Wrap component `name`'s layers with LoRA adapters; returns the number of adapter parameters."""
        from peft import LoraConfig, inject_adapter_in_model

        comp = self.component(name)
        if any(LORA_MARK in n for n, _ in comp.named_parameters()):
            raise ValueError(f"component {name!r} already has LoRA adapters")
        targets = lora_target_names(comp)
        if not targets:
            raise ValueError(f"component {name!r} has no Linear/Conv2d layers for LoRA")
        cfg = LoraConfig(
            r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets
        )
        inject_adapter_in_model(cfg, comp)
        count = 0
        for n, p in comp.named_parameters():
            is_adapter = LORA_MARK in n
            p.requires_grad_(is_adapter)
            count += p.numel() if is_adapter else 0
        return count

    def trainable_parameters_by_component(self) -> dict[str, int]:
        return {
            k: sum(p.numel() for p in m.parameters() if p.requires_grad) for k, m in self.components().items()
        }
