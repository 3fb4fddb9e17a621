"""A PRM: any Hugging Face backbone plus a step head, or a causal LM read at its step tags.

``StepRewardModel`` is a base model (``AutoModel``: the transformer without its LM head) under
``model`` and a two-layer head under ``score`` (Linear, ReLU, Linear), the parameter names of
Qwen2.5-Math-PRM's own class, so its released weights load here without ``trust_remote_code``.
The head has two outputs (cross-entropy; the score is the softmax's positive class) or one
(binary cross-entropy; the score is its sigmoid). With ``readout="likelihood"`` the head also
reads the backbone LM's log-probabilities of each step's tokens (``likelihood.*``, and
``lm_head.*`` when the LM head is not tied to the input embeddings).

A PRM folder holds ``config.json`` (the backbone's), ``model.safetensors`` (``model.*`` and
``score.*``), the tokenizer and ``prm.json`` (format, head, readout). A PRM saved as a class
transformers lacks (the Qwen2.5-Math-PRM release's, prmkit's own head) also holds that class's
modeling file (``MODELING_FILES``), named in config.json's ``auto_map``, so that
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` builds the PRM, not the bare
backbone, where prmkit is not installed; prmkit itself never runs that code. ``load_prm`` opens:

    a prmkit PRM folder               (prm.json)
    a Qwen2.5-Math-PRM release        (config.json architectures: Qwen2ForProcessRewardModel)
    any causal LM with format="math-shepherd"  (read at its ки tags, no head)

after ``prmkit.prm.checks.check_prm_folder`` has checked the folder cheaply (JSON files and
safetensors headers, never the weights): a broken folder is one ``InputError`` naming its file,
before any work. What a folder records (its prm.json, its format, its head's kind) is read by
``prmkit.prm.folder``, for the loader here and the checks alike; ``save_prm`` writes it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from prmkit.errors import InputError
from prmkit.models import (
    load_causal_lm,
    load_tokenizer,
    model_folder,
    quiet_transformers,
    resolve_device,
    resolve_dtype,
)
from prmkit.prm.adapters import base_name
from prmkit.prm.checks import check_prm_folder
from prmkit.prm.folder import (
    PRMKIT_ARCHITECTURE,
    QWEN_PRM_ARCHITECTURE,
    about_the_model_format,
    head_settings,
    json_object,
    prm_json,
    recorded_format,
)
from prmkit.prm.formats import PRMFormat, get_format, good_bad_ids, separator_id
from prmkit.rundir import replace_folder


def _torch():
    import torch
    return torch


def _modules():
    """``prmkit.prm.modules``, imported when a PRM is built or loaded."""
    # why here: it imports torch, and the CLI imports this module
    from prmkit.prm import modules
    return modules


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
        if self.format.score_from == "head":
            return self.module.probabilities(self.module(input_ids, attention_mask, step_mask))
        logits = self.module(input_ids=input_ids, attention_mask=attention_mask).logits
        if self.format.score_from == "token-classification":  # TRL: label 1 is a correct step
            return torch.softmax(logits.float(), dim=-1)[..., 1]
        pair = logits[..., list(self.good_bad)].float()
        return torch.softmax(pair, dim=-1)[..., 0]


def default_head_layers(config) -> int:
    """Two layers on a Qwen2 backbone (Qwen2.5-Math-PRM's head, so the PRM saves in its release
    layout); one elsewhere (transformers' token-classification head, so the PRM saves as the
    backbone's own ``...ForTokenClassification``)."""
    return 2 if getattr(config, "model_type", None) == "qwen2" else 1


def build_prm(backbone_path_or_config, tokenizer, *, head: str = "ce", seed: int = 0,
              fmt: str = "step-token", readout: str = "separator", head_layers: int | None = None,
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
        quiet_transformers()
        try:
            model = auto.from_pretrained(backbone_path_or_config, dtype=dtype)
        except Exception as e:  # safetensors, torch and transformers each raise their own
            raise InputError(f"unreadable checkpoint ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''})",
                             path=backbone_path_or_config) from None
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
    module = _modules().StepRewardModel(model, head, readout, lm_head, layers)
    if dtype is not None:
        module.score.to(dtype)
        if readout == "likelihood":
            module.likelihood.to(dtype)
    return LoadedPRM(module, tokenizer, prm_format, sep)


def layout(module) -> str:
    """How a PRM is saved, chosen so that the field's code reads it without prmkit:

    qwen2.5-math-prm      a Qwen2 backbone with the two-layer, two-output head read at the
                          separator: Qwen2.5-Math-PRM's release (architecture
                          Qwen2ForProcessRewardModel, ``model.*`` and ``score.{0,2}.*``), which
                          vLLM serves with its built-in class and Qwen's own code loads
    token-classification  a one-layer head read at the separator: the backbone's own
                          ``...ForTokenClassification`` (AutoModelForTokenClassification loads
                          it with its head; TRL's PRMs are saved this way)
    prmkit-head           anything else (the likelihood readout, a one-output head on Qwen2):
                          the backbone's weights and a head only prmkit reads; the architecture
                          name says so, so that nothing mistakes the folder for the plain
                          backbone
    """
    if module.readout == "separator" and module.head_layers == 1:
        return "token-classification"
    if (module.readout == "separator" and module.head == "ce" and module.head_layers == 2
            and module.config.model_type == "qwen2"):
        return "qwen2.5-math-prm"
    return "prmkit-head"


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


# The modeling files a saved PRM folder carries (prmkit/prm/release/, shipped as package data),
# by layout: the one class each defines is the architecture config.json names, and auto_map
# points AutoModel at it. They import torch and transformers alone, never prmkit.
RELEASE_CODE = Path(__file__).resolve().parent / "release"
MODELING_FILES = {"qwen2.5-math-prm": ("modeling_prmkit_qwen2_prm.py", QWEN_PRM_ARCHITECTURE),
                  "prmkit-head": ("modeling_prmkit_step_reward.py", PRMKIT_ARCHITECTURE)}


def _modeling_code(config, kind: str) -> tuple[str, str] | None:
    """(file name, text) of the modeling file a folder of layout ``kind`` carries; None where
    it carries none. prmkit's own head reads any backbone: its file is given the backbone's
    classes by name (those AutoModel picks for the config), so a backbone transformers does not
    export (remote code) gets no file, as before there was one."""
    if kind not in MODELING_FILES:
        return None
    file = MODELING_FILES[kind][0]
    text = (RELEASE_CODE / file).read_text(encoding="utf-8")
    if kind == "prmkit-head":
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
        model = MODEL_MAPPING_NAMES.get(getattr(config, "model_type", None))
        config_class = type(config).__name__
        if not isinstance(model, str) or not hasattr(transformers, model) \
                or getattr(transformers, config_class, None) is not type(config):
            return None
        for name, value in (("BACKBONE_MODEL", model), ("BACKBONE_CONFIG", config_class)):
            line = f"\n{name} = None\n"
            if text.count(line) != 1:  # the shipped file is prmkit's own: a broken one is a bug
                raise RuntimeError(f"{file} has no single line {line.strip()!r}")
            text = text.replace(line, f"\n{name} = {value!r}\n")
    return file, text


def _describe_code(config, kind: str, state: dict, module) -> None:
    """config.json's ``auto_map`` (and, for prmkit's own head, ``prmkit_step_head``: what its
    modeling file builds) for a folder of layout ``kind``. A config copied from a folder saved
    before (a PRM trained on from a saved PRM, a backbone shipped with remote code) loses the
    ones it carried: the folder ships no code but its own, so any other reference would point
    at a file that is not there."""
    for stale in ("auto_map", "prmkit_step_head"):
        if stale in config.__dict__:
            delattr(config, stale)
    if _modeling_code(config, kind) is None:
        return
    file, architecture = MODELING_FILES[kind]
    config.auto_map = {"AutoModel": f"{file.removesuffix('.py')}.{architecture}"}
    if kind == "prmkit-head":
        config.prmkit_step_head = {"head": module.head, "readout": module.readout,
                                   "layers": module.head_layers,
                                   "lm_head": "lm_head.weight" in state}


def _saved_tensors(prm: LoadedPRM, state: dict | None = None) -> tuple[dict, object, str]:
    """(tensors under the names of the layout, the config to save, the layout). ``state``: the
    module's tensors when they are gathered elsewhere (from processes that each hold a shard);
    a backbone wrapped with LoRA adapters is saved without them (``prm.adapters``)."""
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
            kind = "prmkit-head"
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
            _describe_code(config, kind, renamed, module)
            return renamed, config, kind
    if kind == "qwen2.5-math-prm":
        config.architectures, config.num_labels = [QWEN_PRM_ARCHITECTURE], outputs
    else:
        config.architectures = [PRMKIT_ARCHITECTURE]
    _describe_code(config, kind, state, module)
    return state, config, kind


def _own_storage(tensor):
    """The tensor, copied when it is a slice of a larger buffer (FSDP gathers a parameter into
    a padded one): safetensors writes whole storages only."""
    whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return tensor if whole else tensor.clone()


def save_prm(prm: LoadedPRM, path: str | Path, extra=None, state: dict | None = None) -> Path:
    """Write a PRM folder atomically (``rundir.replace_folder``) in its ``layout``: the config,
    the weights (sharded above 5 GB, as transformers shards, with the index file), the
    tokenizer, ``prm.json`` (format, head, readout, layout) and, for a layout transformers has
    no class for, that class's modeling file (``MODELING_FILES``). ``extra(folder)`` may add
    files before it is moved into place."""
    from huggingface_hub import save_torch_state_dict

    def fill(folder: Path) -> None:
        tensors, config, kind = _saved_tensors(prm, state)
        config.save_pretrained(folder)
        # tied weights are one tensor under two names: the library keeps one copy
        with _disk_errors(folder):
            save_torch_state_dict(tensors, folder, max_shard_size="5GB")
        prm.tokenizer.save_pretrained(folder)
        code = _modeling_code(config, kind)
        if code is not None:
            (folder / code[0]).write_text(code[1], encoding="utf-8")
        (folder / "prm.json").write_text(json.dumps({
            "format": prm.format.name, "head": prm.module.head, "readout": prm.module.readout,
            "head_layers": prm.module.head_layers, "layout": kind}, indent=2) + "\n")
        if extra is not None:
            extra(folder)

    return replace_folder(Path(path), fill)


@contextlib.contextmanager
def _disk_errors(folder: Path):
    """safetensors' writer reports a full or read-only disk as its own error type ("... (os
    error 28)"): made the OSError it is, so the command says it in one line."""
    try:
        yield
    except Exception as e:
        found = re.search(r"os error (\d+)", str(e))
        if isinstance(e, OSError) or found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(folder)) from None


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
    too large for one GPU over all of them; else the whole model goes to ``device``. The folder
    is checked first (``checks.check_prm_folder``): a broken one is an ``InputError`` naming
    its file, before anything is loaded."""
    local = Path(path).is_dir()
    path = model_folder(path)
    check_prm_folder(path, fmt, files=local)
    quiet_transformers()  # no "Loading weights" bar: a command's output is its own
    meta = prm_json(path)
    if fmt is None:
        fmt = _format_of(path, meta)
    tokenizer = _tokenizer(path)
    with about_the_model_format(path):
        prm_format = get_format(fmt)
        sep = separator_id(prm_format, tokenizer)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if prm_format.score_from == "lm-tokens":
        module = load_causal_lm(path, dtype=dtype, device=device, device_map=device_map)
        with about_the_model_format(path):
            good_bad = good_bad_ids(prm_format, tokenizer)
        return LoadedPRM(module, tokenizer, prm_format, sep, good_bad)
    if prm_format.score_from == "token-classification":
        module = _load_trl(path, torch_dtype, device, device_map)
    elif meta.get("layout") == "token-classification":
        module = _from_token_classification(path, meta, torch_dtype, device, device_map)
    else:
        module = _load_with_head(path, meta, fmt, torch_dtype, device, device_map)
    return LoadedPRM(module, tokenizer, prm_format, sep)


def _tokenizer(path: Path):
    """The folder's tokenizer, or one line naming its file (the tokenizers library raises
    plain ``Exception`` on a malformed tokenizer.json)."""
    file = path / "tokenizer.json"
    file = file if file.exists() else path / "tokenizer_config.json"
    try:
        return load_tokenizer(path, padding_side="right")
    except InputError as e:
        raise InputError(e.message, path=file) from None
    except Exception as e:
        raise InputError(f"unreadable tokenizer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''})", path=file) \
            from None


def _format_of(path: Path, meta: dict) -> str:
    """The PRM format a folder says it has: its prm.json, else its architecture."""
    recorded = recorded_format(meta, json_object(path / "config.json"))
    if recorded is None:
        raise InputError("not a PRM folder (no prm.json, no PRM architecture); for a "
                         "Math-Shepherd-style causal LM pass --model-format math-shepherd "
                         "(fmt=\"math-shepherd\" in Python)", path=path, field="model_format")
    return recorded


def _placement(device: str, device_map: str | None):
    """from_pretrained's ``device_map``: the one asked for, else the device (None: the CPU)."""
    return device_map or (None if device == "cpu" else device)


def _token_classification_model(path: Path, torch_dtype, device: str,
                                 device_map: str | None):
    """The folder's ``...ForTokenClassification``, loaded by transformers with its head."""
    from transformers import AutoModelForTokenClassification
    try:
        return AutoModelForTokenClassification.from_pretrained(
            path, dtype=torch_dtype, device_map=_placement(device, device_map))
    except Exception as e:  # safetensors, torch and transformers each raise their own
        raise InputError(f"unreadable token-classification PRM ({type(e).__name__}: {e})",
                         path=path) from None


def _load_trl(path: Path, torch_dtype, device: str, device_map: str | None):
    """A PRM trained by TRL: the backbone's ``...ForTokenClassification`` with two labels."""
    module = _token_classification_model(path, torch_dtype, device, device_map)
    if module.config.num_labels != 2:
        raise InputError(f"a TRL PRM has two labels; this one has {module.config.num_labels}",
                         path=path, field="format")
    return (module if device_map else module.to(device)).eval()


def _load_with_head(path: Path, meta: dict, fmt: str, torch_dtype, device: str,
                    device_map: str | None):
    """A backbone and a step head (``StepRewardModel``): a prmkit PRM or a Qwen2.5-Math-PRM
    release. The head's kind comes from prm.json, else from the shapes of its tensors."""
    torch = _torch()
    state = _head_state(path, "cpu" if device_map else device)
    last = "score.2.weight" if "score.2.weight" in state else "score.0.weight"
    if last not in state:
        raise InputError(f"no step head (score.*) in the weights: not a {fmt} PRM", path=path)
    head, readout, head_layers = head_settings(meta, {k: list(v.shape)
                                                      for k, v in state.items()})
    backbone = _load_backbone(path, torch_dtype, _placement(device, device_map))
    lm_head = None
    if "lm_head.weight" in state:  # an untied LM head, kept for the likelihood readout
        vocab, hidden = state["lm_head.weight"].shape
        lm_head = torch.nn.Linear(hidden, vocab, bias=False)
    module = _modules().StepRewardModel(backbone, head, readout, lm_head, head_layers)
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(f"weights do not match a {fmt} PRM ({str(e).splitlines()[0]})",
                         path=path) from None
    expected = {k for k in module.state_dict() if not k.startswith("model.")}
    if expected - set(state):
        raise InputError(f"weights do not match a {fmt} PRM (missing "
                         f"{sorted(expected - set(state))[0]})", path=path)
    return _place(module, device, torch_dtype, device_map)


# The PRM's own tensors, saved beside the backbone's: _head_state reads them on their own, so the
# backbone's class is told to expect them in the folder
PRM_OWN_TENSORS = r"^(score|likelihood|lm_head)\."


def _load_backbone(path: Path, torch_dtype, placement):
    """The backbone through from_pretrained: read lazily, straight into its dtype and device
    (sharded files too), never built at random in fp32 first and then overwritten. A backbone
    weight missing from the folder is an error (transformers would start it at random)."""
    try:
        backbone, info = _backbone_class(path).from_pretrained(
            path, dtype=torch_dtype, device_map=placement, output_loading_info=True)
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        raise InputError(f"unreadable backbone ({type(e).__name__}: {e})", path=path) from None
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise InputError(f"the backbone's weights are incomplete: {len(missing)} missing "
                         f"(first: {missing[0]})", path=path)
    return backbone


def _backbone_class(path: Path):
    """The class AutoModel picks for the folder's backbone, made to ignore the PRM's own tensors
    (``PRM_OWN_TENSORS``) in the folder. Without that, transformers logs a LOAD REPORT on every
    load that lists them as UNEXPECTED; ``_keys_to_ignore_on_load_unexpected`` is its own way
    of saying they are expected, and the report still lists anything else unexpected, missing
    or mismatched."""
    torch = _torch()
    from transformers import AutoConfig, AutoModel
    with torch.device("meta"):  # only the class is wanted: no memory, no initialisation
        base = type(AutoModel.from_config(AutoConfig.from_pretrained(path)))
    return _ignoring_prm_tensors(base)


@functools.cache
def _ignoring_prm_tensors(base):
    """A subclass of ``base`` (same name and module) that ignores ``PRM_OWN_TENSORS``."""
    ignored = set(base._keys_to_ignore_on_load_unexpected or ()) | {PRM_OWN_TENSORS}
    return type(base.__name__, (base,), {"__module__": base.__module__,
                                         "_keys_to_ignore_on_load_unexpected": sorted(ignored)})


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
    saved = _token_classification_model(path, torch_dtype, device, device_map)
    backbone = getattr(saved, saved.base_model_prefix)
    head_name = next(n for n, _ in saved.named_parameters()
                     if not n.startswith(saved.base_model_prefix + "."))
    linear = saved.get_submodule(head_name.rsplit(".", 1)[0])
    module = _modules().StepRewardModel(backbone, meta.get("head", "ce"), "separator", None, 1)
    module.score[0] = linear
    return _place(module, device, torch_dtype, device_map)
