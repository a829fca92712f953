"""EvalDeterminism: are the validation items the same audio every round?"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback, require
from callbacks.distributed import gather_rows
from callbacks.sync_moments import outside_sanity_check
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import eval_nondeterministic


def fingerprints(audio: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """`[B, 4]` float64 per item of `audio` `[B, 1, T]`: length, sum, ramp-weighted sum (moves with a shift) and
    sum of squares."""
    x = audio.detach()[:, 0, :].double()
    ramp = torch.linspace(-1.0, 1.0, x.shape[-1], dtype=torch.float64, device=x.device)
    return torch.stack([length.to(x.device).double(), x.sum(-1), (x * ramp).sum(-1), (x * x).sum(-1)], dim=-1)


class EvalDeterminism(DiagnosticCallback):
    """Fingerprints the validation inputs (`input` and `reference` of each item, identified by `index`) every round and
    counts the items whose audio differs from the previous round.

    Logs `diag/eval_input_changed` (items) and `diag/eval_input_changed_fraction` (of the items seen in both rounds).
    Why: random validation crops make the validation metric move with the crops instead of the model, which hides or
    fakes a divergence. Catches EVAL_NONDETERMINISTIC. Under DDP the fingerprints of all ranks are gathered at the end
    of each round, so every rank holds the same table and a resume continues it exactly.
    """

    codes = ("EVAL_NONDETERMINISTIC",)
    sync_moments = {"on_validation_epoch_end": outside_sanity_check}

    def __init__(self, relative_tolerance: float = 1e-5) -> None:
        super().__init__()
        require(
            0 <= relative_tolerance < 1,
            f"EvalDeterminism relative_tolerance must be in [0, 1), got {relative_tolerance!r}.",
        )
        self.relative_tolerance = relative_tolerance
        self._rows: list[torch.Tensor] = []
        self.indices = torch.zeros(0, dtype=torch.int64)
        self.table = torch.zeros(0, 8, dtype=torch.float64)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not isinstance(outputs, Mapping) or "index" not in outputs:
            return
        length = outputs["length"]
        index = outputs["index"].detach().to(length.device).double().reshape(-1, 1)
        reference = outputs.get("reference", outputs["input"])
        rows = torch.cat([index, fingerprints(outputs["input"], length), fingerprints(reference, length)], dim=-1)
        self._rows.append(rows)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            self._rows = []
            return
        device = self._rows[0].device if self._rows else trainer.strategy.root_device
        local = torch.cat(self._rows) if self._rows else torch.zeros(0, 9, dtype=torch.float64, device=device)
        self._rows = []
        rows = gather_rows(trainer, local).cpu()
        current: dict[int, torch.Tensor] = {}
        for row in rows:  # the first copy wins: DistributedSampler padding repeats items
            current.setdefault(int(row[0]), row[1:])
        previous = dict(zip(self.indices.tolist(), self.table))
        common = [i for i in current if i in previous]
        changed = sum(not self._same(current[i], previous[i]) for i in common)
        if current:
            self.indices = torch.tensor(sorted(current), dtype=torch.int64)
            self.table = torch.stack([current[i] for i in sorted(current)])
        if common:
            self._record(
                trainer,
                pl_module,
                {tags.EVAL_INPUT_CHANGED: float(changed), tags.EVAL_INPUT_CHANGED_FRACTION: changed / len(common)},
                on_epoch=True,
            )
            self._raise(trainer, {"EVAL_NONDETERMINISTIC": eval_nondeterministic(self.history)})
        self.alarms.log_active(pl_module, on_epoch=True)

    def _same(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(((a - b).abs() <= self.relative_tolerance * (1.0 + b.abs())).all())

    def _extra_state(self) -> dict[str, Any]:
        return {"indices": self.indices.clone(), "table": self.table.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.indices = state["indices"].clone()
        self.table = state["table"].clone()
