"""PrmkitStepRewardModel: a process reward model (PRM) saved by prmkit in its own layout
(prm.json ``"layout": "prmkit-head"``): any transformers backbone and a step head that only
prmkit's layouts describe.

prmkit writes this file into every such folder and names it in config.json's ``auto_map``, so
that

    model = AutoModel.from_pretrained(folder, trust_remote_code=True)

builds the PRM with its step head. Without it AutoModel would build the bare backbone, whose
``outputs[0]`` are hidden states, not step logits. The file needs torch and transformers alone:
the folder works where prmkit is not installed.

The model, as config.json's ``prmkit_step_head`` describes it:

- the backbone (tensors ``model.*``): ``BACKBONE_MODEL`` below, the class AutoModel builds from
  the same config without remote code;
- the step head ``score``: one Linear to the outputs (``score.0.*``), or two with a ReLU between
  (``score.0.*``, ``score.2.*``). ``head`` "ce" has two outputs (a step's probability of being
  correct: the softmax's class 1), "bce" one (its sigmoid);
- with ``readout`` "likelihood", a linear term (``likelihood.*``) added to the head's logits. It
  reads two features of the step being read: the lowest and the mean log-probability the
  backbone's language model gives the step's tokens, each token given those before it. The LM
  head is ``lm_head.*`` where ``lm_head`` is true, else the input embeddings (tied). The
  features need each token's step: ``step_mask``, True at every token of a step's own text
  (never the prompt, never a separator), so that a step begins where the mask turns on.

``forward`` returns ``logits`` (``outputs[0]``: ``[batch, sequence, outputs]``) and
``probabilities`` (``[batch, sequence]``: a step's probability of being correct when read at its
separator). Inference only: no loss is computed.

A solution is laid out as prm.json's ``format`` says, with the tokenizer saved beside:

- ``step-token``: the problem and a blank line, then every step followed by the ``<|step|>``
  token and a blank line; read each step at its ``<|step|>``;
- ``plain``: the problem and a blank line, then the steps, a blank line after each; read each
  step at the first token of its blank line;
- ``qwen2.5-math-prm``: Qwen2.5-Math-PRM's chat layout, every step followed by ``<extra_0>``;
  read each step at its ``<extra_0>``.

The first two tokenize each piece on its own (the prompt; each step; its separator; the text
after it) and join the ids, so that no separator merges with its neighbours; the third
tokenizes the whole conversation at once, as Qwen2.5-Math-PRM's model card does.

With the likelihood readout, right padding needs no attention mask: a causal backbone's output
at a real position never sees the padding after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

# The backbone's model and configuration classes, by their names in transformers: prmkit's
# save_prm writes them here in each folder it saves. Not AutoModel: transformers 4 registers a
# remote class as AutoModel's class for its config's type, so AutoModel would build this very
# class again inside itself; and it refuses a remote class whose config_class is not the config's.
BACKBONE_MODEL = None
BACKBONE_CONFIG = None
LIKELIHOOD_FEATURES = ("min_logprob", "mean_logprob")


@dataclass
class StepRewardOutput(ModelOutput):
    """``logits``: the step head's at every position, [batch, sequence, outputs];
    ``probabilities``: a step's probability of being correct, read at its separator
    [batch, sequence]."""

    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None


class PrmkitStepRewardModel(PreTrainedModel):
    """A backbone and a step head read at every position (config.json ``prmkit_step_head``)."""

    config_class = getattr(transformers, BACKBONE_CONFIG or "PretrainedConfig")
    base_model_prefix = "model"
    # what may not be split across devices (device_map="auto") is the backbone's own: an empty
    # tuple (not None: "cannot be split") makes transformers collect it from the backbone
    _no_split_modules = ()
    # attention is the backbone's own, as its class supports
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config):
        super().__init__(config)
        head = dict(config.prmkit_step_head)
        self.head, self.readout = head["head"], head["readout"]
        if self.head not in ("ce", "bce") or self.readout not in ("separator", "likelihood") \
                or head["layers"] not in (1, 2):
            raise ValueError(f"config.json's prmkit_step_head is not one this file reads: {head}")
        self.model = getattr(transformers, BACKBONE_MODEL)(config)
        width, outputs = config.hidden_size, 2 if self.head == "ce" else 1
        if head["layers"] == 2:
            self.score = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                       nn.Linear(width, outputs))
        else:
            self.score = nn.Sequential(nn.Linear(width, outputs))
        if self.readout == "likelihood":
            self.likelihood = nn.Linear(len(LIKELIHOOD_FEATURES), outputs)
            if head.get("lm_head"):
                vocabulary = self.model.get_input_embeddings().num_embeddings
                self.lm_head = nn.Linear(width, vocabulary, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, step_mask=None, **kwargs):
        """Logits and probabilities at every position (``StepRewardOutput``). ``step_mask``
        ([batch, sequence], True at every token of a step's own text) is needed by the
        likelihood readout alone. Other keyword arguments go to the backbone."""
        return_dict = kwargs.pop("return_dict", None)
        kwargs.setdefault("use_cache", False)  # one pass over a whole solution: nothing to reuse
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)[0]
        logits = self.score(hidden)
        if self.readout == "likelihood":
            if step_mask is None or input_ids is None:
                raise ValueError("the likelihood readout needs input_ids and each token's step "
                                 "(step_mask: True at every token of a step's own text)")
            features = step_features(self.token_logprobs(hidden, input_ids),
                                     step_mask.to(hidden.device))
            logits = logits + self.likelihood(features.to(hidden.dtype))
        if self.head == "ce":
            probabilities = torch.softmax(logits.float(), dim=-1)[..., 1]
        else:
            probabilities = torch.sigmoid(logits.float()[..., 0])
        if return_dict is False:
            return logits, probabilities
        return StepRewardOutput(logits=logits, probabilities=probabilities)

    def token_logprobs(self, hidden, input_ids):
        """log p(token t | the tokens before it) under the backbone's LM head; 0 at t = 0.
        One row at a time: a real vocabulary makes a whole batch's logits gigabytes."""
        lm_head = getattr(self, "lm_head", None)
        weight = lm_head.weight if lm_head is not None else \
            self.model.get_input_embeddings().weight
        rows = []
        for states, ids in zip(hidden, input_ids):
            logits = nn.functional.linear(states[:-1], weight).float()
            chosen = logits.gather(-1, ids[1:, None])[:, 0] - logits.logsumexp(-1)
            rows.append(torch.cat([chosen.new_zeros(1), chosen]))
        return torch.stack(rows)


def step_features(logprobs, step_mask):
    """[batch, sequence, 2]: at every position, the lowest and the mean log-probability of the
    current step's tokens so far (at a step's separator: of the whole step). A step begins where
    ``step_mask`` turns on and lasts until the next begins.

    Cumulative operations over the whole row, in float64: each step's values are shifted below
    every earlier step's, so a running minimum starts afresh at each step; running sums minus
    their value just before the step give the step's own sum and count."""
    inside = step_mask.bool()
    starts_here = inside & ~nn.functional.pad(inside[:, :-1], (1, 0), value=False)
    step = starts_here.long().cumsum(-1)
    values = torch.where(inside, logprobs.double().clamp(min=-100.0), 0.0)
    shift = step.double() * 1000.0
    lowest = (values - shift).cummin(-1).values + shift
    total, count = values.cumsum(-1), inside.double().cumsum(-1)
    where = torch.arange(inside.shape[1], device=inside.device).expand_as(inside)
    start = torch.where(starts_here, where, torch.zeros_like(where)).cummax(-1).values
    just_before = (start - 1).clamp(min=0)
    has_before = (start > 0).double()
    total = total - total.gather(-1, just_before) * has_before
    count = count - count.gather(-1, just_before) * has_before
    mean = total / count.clamp(min=1.0)
    return torch.stack([lowest, mean], dim=-1).float()
