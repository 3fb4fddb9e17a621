r"""Qwen2ForProcessRewardModel: a process reward model (PRM) in the Qwen2.5-Math-PRM layout.

prmkit writes this file into every PRM folder it saves in that layout, and names it in
config.json's ``auto_map``, so that

    model = AutoModel.from_pretrained(folder, trust_remote_code=True)

builds the PRM with its step head. Without it AutoModel would build the bare Qwen2 decoder,
whose ``outputs[0]`` are hidden states, not step logits. The file needs torch and transformers
alone: the folder works where prmkit is not installed. (vLLM serves the same folder with its
own built-in ``Qwen2ForProcessRewardModel``; it reads the same tensor names.)

The model: the Qwen2 decoder (tensors ``model.*``) and a step head ``score`` (Linear from the
hidden size to itself, ReLU, Linear to ``num_labels``: tensors ``score.0.*`` and ``score.2.*``)
applied at every position. ``outputs[0]``, also ``outputs.logits``, is
``[batch, sequence, num_labels]``; a step's reward is the softmax's class 1 at the token that
closes the step. Inference only: no loss is computed.

Scoring a solution (``problem``, a list of ``steps``) as the Qwen2.5-Math-PRM model card does,
for a folder whose prm.json says ``"format": "qwen2.5-math-prm"``:

    system = "Please reason step by step, and put your final answer within \\boxed{}."
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": problem},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tokenizer.encode(text, return_tensors="pt")
    logits = model(input_ids=input_ids)[0]
    at_steps = input_ids == tokenizer.convert_tokens_to_ids("<extra_0>")
    rewards = logits.float().softmax(dim=-1)[..., 1][at_steps]       # one per step, in order

A folder saved with another of prmkit's input formats (prm.json's ``format``: ``step-token``,
``plain``) lays the steps out its own way and closes each with its own separator token; read
the logits there in the same way.
"""

from __future__ import annotations

from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    """The Qwen2 decoder and a two-layer step head read at every position."""

    config_class = Qwen2Config
    base_model_prefix = "model"

    def __init__(self, config: Qwen2Config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = Qwen2Model(config)
        width = config.hidden_size
        # indices 0 and 2 are the saved tensor names (score.0.*, score.2.*): the ReLU between
        # the two linear layers holds none
        self.score = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                   nn.Linear(width, config.num_labels))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                **kwargs):
        """Step-head logits at every position: ``[batch, sequence, num_labels]``, first in the
        output (``outputs[0]``). Other keyword arguments go to the decoder."""
        return_dict = kwargs.pop("return_dict", None)
        kwargs.setdefault("use_cache", False)  # one pass over a whole solution: nothing to reuse
        decoded = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        logits = self.score(decoded[0])
        if return_dict is False:
            return (logits,)
        return TokenClassifierOutput(logits=logits,
                                     hidden_states=getattr(decoded, "hidden_states", None),
                                     attentions=getattr(decoded, "attentions", None))
