"""Loading tokenizers and causal LMs from a local folder, with errors that say what is wrong.

``load_tokenizer`` reads ``tokenizer.json`` with ``PreTrainedTokenizerFast`` when the folder has
one: in transformers 5, ``AutoTokenizer`` on a folder whose config says ``qwen2`` builds Qwen's
tokenizer class and silently drops a custom tokenizer (our character tokenizer, for one). Only
folders without ``tokenizer.json`` (slow, sentencepiece-only tokenizers) go through AutoTokenizer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from prmkit.errors import InputError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def model_folder(name: str | Path, field: str = "model") -> Path:
    """A model's local folder: ``name`` itself when it is a folder with a config.json, else a
    hub id (``Qwen/Qwen2.5-Math-PRM-7B``) fetched into (or found in) the Hugging Face cache by
    huggingface_hub, as ``from_pretrained`` would; ``HF_HUB_OFFLINE=1`` reads the cache alone.
    Anything else is an error that says which."""
    return _local_or_hub(name, field, MODEL_FOLDER)


def tokenizer_folder(name: str | Path, field: str = "tokenizer") -> Path:
    """A tokenizer's local folder: ``name`` itself when it holds a ``tokenizer.json`` or a
    ``tokenizer_config.json`` (what the tokenizer classes read: a model's config.json is not
    needed), else a hub id as ``model_folder`` has it, with its tokenizer files alone fetched.
    Anything else is an error that names the path."""
    return _local_or_hub(name, field, TOKENIZER_FOLDER)


@dataclass(frozen=True)
class _FolderKind:
    what: str                           # "model" or "tokenizer", for the messages
    needs: tuple[str, ...]              # a folder of the kind holds one of these files
    not_here: str                       # the error for a local folder without them
    download: tuple[str, ...] | None    # the files of a hub repository fetched (None: all)


MODEL_FOLDER = _FolderKind("model", ("config.json",),
                           "no config.json here: not a saved Hugging Face model", None)
# a tokenizer's files (BPE, SentencePiece, tiktoken vocabularies, chat templates), never the
# weights: the openai backend's tokenizer only renders prompts, the model runs elsewhere
TOKENIZER_FOLDER = _FolderKind(
    "tokenizer", ("tokenizer.json", "tokenizer_config.json"),
    "no tokenizer.json or tokenizer_config.json here: not a saved tokenizer",
    ("*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"))


def _local_or_hub(name: str | Path, field: str, kind: _FolderKind) -> Path:
    path = Path(name)
    if path.is_dir():
        if not any((path / f).exists() for f in kind.needs):
            raise InputError(kind.not_here, path=path, field=field)
        return path
    if path.exists() or not HUB_ID.match(str(name)):
        raise InputError(f"{kind.what} folder not found (and not a hub id such as org/name)",
                         path=path, field=field)
    from huggingface_hub import snapshot_download
    try:
        folder = Path(snapshot_download(str(name), allow_patterns=kind.download))
    except Exception as e:  # offline, unknown repo, gated, no network: one line each
        raise InputError(f"not a local folder, and the hub copy could not be had "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]})", path=path,
                         field=field) from None
    if not any((folder / f).exists() for f in kind.needs):
        raise InputError(f"the hub repository has no {' or '.join(kind.needs)}: not a "
                         f"{kind.what}", path=path, field=field)
    return folder


def model_as_input(model: str | Path) -> tuple[str | None, dict]:
    """How a stage that reads a model records it: a local folder as an input (its files
    hashed), a hub id by the snapshot it resolves to, in the stage's config (hashing a
    downloaded 72B model's files would take longer than using it). Returns (the input path or
    None, what the config adds)."""
    if Path(model).exists():
        return str(model), {}
    return None, {"model_snapshot": model_folder(model).name}


def load_tokenizer(path: str | Path, *, padding_side: str = "left"):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    path = Path(path)
    if not path.is_dir():
        raise InputError("tokenizer folder not found", path=path)
    try:
        if (path / "tokenizer.json").exists():
            tok = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable tokenizer ({e})", path=path) from None
    # transformers 5 builds a tokenizer of special tokens alone where a fast-only tokenizer
    # lost its tokenizer.json: every text would encode to nothing, silently
    if not tok("1 + 1 = 2", add_special_tokens=False)["input_ids"]:
        raise InputError("the tokenizer encodes text to nothing: no vocabulary (is its "
                         "tokenizer.json missing?)", path=path)
    tok.padding_side = padding_side
    if tok.pad_token is None:  # many causal LMs ship without one; padding is masked anyway
        tok.pad_token = tok.eos_token
    return tok


DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str = "auto") -> str:
    """``auto``: the first GPU when there is one, else the CPU; any other name as given."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """The torch dtype of a name; ``auto`` is bfloat16 on a GPU and float32 on the CPU (where
    bf16 matmuls are slower and the toy models need fp32 precision)."""
    import torch
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {list(DTYPES)}", field="dtype")
    if dtype == "auto":
        return torch.bfloat16 if resolve_device(device).startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_causal_lm(path: str | Path, *, dtype: str = "auto", device: str = "auto",
                   device_map: str | None = None):
    """A causal LM from a folder or hub id, read lazily into its dtype; on ``device``, or
    spread over several GPUs by ``device_map`` (transformers': ``auto``, ``balanced``)."""
    from transformers import AutoModelForCausalLM
    path = model_folder(path)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype,
                                                     device_map=device_map)
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        raise InputError(f"unreadable checkpoint ({type(e).__name__}: {e})", path=path) from None
    return (model if device_map else model.to(device)).eval()


def quiet_transformers() -> None:
    """No per-file progress bars or advisory warnings from transformers in our own output."""
    from transformers.utils import logging
    logging.disable_progress_bar()
    logging.set_verbosity_error()


def attention_in_fp32(model) -> None:
    """Run every attention block of ``model`` outside bf16 autocast (the MLPs keep it).

    Small models that copy or compare digits at exact distances need sharp attention, and bf16
    query/key products blur it. Measured on the toy policy (default world, 400 steps):
    held-out accuracy 9.6% with full bf16 autocast, 15.2% all in fp32 (0.75 s a step), 17.1%
    with fp32 attention only (0.62 s a step, as fast as full bf16)."""
    import torch

    def fp32_forward(forward, hidden_states, *args, **kwargs):
        with torch.autocast(hidden_states.device.type, enabled=False):
            return forward(hidden_states.float(), *args, **kwargs)

    for module in model.modules():
        if type(module).__name__.endswith("Attention"):
            module.forward = functools.partial(fp32_forward, module.forward)
