"""The step reward model as a torch module: a backbone and a step head read at every step's
separator (``StepRewardModel``), and the likelihood features its ``likelihood`` readout adds.
Loading and saving, in the field's layouts, is ``prmkit.prm.model``'s: that module stays free
of torch until a PRM is built or loaded, so that every module that loads PRMs can import it at
the top."""

from __future__ import annotations

import torch

from prmkit.errors import InputError

HEADS = ("ce", "bce")
READOUTS = ("separator", "likelihood")


class StepRewardModel(torch.nn.Module):
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
        if self.head == "ce":
            return torch.softmax(logits.float(), dim=-1)[..., 1]
        return torch.sigmoid(logits.float()[..., 0])


LIKELIHOOD_FEATURES = ("min_logprob", "mean_logprob")


def _head(score, likelihood, features):
    if likelihood is None:
        return score(features)
    width = len(LIKELIHOOD_FEATURES)
    return score(features[..., :-width]) + likelihood(features[..., -width:])


class _FeatureHead(torch.nn.Module):
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
