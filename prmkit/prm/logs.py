"""Where a training run's numbers go as it runs (``metrics.json`` has them all at the end):

    out/train_log.jsonl   one JSON line an optimizer step (loss, learning rate, gradient norm,
                          held-out metrics when evaluated): ``tail -f`` it from a SLURM log
    out/tensorboard/      with ``report_to=tensorboard`` (torch's SummaryWriter)
    wandb                 with ``report_to=wandb`` (a run named after the output folder)

A resumed run first drops the lines of steps after its checkpoint, which it computes again.
"""

from __future__ import annotations

import json
from pathlib import Path

from prmkit.errors import InputError


class TrainLog:
    def __init__(self, out: Path, report_to: str, config: dict, *, enabled: bool,
                 resume_step: int = 0):
        self.enabled = enabled
        self.path = Path(out) / "train_log.jsonl"
        self._tensorboard = self._wandb = None
        if not enabled:
            return
        kept = []
        if self.path.exists() and resume_step:
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
        self.path.write_text("".join(line + "\n" for line in kept))
        if report_to == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError("report_to=tensorboard needs tensorboard: pip install "
                                 "'prmkit[tensorboard]'", field="report_to") from None
            self._tensorboard = SummaryWriter(log_dir=str(Path(out) / "tensorboard"),
                                              purge_step=resume_step + 1 if resume_step else None)
        elif report_to == "wandb":
            try:
                import wandb
            except ImportError:
                raise InputError("report_to=wandb needs wandb: pip install wandb",
                                 field="report_to") from None
            self._wandb = wandb.init(name=Path(out).name, config=config, dir=str(out),
                                     resume="allow")

    def step(self, entry: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        flat = {k: v for k, v in entry.items() if isinstance(v, (int, float)) and k != "step"}
        flat.update({f"held_out/{k}": v for k, v in entry.get("held_out", {}).items()})
        if self._tensorboard is not None:
            for name, value in flat.items():
                self._tensorboard.add_scalar(name if "/" in name else f"train/{name}", value,
                                             entry["step"])
            self._tensorboard.flush()
        if self._wandb is not None:
            self._wandb.log(flat, step=entry["step"])

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()
