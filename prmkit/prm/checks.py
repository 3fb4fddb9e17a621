"""Checking a PRM folder before any work: ``check_prm`` (the PRM a user named) and
``check_prm_folder``.

A broken folder must fail in one line naming its file, before anything is loaded or scored: a
traceback from safetensors or tokenizers says nothing useful, and a config.json that does not
describe the weights (another architecture, other sizes) would otherwise score anyway, with
other numbers. So, in order:

- config.json and prm.json: JSON objects, with values transformers and prmkit know, that agree
  with each other (the architecture prm.json's layout is saved as, the number of labels of its
  head);
- the format asked (``--model-format``) against the one the folder records;
- the tokenizer's files are there;
- every safetensors file is whole (its header alone: its length, every tensor's end inside the
  file), and the weights' names and shapes are those of the model config.json and prm.json
  describe, built on the meta device.

The checks are cheap: JSON files and safetensors headers only, never the weights themselves,
and no memory for the model they describe; a folder checked once is not checked again until
its files change. What a folder records is read by ``prmkit.prm.folder``, as the loader
(``prmkit.prm.model``) reads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from prmkit.errors import InputError
from prmkit.models import HUB_ID, model_folder
from prmkit.prm.folder import (
    LAYOUTS,
    PRMKIT_ARCHITECTURE,
    QWEN_PRM_ARCHITECTURE,
    about_the_model_format,
    head_settings,
    json_object,
    prm_json,
    recorded_format,
)
from prmkit.prm.formats import get_format, trainable_formats

# tensors checkpoints carry that no model class holds (older Llama-style checkpoints saved
# their rotary tables); transformers ignores them on load, so do we
IGNORED_TENSORS = (r"rotary_emb\.inv_freq$",)
_CHECKED: set = set()  # folders already checked, by their files' sizes and times


def _modules():
    """``prmkit.prm.modules`` (the heads, the readouts, ``StepRewardModel``), imported when a
    folder is checked."""
    # why here: it imports torch at its top (a heavy library), and the CLI imports this module
    from prmkit.prm import modules
    return modules


def check_prm(model: str | Path, fmt: str | None = None) -> None:
    """Check the PRM a user named, before any work: a local folder whole
    (``check_prm_folder``); a hub id is checked when ``load_prm`` has fetched it (its format;
    the hub verifies its files). A path that is neither is an error now."""
    if Path(model).is_dir() or Path(model).exists() or not HUB_ID.match(str(model)):
        check_prm_folder(model_folder(model), fmt)


def check_prm_folder(path: str | Path, fmt: str | None = None, *, files: bool = True) -> None:
    """Check a PRM folder cheaply, before any work; an ``InputError`` naming the file if not:

    - config.json is JSON that transformers reads; prm.json (where there is one) is JSON with
      known values, and agrees with config.json (the architecture its layout is saved as, the
      number of labels its head has);
    - ``fmt`` (``--model-format``), when given, is the format the folder records (prm.json, or
      the architecture of a Qwen2.5-Math-PRM or TRL release): another format would lay the
      steps out differently and read other positions, with no error;
    - with ``files`` (a local folder; a hub download is verified by the hub): the tokenizer's
      files are there; every safetensors file is whole (its header read alone: its length
      and every tensor's end inside the file); and the weights' names and shapes are those of
      the model config.json and prm.json describe, built on the meta device (no memory).

    Checks that depend on transformers' checkpoint conversions (MoE experts fused on load) or
    on quantized weights are left to the loader."""
    folder = Path(path)
    key = (str(folder.resolve()), fmt, files, _signature(folder))
    if key in _CHECKED:
        return
    if fmt is not None:
        with about_the_model_format(folder):
            get_format(fmt)  # a name prmkit knows, before it is compared with the folder's
    raw_config = json_object(folder / "config.json")
    config = _transformers_config(folder)
    meta = _checked_prm_json(folder)
    _check_layout_against_config(folder, meta, raw_config, config)
    recorded = recorded_format(meta, raw_config)
    if fmt is not None and recorded is not None and fmt != recorded:
        source = "prm.json" if meta else "config.json"
        raise InputError(f"this PRM was saved for the {recorded!r} format ({source}), but "
                         f"{fmt!r} was asked: it would lay the steps out differently and read "
                         f"other positions; leave --model-format out, or pass {recorded}",
                         path=folder / source, field="model_format")
    if files:
        _check_tokenizer_files(folder)
        _check_weights(folder, config, meta, fmt or recorded)
    _CHECKED.add(key)


def _signature(folder: Path) -> tuple:
    """What changes when a folder's files do: names, sizes, modification times."""
    try:
        return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                            for f in folder.iterdir() if f.is_file()))
    except OSError:
        return ()


def _transformers_config(folder: Path):
    """config.json as transformers reads it (its model_type known, its values valid)."""
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(folder)
    except Exception as e:  # transformers raises ValueError, KeyError, TypeError, OSError
        raise InputError(f"not a config transformers can read ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''})",
                         path=folder / "config.json") from None


def _checked_prm_json(folder: Path) -> dict:
    """prm.json's values, each one prmkit knows ({} where there is no prm.json)."""
    meta = prm_json(folder)
    if not (folder / "prm.json").exists():
        return meta
    file, modules = folder / "prm.json", _modules()
    known = {"format": trainable_formats(),
             "layout": list(LAYOUTS), "head": list(modules.HEADS),
             "readout": list(modules.READOUTS), "head_layers": [1, 2]}
    if "format" not in meta:
        raise InputError("no format (prmkit writes one in every PRM folder)", path=file,
                         field="format")
    for name, values in known.items():
        if name in meta and meta[name] not in values:
            raise InputError(f"{meta[name]!r} is not one of {values}", path=file, field=name)
    return meta


def _check_layout_against_config(folder: Path, meta: dict, raw_config: dict, config) -> None:
    """prm.json's layout is the architecture config.json names, and its head has the number
    of labels config.json gives (both written by one ``save_prm``)."""
    layout = meta.get("layout")
    if layout is None:
        return
    architectures = [str(a) for a in raw_config.get("architectures") or []]
    fits = {"qwen2.5-math-prm": QWEN_PRM_ARCHITECTURE in architectures
                                and getattr(config, "model_type", None) == "qwen2",
            "prmkit-head": PRMKIT_ARCHITECTURE in architectures,
            "token-classification": any(a.endswith("ForTokenClassification")
                                        for a in architectures)}[layout]
    if not fits:
        raise InputError(f"prm.json says layout {layout!r}, but config.json says architectures "
                         f"{architectures} (model_type {getattr(config, 'model_type', None)!r}): "
                         "the two files describe different models", path=folder / "prm.json",
                         field="layout")
    if layout != "prmkit-head" and "head" in meta:
        outputs = 2 if meta["head"] == "ce" else 1
        if config.num_labels != outputs:
            raise InputError(f"prm.json says head {meta['head']!r} ({outputs} outputs), but "
                             f"config.json has {config.num_labels} labels",
                             path=folder / "prm.json", field="head")


def _check_tokenizer_files(folder: Path) -> None:
    if not any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise InputError("missing tokenizer: neither tokenizer.json nor tokenizer_config.json "
                         "is in the PRM folder (save the tokenizer with the model)",
                         path=folder / "tokenizer.json")


def _check_weights(folder: Path, config, meta: dict, fmt: str | None) -> None:
    """Every safetensors file whole, and its tensors those of the model the loader builds."""
    reads_head = fmt is not None and get_format(fmt).score_from == "head" \
        and meta.get("layout") != "token-classification"
    found = _safetensors_tensors(folder, required=reads_head)
    if found is None or fmt is None or getattr(config, "quantization_config", None):
        return  # .bin weights (transformers reads them), an unknown format, packed weights
    expected = _expected_model(folder, config, meta, fmt, found)
    problems = _tensor_problems(expected, found)
    if problems:
        first_file = next((found[n][1] for n in problems["names"] if n in found),
                          next(iter(found.values()))[1])
        described = "config.json and prm.json describe" if meta else "config.json describes"
        raise InputError(f"the weights do not match the model that {described} "
                         f"({_described(config)}): {problems['text']}", path=first_file)


def _described(config) -> str:
    architectures = ", ".join(getattr(config, "architectures", None) or []) or "no architecture"
    return (f"{architectures}, model_type {getattr(config, 'model_type', '?')}, hidden size "
            f"{getattr(config, 'hidden_size', '?')}, "
            f"{getattr(config, 'num_hidden_layers', '?')} layers")


def _weight_files_checked(folder: Path) -> list[Path] | None:
    """The folder's safetensors files (from the index when sharded); None: there are none."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError("no weight_map", path=index, field="weight_map")
        files = [folder / name for name in sorted(set(weight_map.values()))]
        for file in files:
            if not file.exists():
                raise InputError(f"missing weights file {file.name} (listed in "
                                 f"{index.name})", path=file)
        return files
    single = folder / "model.safetensors"
    return [single] if single.exists() else None


def _safetensors_tensors(folder: Path, *, required: bool) -> dict | None:
    """name -> (shape, file) of every tensor in the folder's safetensors files; None where
    there are none and the loader can do without (transformers reads .bin weights)."""
    files = _weight_files_checked(folder)
    if files is None:
        if required:
            raise InputError("missing weights: no model.safetensors (nor "
                             "model.safetensors.index.json); a PRM's weights are read from "
                             "safetensors", path=folder / "model.safetensors")
        return None
    return {name: (shape, file) for file in files
            for name, shape in safetensors_shapes(file).items()}


def safetensors_shapes(file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors file's header alone (an 8-byte little-endian
    length, then that much JSON), and the file checked whole: every tensor's bytes must end
    inside it. A file cut short by a failed copy or download is an error naming it."""
    size = file.stat().st_size
    with file.open("rb") as f:
        length = int.from_bytes(f.read(8), "little") if size >= 8 else None
        if length is None or 8 + length > size:
            raise InputError(f"truncated safetensors file ({size} bytes: its header does not "
                             "fit)", path=file)
        try:
            header = json.loads(f.read(length))
            header.pop("__metadata__", None)
            shapes = {name: [int(d) for d in t["shape"]] for name, t in header.items()}
            end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise InputError(f"malformed safetensors header ({type(e).__name__}: {e})",
                             path=file) from None
    if 8 + length + end > size:
        raise InputError(f"truncated safetensors file: {size} bytes, its header promises "
                         f"{8 + length + end}", path=file)
    return shapes


@dataclass
class _Expected:
    """The module the loader builds for a folder (on the meta device), and how to read it."""
    module: object
    pretrained: object          # its transformers model: what it ignores, what it converts
    ignored: tuple = ()         # file tensors the loader ignores (regular expressions)

    @property
    def converts_backbone(self) -> bool:
        """Whether transformers renames or fuses this model's checkpoint tensors on load (MoE
        experts, in transformers 5): then the backbone's names in the file are not the
        model's, and only the PRM's own tensors are compared."""
        try:
            from transformers.conversion_mapping import get_model_conversion_mapping
            return bool(get_model_conversion_mapping(self.pretrained, add_legacy=False))
        except Exception:  # an older transformers, without conversions: names are the model's
            return False


def _expected_model(folder: Path, config, meta: dict, fmt: str, found: dict) -> _Expected:
    """What the loader builds for this folder, on the meta device (shapes only)."""
    import torch
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForTokenClassification,
    )
    score_from = get_format(fmt).score_from
    try:
        with torch.device("meta"):  # no memory, no initialisation
            if score_from == "lm-tokens":
                module = AutoModelForCausalLM.from_config(config)
                return _Expected(module, module)
            if score_from == "token-classification" or meta.get("layout") == \
                    "token-classification":
                module = AutoModelForTokenClassification.from_config(config)
                return _Expected(module, module)
            if not any(n.startswith("score.") for n in found):
                raise InputError(f"no step head (score.*) in the weights: not a {fmt} PRM",
                                 path=next(iter(found.values()))[1])
            head, readout, layers = head_settings(meta, {n: s for n, (s, _) in found.items()})
            backbone = AutoModel.from_config(config)
            lm_head = None
            if readout == "likelihood" and "lm_head.weight" in found:  # as _load_with_head
                lm_head = torch.nn.Linear(config.hidden_size,
                                          backbone.get_input_embeddings().num_embeddings,
                                          bias=False)
            module = _modules().StepRewardModel(backbone, head, readout, lm_head, layers)
            # the loader reads an LM head only for the likelihood readout
            ignored = () if readout == "likelihood" else (r"^lm_head\.weight$",)
            return _Expected(module, backbone, ignored)
    except InputError:
        raise
    except Exception as e:  # a config transformers reads but cannot build a model from
        raise InputError(f"config.json describes no model transformers can build "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                         path=folder / "config.json") from None


def _tensor_problems(expected: _Expected, found: dict) -> dict | None:
    """Missing, unexpected and mis-shaped tensors of the files against the expected module, as
    one line naming a few of each; None when they match. Tied tensors (one tensor under two
    names) count as present under either name."""
    pretrained = expected.pretrained
    ignored = [*IGNORED_TENSORS, *expected.ignored,
               *(getattr(pretrained, "_keys_to_ignore_on_load_unexpected", None) or ())]
    optional = list(getattr(pretrained, "_keys_to_ignore_on_load_missing", None) or ())
    skip_backbone = expected.converts_backbone
    aliases: dict[int, list[str]] = {}
    shapes = {}
    for name, tensor in expected.module.state_dict(keep_vars=True).items():
        if skip_backbone and name.startswith("model."):
            continue
        aliases.setdefault(id(tensor), []).append(name)
        shapes[name] = list(tensor.shape)
    in_file = {n for n in found if not (skip_backbone and n.startswith("model."))}
    missing = [names[0] for names in aliases.values()
               if not any(n in in_file for n in names)
               and not any(re.search(p, names[0]) for p in optional)]
    unexpected = [n for n in sorted(in_file - shapes.keys())
                  if not any(re.search(p, n) for p in ignored)]
    misshaped = [n for n in sorted(in_file & shapes.keys()) if found[n][0] != shapes[n]]
    if not (missing or unexpected or misshaped):
        return None
    parts = []
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped (" + ", ".join(
            f"{n} {found[n][0]}, expected {shapes[n]}"
            for n in misshaped[:3]) + (", ..." if len(misshaped) > 3 else "") + ")")
    for label, names in (("unexpected", unexpected), ("missing", sorted(missing))):
        if names:
            parts.append(f"{len(names)} {label} (" + ", ".join(names[:3])
                         + (", ..." if len(names) > 3 else "") + ")")
    return {"text": "; ".join(parts), "names": misshaped + unexpected + sorted(missing)}

