"""LoRA on a PRM's backbone through peft (the ``lora`` extra): low-rank adapters on every linear
layer of the transformer; the head is trained whole. Only the adapters and the head carry
gradients and optimizer state, which is what makes a 7B PRM trainable on one GPU.

A finished run merges the adapters into the backbone (peft's ``merge_and_unload``), so the
saved PRM is a plain model in its usual layout (``prm.model.layout``): nothing downstream,
vLLM included, needs to know LoRA was used. A checkpoint keeps the backbone unmerged and the
adapters beside the optimizer state, so that a resumed run continues exactly.
"""

from __future__ import annotations

from prmkit.errors import InputError


def _peft():
    try:
        import peft
    except ImportError:
        raise InputError("LoRA needs peft: pip install 'prmkit[lora]'", field="lora_rank") \
            from None
    return peft


def add_lora(module, rank: int, alpha: float, dropout: float):
    """Wrap ``module.model`` (the backbone) with LoRA adapters; the head stays trainable."""
    peft = _peft()
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                             target_modules="all-linear", bias="none")
    module.model = peft.get_peft_model(module.model, config)
    module.score.requires_grad_(True)
    if getattr(module, "likelihood", None) is not None:
        module.likelihood.requires_grad_(True)


def has_lora(module) -> bool:
    return type(module.model).__name__.startswith("Peft")


def adapter_state(module) -> dict:
    return _peft().get_peft_model_state_dict(module.model)


def load_adapter_state(module, state: dict) -> None:
    _peft().set_peft_model_state_dict(module.model, state)


def merge_lora(module) -> None:
    """Fold the adapters into the backbone's weights and drop them."""
    module.model = module.model.merge_and_unload()


def base_name(name: str) -> str | None:
    """A backbone tensor's name without peft's wrapping (``model.base_model.model.`` and
    ``.base_layer``); None for an adapter's own tensors."""
    if "lora_" in name:
        return None
    return name.replace("model.base_model.model.", "model.", 1).replace(".base_layer.", ".")
