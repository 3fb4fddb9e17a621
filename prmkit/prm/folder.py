"""What a PRM folder records, read from its JSON files alone: the names both the loader
(``prmkit.prm.model``) and the checks before it (``prmkit.prm.checks``) read a folder by.

- the architecture names a saved PRM's config.json carries, and the layouts its prm.json names
  (``model.layout`` chooses one when a PRM is saved);
- ``prm_json``: prm.json's values, with the names of folders saved before a rename mapped to
  today's; ``recorded_format``: the PRM format a folder records (prm.json, else its
  architecture); ``head_settings``: the step head's kind (prm.json, else its tensors' shapes);
- ``json_object``: a JSON file read as one object, or one line naming the file;
- ``about_the_model_format``: errors of the PRM's format name the folder and ``model_format``.

It imports no other module of ``prmkit.prm`` but ``formats``, so that the model and the checks
both import it without importing each other.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from prmkit.errors import InputError
from prmkit.prm.formats import LEGACY_FORMAT_NAMES

QWEN_PRM_ARCHITECTURE = "Qwen2ForProcessRewardModel"
QWEN_RM_ARCHITECTURE = "Qwen2ForRewardModel"  # Qwen2.5-Math-RM-72B: an outcome model
PRMKIT_ARCHITECTURE = "PrmkitStepRewardModel"  # no transformers class: prmkit reads it

LAYOUTS = ("qwen2.5-math-prm", "token-classification", "prmkit-head")
# names a PRM folder's prm.json may hold from before a rename: the layout "prmkit" shared its
# name with prmkit's own data format and with a PRM format, and said nothing about the folder
LEGACY_LAYOUT_NAMES = {"prmkit": "prmkit-head"}


def json_object(file: Path) -> dict:
    """A JSON file that must hold an object, or an error naming it and where it breaks."""
    try:
        value = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                         path=file) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"unreadable ({type(e).__name__}: {e})", path=file) from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, found {type(value).__name__}", path=file)
    return value


def prm_json(path: Path) -> dict:
    """A prmkit PRM folder's ``prm.json`` ({} where there is none), with the names of folders
    saved before a rename mapped to today's (``checks.check_prm_folder`` checks its values)."""
    if not (path / "prm.json").exists():
        return {}
    meta = json_object(path / "prm.json")
    if "format" in meta:
        meta["format"] = LEGACY_FORMAT_NAMES.get(meta["format"], meta["format"])
    if "layout" in meta:
        meta["layout"] = LEGACY_LAYOUT_NAMES.get(meta["layout"], meta["layout"])
    return meta


def recorded_format(meta: dict, raw_config: dict) -> str | None:
    """The format a folder records: prm.json's, else the one its architecture implies; None
    for a plain causal LM (its format must be named)."""
    if meta:
        return meta["format"]
    architectures = raw_config.get("architectures") or []
    if QWEN_PRM_ARCHITECTURE in architectures:
        return "qwen2.5-math-prm"
    if QWEN_RM_ARCHITECTURE in architectures:
        return "qwen2.5-math-rm"  # read per step prefix (prmkit.prm.formats)
    if any(str(a).endswith("ForTokenClassification") for a in architectures):
        return "trl"  # TRL's PRMTrainer trains AutoModelForTokenClassification
    return None


def head_settings(meta: dict, shapes: dict) -> tuple[str, str, int]:
    """(head, readout, head_layers) of a step-head PRM: from prm.json, else (a Qwen2.5-Math-PRM
    release) from its head tensors' names and shapes (name -> shape)."""
    last = "score.2.weight" if "score.2.weight" in shapes else "score.0.weight"
    head = meta.get("head") or ("ce" if last in shapes and shapes[last][0] == 2 else "bce")
    layers = meta.get("head_layers") or (2 if last == "score.2.weight" else 1)
    return head, meta.get("readout", "separator"), layers


@contextlib.contextmanager
def about_the_model_format(path: Path):
    """Errors of the PRM's format name the model folder and ``model_format``: in ``prmkit
    score`` and ``eval bon`` the flag is ``--model-format`` (``--format`` is the data's)."""
    try:
        yield
    except InputError as e:
        raise InputError(e.message, path=e.path or path, field="model_format") from None
