"""The processes a training run is made of: one process on one device, or several launched by
``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1), each taking its own micro-batches.

Two ways to spread the model over them (``TrainConfig.sharding``):

    ddp   every process holds the whole model, gradients are averaged (Accelerate's data
          parallelism; its own config, DeepSpeed ZeRO included, applies when launched with
          ``accelerate launch --config_file ...`` on GPUs)
    fsdp  parameters, gradients and optimizer state are split over the processes (PyTorch's
          FSDP2, ``fully_shard`` on every transformer layer and on the whole PRM): each holds
          about 1/N of the model's training state. Works on GPUs (NCCL) and CPUs (gloo), which
          is how the tests and ``benchmarks/train_memory.py`` measure it here.

Only the first process writes files; ``full_state`` gathers the sharded weights for it.
"""

from __future__ import annotations

import os
import warnings

from prmkit.errors import InputError
from prmkit.models import resolve_device

SHARDINGS = ("ddp", "fsdp")


class Processes:
    def __init__(self, device: str = "auto", sharding: str = "ddp"):
        import torch
        if sharding not in SHARDINGS:
            raise InputError(f"{sharding!r}: choose one of {list(SHARDINGS)}", field="sharding")
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.sharding = sharding if self.world > 1 else "none"
        self._accelerator = None
        self.rank = 0
        if self.sharding == "fsdp":
            import torch.distributed as dist
            cuda = torch.cuda.is_available()
            if not dist.is_initialized():
                dist.init_process_group("nccl" if cuda else "gloo")
            self.rank = dist.get_rank()
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
            if cuda:
                torch.cuda.set_device(self.device)
        elif self.sharding == "ddp":
            try:
                from accelerate import Accelerator
            except ImportError:
                raise InputError("several processes need Accelerate: pip install "
                                 "'prmkit[accelerate]'", field="WORLD_SIZE") from None
            self._accelerator = Accelerator(cpu=not torch.cuda.is_available())
            self.device, self.rank = self._accelerator.device, self._accelerator.process_index
        else:
            self.device = torch.device(resolve_device(device))
        self.is_main = self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.sharding == "fsdp"

    def prepare(self, model, make_optimizer):
        """(the model to run, its optimizer): the optimizer is made after sharding, on the
        parameters each process then holds."""
        if self.sharded:  # each layer's shard goes to the device as it is made (FSDP2), so
            # the whole model is never on one GPU
            from torch.distributed.fsdp import fully_shard
            # the head's output is a view of its matmul; nothing writes to it in place
            warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* view tensor")
            for layer in transformer_layers(model):
                fully_shard(layer)
            fully_shard(model)
            return model, make_optimizer(model)
        model.to(self.device)
        optimizer = make_optimizer(model)
        if self._accelerator is None:
            return model, optimizer
        return self._accelerator.prepare(model, optimizer)

    def backward(self, loss) -> None:
        (loss.backward() if self._accelerator is None else self._accelerator.backward(loss))

    def mean(self, value: float) -> float:
        """The mean of a number over the processes (each logs the step's loss over all the
        micro-batches, not only its own)."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist
        tensor = torch.tensor([value], dtype=torch.float64,
                              device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(tensor)
        return tensor.item() / self.world

    def wait(self) -> None:
        if self._accelerator is not None:
            self._accelerator.wait_for_everyone()
        elif self.sharded:
            import torch.distributed as dist
            dist.barrier()

    def full_state(self, model) -> dict | None:
        """The model's whole state dict on the CPU, gathered from the shards (every process
        must call it; None where the weights are not sharded: read the module itself)."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                    cpu_offload=True))

    def full_optimizer_state(self, model, optimizer) -> dict:
        """The optimizer's state as one process would hold it (collective under fsdp)."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )
        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model, optimizer, state: dict) -> None:
        if not self.sharded:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )
        set_optimizer_state_dict(model, optimizer, state,
                                 options=StateDictOptions(full_state_dict=True))

    def close(self) -> None:
        if self.sharded:
            import torch.distributed as dist
            if dist.is_initialized():
                # every process leaves together: a helper that tore its group down while the
                # first still wrote the PRM has been seen to abort gloo (SIGABRT) on a busy CPU
                dist.barrier()
                dist.destroy_process_group()


def transformer_layers(model) -> list:
    """The repeated blocks of a transformers model (the classes it names in
    ``_no_split_modules``, as Accelerate's and transformers' own sharding does)."""
    names = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def scalar(value) -> float:
    """A Python float from a tensor that may be sharded (FSDP2's gradient norm is a DTensor)."""
    if hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return float(value)
