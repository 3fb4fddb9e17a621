"""A PRM: any Hugging Face backbone plus a step head, or a causal LM read at its step tags.

``StepRewardModel`` is a base model (``AutoModel``: the transformer without its LM head) under
``model`` and a two-layer head under ``score`` (Linear, ReLU, Linear), the parameter names of
Qwen2.5-Math-PRM's own class, so its released weights load here without ``trust_remote_code``.
The head has two outputs (cross-entropy; the score is the softmax's positive class) or one
(binary cross-entropy; the score is its sigmoid). With ``readout="likelihood"`` the head also
reads the backbone LM's log-probabilities of each step's tokens (``likelihood.*``, and
``lm_head.*`` when the LM head is not tied to the input embeddings).

A PRM folder holds ``config.json`` (the backbone's), ``model.safetensors`` (``model.*`` and
``score.*``), the tokenizer and ``prm.json`` (format, head, readout). ``load_prm`` opens:

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
READOUTS = ("separator", "likelihood")


def _torch():
    import torch
    return torch


class StepRewardModel(_torch().nn.Module):
    """A backbone and a step head read at every step's separator.

    ``readout="likelihood"`` adds what the backbone's own language model thinks of the step:
    the lowest and the mean log-probability it gives the step's tokens, through a linear term
    (``likelihood``) added to the head's logits. The hidden state at a
    separator holds what the model makes of the text so far, but not how surprised it was by
    each token on the way: a small backbone computes its expectation of a token only in its
    top layer, one position earlier, where no later position can read it. Re-learning that
    check from step labels alone is slow (see ``benchmarks/prm_study.py``); the LM head gives
    it directly. It needs the backbone's LM head (``lm_head``; None: tied to the input
    embeddings) and each token's step (``step_mask``)."""

    def __init__(self, backbone, head: str = "ce", readout: str = "separator", lm_head=None,
                 head_layers: int = 2):
        torch = _torch()
        super().__init__()
        if head not in HEADS:
            raise InputError(f"{head!r}: choose one of {list(HEADS)}", field="head")
        if readout not in READOUTS:
            raise InputError(f"{readout!r}: choose one of {list(READOUTS)}", field="readout")
        if head_layers not in (1, 2):
            raise InputError(f"{head_layers!r}: a step head has 1 or 2 layers",
                             field="head_layers")
        self.head, self.readout, self.head_layers = head, readout, head_layers
        self.model = backbone
        hidden, outputs = backbone.config.hidden_size, 2 if head == "ce" else 1
        # two layers: Qwen2.5-Math-PRM's head; one: transformers' token-classification head
        self.score = (torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                          torch.nn.Linear(hidden, outputs)) if head_layers == 2
                      else torch.nn.Sequential(torch.nn.Linear(hidden, outputs)))
        if readout == "likelihood":
            self.lm_head = lm_head
            # it starts as the LM's own verdict: the positive logit rises with the log-
            # probability of the step's least likely token (a step holding a token the model
            # finds unlikely is suspect); training moves it from there
            self.likelihood = torch.nn.Linear(len(LIKELIHOOD_FEATURES), outputs)
            with torch.no_grad():
                self.likelihood.weight.zero_()
                self.likelihood.bias.zero_()
                self.likelihood.weight[-1, LIKELIHOOD_FEATURES.index("min_logprob")] = 1.0

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids, attention_mask=None, step_mask=None):
        """Head logits at every position: (batch, length, 2) or (batch, length, 1)."""
        return _head(self.score, getattr(self, "likelihood", None),
                     self.features(input_ids, attention_mask, step_mask))

    def features(self, input_ids, attention_mask=None, step_mask=None):
        """What the head reads at every position: the last hidden state, and for the likelihood
        readout the step's likelihood features after it (what a head-only run caches)."""
        torch = _torch()
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.readout != "likelihood":
            return hidden
        if step_mask is None:
            raise ValueError("the likelihood readout needs each token's step (step_mask)")
        likelihood = step_likelihood(self.token_logprobs(hidden, input_ids), step_mask)
        return torch.cat([hidden, likelihood.to(hidden.dtype)], dim=-1)

    def feature_head(self):
        """The head alone, on ``features``: what a head-only run trains, and what PRMs that share
        a backbone apply to its features one after another."""
        return _FeatureHead(self.score, getattr(self, "likelihood", None))

    def token_logprobs(self, hidden, input_ids):
        """log p(token t | tokens before t) under the backbone's LM head; 0 at t = 0. One row at
        a time: a real vocabulary (150k) makes the full logits of a batch gigabytes."""
        torch = _torch()
        weight = (self.lm_head.weight if self.lm_head is not None
                  else self.model.get_input_embeddings().weight)
        rows = []
        for h, ids in zip(hidden, input_ids):
            logits = torch.nn.functional.linear(h[:-1], weight).float()
            picked = logits.gather(-1, ids[1:, None])[:, 0] - logits.logsumexp(-1)
            rows.append(torch.cat([picked.new_zeros(1), picked]))
        return torch.stack(rows)

    def probabilities(self, logits):
        """The positive-class probability from head logits (any leading shape)."""
        torch = _torch()
        if self.head == "ce":
            return torch.softmax(logits.float(), dim=-1)[..., 1]
        return torch.sigmoid(logits.float()[..., 0])


LIKELIHOOD_FEATURES = ("min_logprob", "mean_logprob")


def _head(score, likelihood, features):
    if likelihood is None:
        return score(features)
    width = len(LIKELIHOOD_FEATURES)
    return score(features[..., :-width]) + likelihood(features[..., -width:])


class _FeatureHead(_torch().nn.Module):
    """A PRM's head parameters (``score``, and ``likelihood`` for that readout) on features."""

    def __init__(self, score, likelihood):
        super().__init__()
        self.score, self.likelihood = score, likelihood

    def forward(self, features):
        return _head(self.score, self.likelihood, features)


def step_likelihood(logprobs, step_mask):
    """(batch, length, 2): at every position, the lowest and the mean log-probability of the
    tokens of the current step seen so far; at a step's separator, those of the whole step.

    A step begins where ``step_mask`` turns on and lasts until the next one begins, so the
    separator and the text after it belong to the step before. Computed with cumulative
    operations: a constant offset a step keeps the running minimum inside its step."""
    torch = _torch()
    mask = step_mask.bool()
    begins = mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    step = begins.long().cumsum(-1)
    # in float64: the offsets grow with the step count and must not blur the log-probabilities
    values = torch.where(mask, logprobs.double().clamp(min=-100.0), 0.0)
    offset = step.double() * 1000.0  # a step's values lie below any earlier step's
    lowest = (values - offset).cummin(-1).values + offset
    total, count = values.cumsum(-1), mask.double().cumsum(-1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    start = torch.where(begins, positions, torch.zeros_like(positions)).cummax(-1).values
    before = (start - 1).clamp(min=0)
    has_before = (start > 0).double()
    total = total - total.gather(-1, before) * has_before
    count = count - count.gather(-1, before) * has_before
    mean = total / count.clamp(min=1.0)
    return torch.stack([lowest, mean], dim=-1).float()


@dataclass
class LoadedPRM:
    """A PRM ready to score: the module, its tokenizer and format, the ids it reads."""
    module: object              # StepRewardModel, or a causal LM for lm-tokens formats
    tokenizer: object
    format: PRMFormat
    separator_id: int
    good_bad: tuple[int, int] | None = None

    def probabilities(self, input_ids, attention_mask, step_mask=None):
        """Positive-step probability at every position: (batch, length)."""
        torch = _torch()
        if self.format.readout == "head":
            return self.module.probabilities(self.module(input_ids, attention_mask, step_mask))
        logits = self.module(input_ids=input_ids, attention_mask=attention_mask).logits
        if self.format.readout == "token-classification":  # TRL: label 1 is a correct step
            return torch.softmax(logits.float(), dim=-1)[..., 1]
        pair = logits[..., list(self.good_bad)].float()
        return torch.softmax(pair, dim=-1)[..., 0]


def default_head_layers(config) -> int:
    """Two layers on a Qwen2 backbone (Qwen2.5-Math-PRM's head, so the PRM saves in its release
    layout); one elsewhere (transformers' token-classification head, so the PRM saves as the
    backbone's own ``...ForTokenClassification``)."""
    return 2 if getattr(config, "model_type", None) == "qwen2" else 1


def build_prm(backbone_path_or_config, tokenizer, *, head: str = "ce", seed: int = 0,
              fmt: str = "prmkit", readout: str = "separator", head_layers: int | None = None,
              dtype=None) -> LoadedPRM:
    """A new PRM: the backbone from a model folder (a policy checkpoint, as the paper starts
    from the instruct model) or from a config object, a fresh head, the format's separator.
    The likelihood readout keeps the model's LM head as well (shared with the input embeddings
    when the model ties them). ``dtype`` (a torch dtype) is the weights' own; None keeps
    the checkpoint's loading default (fp32)."""
    torch = _torch()
    from transformers import AutoModel, AutoModelForCausalLM
    torch.manual_seed(seed)
    prm_format = get_format(fmt)
    sep = separator_id(prm_format, tokenizer)
    auto = AutoModelForCausalLM if readout == "likelihood" else AutoModel
    if isinstance(backbone_path_or_config, (str, Path)):
        model = auto.from_pretrained(backbone_path_or_config, dtype=dtype)
    else:
        model = auto.from_config(backbone_path_or_config, dtype=dtype)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    lm_head = None
    if readout == "likelihood":
        output = model.get_output_embeddings()
        tied = output.weight is model.get_input_embeddings().weight
        model, lm_head = model.base_model, None if tied else output
    layers = head_layers or default_head_layers(model.config)
    module = StepRewardModel(model, head, readout, lm_head, layers)
    if dtype is not None:
        module.score.to(dtype)
        if readout == "likelihood":
            module.likelihood.to(dtype)
    return LoadedPRM(module, tokenizer, prm_format, sep)


QWEN_PRM_ARCHITECTURE = "Qwen2ForProcessRewardModel"
PRMKIT_ARCHITECTURE = "PrmkitStepRewardModel"  # no transformers class: prmkit reads it


def layout(module) -> str:
    """How a PRM is saved, chosen so that the field's code reads it without prmkit:

    qwen2.5-math-prm      a Qwen2 backbone with the two-layer, two-output head read at the
                          separator: Qwen2.5-Math-PRM's release (architecture
                          Qwen2ForProcessRewardModel, ``model.*`` and ``score.{0,2}.*``), which
                          vLLM serves with its built-in class and Qwen's own code loads
    token-classification  a one-layer head read at the separator: the backbone's own
                          ``...ForTokenClassification`` (AutoModelForTokenClassification loads
                          it with its head; TRL's PRMs are saved this way)
    prmkit                anything else (the likelihood readout, a one-output head on Qwen2):
                          only prmkit reads the head; the architecture name says so, so that
                          nothing mistakes the folder for the plain backbone
    """
    if module.readout == "separator" and module.head_layers == 1:
        return "token-classification"
    if (module.readout == "separator" and module.head == "ce" and module.head_layers == 2
            and module.config.model_type == "qwen2"):
        return "qwen2.5-math-prm"
    return "prmkit"


def _token_classification(config):
    """(class name, backbone prefix, head tensor names) of the backbone's token-classification
    model, read off a copy built on the meta device (no memory); None where transformers has
    none for this architecture."""
    torch = _torch()
    from transformers import AutoModelForTokenClassification
    try:
        with torch.device("meta"):
            model = AutoModelForTokenClassification.from_config(config)
    except (ValueError, KeyError):
        return None
    prefix = model.base_model_prefix
    head = sorted(k for k in model.state_dict() if not k.startswith(prefix + "."))
    if sorted(k.rsplit(".", 1)[-1] for k in head) != ["bias", "weight"]:
        return None  # a head that is more than one linear layer
    return type(model).__name__, prefix, head


def _saved_tensors(prm: LoadedPRM, state: dict | None = None) -> tuple[dict, object, str]:
    """(tensors under the names of the layout, the config to save, the layout). ``state``: the
    module's tensors when they are gathered elsewhere (from processes that each hold a shard);
    a backbone wrapped with LoRA adapters is saved without them (``prm.adapters``)."""
    import copy

    from prmkit.prm.adapters import base_name
    module = prm.module
    config = copy.deepcopy(module.config)
    if state is None:
        state = module.state_dict()
    state = {base_name(name): _own_storage(value.detach().cpu().contiguous())
             for name, value in state.items() if base_name(name) is not None}
    kind = layout(module)
    outputs = 2 if module.head == "ce" else 1
    if kind == "token-classification":
        found = _token_classification(config)
        if found is None:
            kind = "prmkit"
        else:
            architecture, prefix, head_names = found
            renamed = {}
            for name, value in state.items():
                if name.startswith("model."):
                    renamed[f"{prefix}.{name[len('model.'):]}"] = value
                else:  # score.0.weight / score.0.bias
                    suffix = name.rsplit(".", 1)[-1]
                    renamed[next(h for h in head_names if h.endswith("." + suffix))] = value
            config.architectures, config.num_labels = [architecture], outputs
            return renamed, config, kind
    if kind == "qwen2.5-math-prm":
        config.architectures, config.num_labels = [QWEN_PRM_ARCHITECTURE], outputs
    else:
        config.architectures = [PRMKIT_ARCHITECTURE]
    return state, config, kind


def _own_storage(tensor):
    """The tensor, copied when it is a slice of a larger buffer (FSDP gathers a parameter into
    a padded one): safetensors writes whole storages only."""
    whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return tensor if whole else tensor.clone()


def save_prm(prm: LoadedPRM, path: str | Path, extra=None, state: dict | None = None) -> Path:
    """Write a PRM folder atomically (``rundir.replace_folder``) in its ``layout``: the config,
    the weights (sharded above 5 GB, as transformers shards, with the index file), the
    tokenizer and ``prm.json`` (format, head, readout, layout). ``extra(folder)`` may add files
    before it is moved into place."""
    from huggingface_hub import save_torch_state_dict

    from prmkit.rundir import replace_folder

    def fill(folder: Path) -> None:
        tensors, config, kind = _saved_tensors(prm, state)
        config.save_pretrained(folder)
        # tied weights are one tensor under two names: the library keeps one copy
        save_torch_state_dict(tensors, folder, max_shard_size="5GB")
        prm.tokenizer.save_pretrained(folder)
        (folder / "prm.json").write_text(json.dumps({
            "format": prm.format.name, "head": prm.module.head, "readout": prm.module.readout,
            "head_layers": prm.module.head_layers, "layout": kind}, indent=2) + "\n")
        if extra is not None:
            extra(folder)

    return replace_folder(Path(path), fill)


def _weight_files(path: Path) -> list[str]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return ["model.safetensors"]


def _head_state(path: Path, device: str) -> dict:
    """The PRM's own tensors (everything but the backbone's ``model.*``), read alone: safetensors
    opens a file without loading it, so a 7B checkpoint costs only its head here."""
    from safetensors import safe_open
    state = {}
    for name in _weight_files(path):
        if not (path / name).exists():
            raise InputError(f"missing weights file {name}", path=path)
        with safe_open(str(path / name), framework="pt", device=device) as f:
            for key in f.keys():
                if not key.startswith("model."):
                    state[key] = f.get_tensor(key)
    return state


def load_prm(path: str | Path, *, fmt: str | None = None, dtype: str = "auto",
             device: str = "auto", device_map: str | None = None) -> LoadedPRM:
    """Open a PRM for scoring: a folder or a hub id; the format comes from the folder unless
    ``fmt`` says. ``device_map`` (transformers': ``auto``, ``balanced``, ...) splits a model
    too large for one GPU over all of them; else the whole model goes to ``device``."""
    torch = _torch()
    from transformers import AutoModel

    from prmkit.models import (
        load_causal_lm,
        load_tokenizer,
        model_folder,
        resolve_device,
        resolve_dtype,
    )
    path = model_folder(path)
    meta = json.loads((path / "prm.json").read_text()) if (path / "prm.json").exists() else {}
    architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    if fmt is None:
        if meta:
            fmt = meta["format"]
        elif "Qwen2ForProcessRewardModel" in architectures:
            fmt = "qwen2.5-math-prm"
        elif any(a.endswith("ForTokenClassification") for a in architectures):
            fmt = "trl"  # TRL's PRMTrainer trains AutoModelForTokenClassification
        else:
            raise InputError("not a PRM folder (no prm.json, no PRM architecture); for a "
                             "Math-Shepherd-style causal LM pass --format math-shepherd",
                             path=path, field="format")
    prm_format = get_format(fmt)
    tokenizer = load_tokenizer(path, padding_side="right")
    sep = separator_id(prm_format, tokenizer)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    placement = device_map or (None if device == "cpu" else device)  # for from_pretrained
    if prm_format.readout == "lm-tokens":
        module = load_causal_lm(path, dtype=dtype, device=device, device_map=device_map)
        return LoadedPRM(module, tokenizer, prm_format, sep, good_bad_ids(prm_format, tokenizer))
    if prm_format.readout == "token-classification":
        from transformers import AutoModelForTokenClassification
        try:
            module = AutoModelForTokenClassification.from_pretrained(
                path, dtype=torch_dtype, device_map=placement)
        except Exception as e:  # safetensors, torch and transformers each raise their own
            raise InputError(f"unreadable token-classification PRM ({type(e).__name__}: {e})",
                             path=path) from None
        if module.config.num_labels != 2:
            raise InputError(f"a TRL PRM has two labels; this one has {module.config.num_labels}",
                             path=path, field="format")
        return LoadedPRM((module if device_map else module.to(device)).eval(), tokenizer,
                         prm_format, sep)
    if meta.get("layout") == "token-classification":
        return LoadedPRM(_from_token_classification(path, meta, torch_dtype, device,
                                                    device_map),
                         tokenizer, prm_format, sep)
    state = _head_state(path, "cpu" if device_map else device)
    last = "score.2.weight" if "score.2.weight" in state else "score.0.weight"
    if last not in state:
        raise InputError(f"no step head (score.*) in the weights: not a {fmt} PRM", path=path)
    head = meta.get("head") or ("ce" if state[last].shape[0] == 2 else "bce")
    readout = meta.get("readout", "separator")
    head_layers = meta.get("head_layers") or (2 if last == "score.2.weight" else 1)
    # the backbone through from_pretrained: read lazily, straight into its dtype and device
    # (sharded files too), never built at random in fp32 first and then overwritten
    try:
        backbone = AutoModel.from_pretrained(path, dtype=torch_dtype, device_map=placement)
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        raise InputError(f"unreadable backbone ({type(e).__name__}: {e})", path=path) from None
    lm_head = None
    if "lm_head.weight" in state:  # an untied LM head, kept for the likelihood readout
        vocab, hidden = state["lm_head.weight"].shape
        lm_head = torch.nn.Linear(hidden, vocab, bias=False)
    module = StepRewardModel(backbone, head, readout, lm_head, head_layers)
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(f"weights do not match a {fmt} PRM ({str(e).splitlines()[0]})",
                         path=path) from None
    expected = {k for k in module.state_dict() if not k.startswith("model.")}
    if expected - set(state):
        raise InputError(f"weights do not match a {fmt} PRM (missing "
                         f"{sorted(expected - set(state))[0]})", path=path)
    return LoadedPRM(_place(module, device, torch_dtype, device_map), tokenizer, prm_format, sep)


def _place(module, device: str, torch_dtype, device_map: str | None):
    """The whole PRM on ``device``; or, where from_pretrained has spread the backbone over
    several GPUs (``device_map``), the head alone, beside the backbone's last layer."""
    if not device_map:
        return module.to(device=device, dtype=torch_dtype).eval()
    last = list(module.model.parameters())[-1].device
    for name, child in module.named_children():
        if name != "model":
            child.to(device=last, dtype=torch_dtype)
    return module.eval()


def _from_token_classification(path: Path, meta: dict, torch_dtype, device: str,
                               device_map: str | None = None):
    """A prmkit PRM saved as ``...ForTokenClassification``: loaded by transformers with its
    head, then the backbone and the head's one linear layer go into a ``StepRewardModel``."""
    from transformers import AutoModelForTokenClassification
    try:
        saved = AutoModelForTokenClassification.from_pretrained(
            path, dtype=torch_dtype,
            device_map=device_map or (None if device == "cpu" else device))
    except Exception as e:  # safetensors, torch and transformers each raise their own
        raise InputError(f"unreadable token-classification PRM ({type(e).__name__}: {e})",
                         path=path) from None
    backbone = getattr(saved, saved.base_model_prefix)
    head_name = next(n for n, _ in saved.named_parameters()
                     if not n.startswith(saved.base_model_prefix + "."))
    linear = saved.get_submodule(head_name.rsplit(".", 1)[0])
    module = StepRewardModel(backbone, meta.get("head", "ce"), "separator", None, 1)
    module.score[0] = linear
    return _place(module, device, torch_dtype, device_map)
