"""A PRM: any Hugging Face backbone plus a step head, or a causal LM read at its step tags.

``StepRewardModel`` is a base model (``AutoModel``: the transformer without its LM head) under
``model`` and a two-layer head under ``score`` (Linear, ReLU, Linear), the parameter names of
Qwen2.5-Math-PRM's own class, so its released weights load here without ``trust_remote_code``.
The head has two outputs (cross-entropy; the score is the softmax's positive class) or one
(binary cross-entropy; the score is its sigmoid).

A PRM folder holds ``config.json`` (the backbone's), ``model.safetensors`` (``model.*`` and
``score.*``), the tokenizer and ``prm.json`` (format, head). ``load_prm`` opens:

    a prmkit PRM folder               (prm.json)
    a Qwen2.5-Math-PRM release        (config.json architectures: Qwen2ForProcessRewardModel)
    any causal LM with format="math-shepherd"  (read at its ки tags, no head)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prmkit.errors import InputError
from prmkit.prm.formats import PRMFormat, get_format, good_bad_ids, separator_id

HEADS = ("ce", "bce")


def _torch():
    import torch
    return torch


class StepRewardModel(_torch().nn.Module):
    def __init__(self, backbone, head: str = "ce"):
        torch = _torch()
        super().__init__()
        if head not in HEADS:
            raise InputError(f"{head!r}: choose one of {list(HEADS)}", field="head")
        self.head = head
        self.model = backbone
        hidden = backbone.config.hidden_size
        self.score = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                         torch.nn.Linear(hidden, 2 if head == "ce" else 1))

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids, attention_mask=None):
        """Head logits at every position: (batch, length, 2) or (batch, length, 1)."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.score(hidden)

    def probabilities(self, logits):
        """The positive-class probability from head logits (any leading shape)."""
        torch = _torch()
        if self.head == "ce":
            return torch.softmax(logits.float(), dim=-1)[..., 1]
        return torch.sigmoid(logits.float()[..., 0])


@dataclass
class LoadedPRM:
    """A PRM ready to score: the module, its tokenizer and format, the ids it reads."""
    module: object              # StepRewardModel, or a causal LM for lm-tokens formats
    tokenizer: object
    format: PRMFormat
    separator_id: int
    good_bad: tuple[int, int] | None = None

    def probabilities(self, input_ids, attention_mask):
        """Positive-step probability at every position: (batch, length)."""
        torch = _torch()
        if self.format.readout == "head":
            return self.module.probabilities(self.module(input_ids, attention_mask))
        logits = self.module(input_ids=input_ids, attention_mask=attention_mask).logits
        pair = logits[..., list(self.good_bad)].float()
        return torch.softmax(pair, dim=-1)[..., 0]


def build_prm(backbone_path_or_config, tokenizer, *, head: str = "ce", seed: int = 0,
              fmt: str = "prmkit") -> LoadedPRM:
    """A new PRM: the backbone from a model folder (a policy checkpoint, as the paper starts
    from the instruct model) or from a config object, a fresh head, the format's separator."""
    torch = _torch()
    from transformers import AutoModel
    torch.manual_seed(seed)
    if isinstance(backbone_path_or_config, (str, Path)):
        backbone = AutoModel.from_pretrained(backbone_path_or_config)
    else:
        backbone = AutoModel.from_config(backbone_path_or_config)
    prm_format = get_format(fmt)
    sep = separator_id(prm_format, tokenizer)
    if len(tokenizer) > backbone.get_input_embeddings().num_embeddings:
        backbone.resize_token_embeddings(len(tokenizer))
    module = StepRewardModel(backbone, head)
    return LoadedPRM(module, tokenizer, prm_format, sep)


def save_prm(prm: LoadedPRM, path: str | Path, extra=None) -> Path:
    """Write a PRM folder atomically (``rundir.replace_folder``); ``extra(folder)`` may add
    files before it is moved into place."""
    from safetensors.torch import save_file

    from prmkit.rundir import replace_folder

    def fill(folder: Path) -> None:
        prm.module.config.save_pretrained(folder)
        # tied weights are one tensor under two names; safetensors keeps one copy
        seen, unique = set(), {}
        for name, value in prm.module.state_dict().items():
            if value.data_ptr() not in seen:
                seen.add(value.data_ptr())
                unique[name] = value.detach().cpu().contiguous()
        save_file(unique, str(folder / "model.safetensors"))
        prm.tokenizer.save_pretrained(folder)
        (folder / "prm.json").write_text(json.dumps({"format": prm.format.name,
                                                     "head": prm.module.head}, indent=2) + "\n")
        if extra is not None:
            extra(folder)

    return replace_folder(Path(path), fill)


def _state_dict(path: Path) -> dict:
    from safetensors.torch import load_file
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state = {}
    for name in files:
        if not (path / name).exists():
            raise InputError(f"missing weights file {name}", path=path)
        state.update(load_file(str(path / name)))
    return state


def load_prm(path: str | Path, *, fmt: str | None = None, dtype: str = "float32",
             device: str = "cpu") -> LoadedPRM:
    """Open a PRM folder for scoring; the format comes from the folder unless ``fmt`` says."""
    torch = _torch()
    from transformers import AutoConfig, AutoModel

    from prmkit.models import load_causal_lm, load_tokenizer
    path = Path(path)
    if not (path / "config.json").exists():
        raise InputError("no config.json here: not a saved model", path=path)
    meta = json.loads((path / "prm.json").read_text()) if (path / "prm.json").exists() else {}
    architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    if fmt is None:
        if meta:
            fmt = meta["format"]
        elif "Qwen2ForProcessRewardModel" in architectures:
            fmt = "qwen2.5-math-prm"
        else:
            raise InputError("not a PRM folder (no prm.json, no PRM architecture); for a "
                             "Math-Shepherd-style causal LM pass --format math-shepherd",
                             path=path, field="format")
    prm_format = get_format(fmt)
    tokenizer = load_tokenizer(path, padding_side="right")
    sep = separator_id(prm_format, tokenizer)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float16": torch.float16}[dtype]
    if prm_format.readout == "lm-tokens":
        module = load_causal_lm(path, dtype=dtype, device=device)
        return LoadedPRM(module, tokenizer, prm_format, sep, good_bad_ids(prm_format, tokenizer))
    config = AutoConfig.from_pretrained(path)
    state = _state_dict(path)
    head = meta.get("head") or ("ce" if state["score.2.weight"].shape[0] == 2 else "bce")
    module = StepRewardModel(AutoModel.from_config(config), head)
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"weights do not match a {fmt} PRM ({str(e).splitlines()[0]})",
                         path=path) from None
    module = module.to(device=device, dtype=torch_dtype).eval()
    return LoadedPRM(module, tokenizer, prm_format, sep)
