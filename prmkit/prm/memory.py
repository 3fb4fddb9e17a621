"""How much memory a training run needs on each device, from its settings alone
(``prmkit train --dry-run``): nothing is loaded but the model's config and the data's lengths.

Per device, in bytes (w: bytes a weight, 4 in float32 and 2 in bfloat16; N: processes under
fsdp, else 1):

    weights      every parameter, w each, / N
    gradients    every trainable parameter, w each, / N (plus DDP's gradient buckets, a second
                 copy, with several ddp processes)
    optimizer    AdamW's two moments of every trainable parameter, w each, / N
    activations  what the backward pass keeps, per token of the largest micro-batch
                 (batch_size x its longest solution) and layer:
                 10 h + 3 kv + 4 i values (h hidden, kv key/value width, i MLP width: the
                 norms' inputs and outputs, q, k, v before and after RoPE and the head repeat,
                 the attention output, the MLP's gate, up, SiLU and product), plus heads x
                 length for the attention weights when the attention is eager; with gradient
                 checkpointing only each layer's input (h) and one layer's full set; in the
                 autocast or weight dtype
    step         AdamW's temporaries in the optimizer step (torch's single-tensor AdamW makes
                 two of the largest trainable tensor's size, the vocabulary's embedding)
    gathered     fsdp only: parameters gathered whole for compute, two layers at a time
                 (prefetch included), and the root's (the embeddings) whole

Weights, gradients and optimizer state live through the step; the activations are gone by
the optimizer step, whose temporaries take their place, so the peak is

    weights + gradients + optimizer + gathered + max(activations, step)

``benchmarks/train_memory.py`` measures it against real runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from prmkit.prm.processes import transformer_layers

GiB = 1024 ** 3


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    trainable: int
    processes: int
    tokens: int                 # the largest micro-batch: batch_size x longest solution
    weights: int                # bytes, one device
    gradients: int
    optimizer: int
    activations: int
    step: int
    gathered: int

    @property
    def total(self) -> int:
        return (self.weights + self.gradients + self.optimizer + self.gathered
                + max(self.activations, self.step))

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}

    def lines(self) -> list[str]:
        def gib(n: int) -> str:
            return f"{n / GiB:8.2f} GiB"
        return [f"parameters   {self.parameters:,} ({self.trainable:,} trainable)",
                f"micro-batch  {self.tokens:,} tokens; {self.processes} process(es)",
                f"weights      {gib(self.weights)}", f"gradients    {gib(self.gradients)}",
                f"optimizer    {gib(self.optimizer)}", f"activations  {gib(self.activations)}",
                f"step         {gib(self.step)} (AdamW's temporaries, after the activations "
                "are freed)",
                *([f"gathered     {gib(self.gathered)}"] if self.gathered else []),
                f"total        {gib(self.total)} per device"]


def count_parameters(model_config, head_layers: int, outputs: int, lora_rank: int = 0
                     ) -> tuple[int, int, int, int, int]:
    """(all parameters, trainable ones, the largest layer's, the root's outside the layers, the
    largest tensor's) of the PRM: the backbone built on the meta device (no memory), the head,
    LoRA's adapters."""
    import torch
    from transformers import AutoModel
    with torch.device("meta"):
        backbone = AutoModel.from_config(model_config)
    hidden = model_config.hidden_size
    head = (hidden * hidden + hidden + hidden * outputs + outputs if head_layers == 2
            else hidden * outputs + outputs)
    backbone_size = sum(p.numel() for p in backbone.parameters())
    layers = transformer_layers(backbone)
    layer_size = max((sum(p.numel() for p in layer.parameters()) for layer in layers), default=0)
    root = backbone_size - sum(sum(p.numel() for p in layer.parameters()) for layer in layers)
    total = backbone_size + head
    largest = max(p.numel() for p in backbone.parameters())
    if not lora_rank:
        return total, total, layer_size, root + head, largest
    linears = [m for layer in layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    adapters = sum(lora_rank * (m.in_features + m.out_features) for m in linears)
    largest = max([hidden * hidden] + [lora_rank * max(m.in_features, m.out_features)
                                       for m in linears])
    return total + adapters, adapters + head, layer_size, root + head, largest


def estimate(model_config, *, tokens: int, length: int, processes: int = 1,
             sharding: str = "ddp", dtype: str = "float32", autocast_bf16: bool = False,
             gradient_checkpointing: bool = False, lora_rank: int = 0, head_layers: int = 2,
             outputs: int = 2, train_backbone: bool = True) -> MemoryEstimate:
    """The memory one device needs (see the module's docstring for each term)."""
    weight = 2 if dtype == "bfloat16" else 4
    parameters, trainable, layer_size, root, largest = count_parameters(
        model_config, head_layers, outputs, lora_rank)
    if not train_backbone:  # the head alone learns, on features computed once
        hidden = model_config.hidden_size
        trainable = ((hidden + 1) * hidden + (hidden + 1) * outputs if head_layers == 2
                     else (hidden + 1) * outputs)
    shards = processes if sharding == "fsdp" and processes > 1 else 1
    weights = parameters * weight // shards
    gradients = trainable * weight // shards
    if sharding == "ddp" and processes > 1:
        gradients *= 2  # DDP's buckets hold a second copy of the gradients
    optimizer = 2 * trainable * weight // shards
    activations = _activations(model_config, tokens, length, weight, autocast_bf16,
                               gradient_checkpointing) if train_backbone else 0
    if not train_backbone or lora_rank:
        largest = trainable if not train_backbone else min(largest, trainable)
    step = 2 * largest * weight // shards
    gathered = (2 * layer_size + root) * weight if shards > 1 else 0
    return MemoryEstimate(parameters, trainable, processes, tokens, weights, gradients,
                          optimizer, activations, step, gathered)


def _activations(config, tokens: int, length: int, weight: int, autocast_bf16: bool,
                 checkpointing: bool) -> int:
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", heads) * (hidden // heads)
    inner = getattr(config, "intermediate_size", 4 * hidden)
    per_layer = 10 * hidden + 3 * kv + 4 * inner
    if getattr(config, "_attn_implementation", None) == "eager":
        per_layer += 2 * heads * length  # the attention weights before and after softmax
    value = 2 if autocast_bf16 or weight == 2 else 4
    if checkpointing:
        return tokens * (layers * hidden + per_layer) * value
    return tokens * layers * per_layer * value
