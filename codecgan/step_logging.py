"""What `GANModule` logs on a logging step: the loss terms, the discriminator's outputs, the learning rates the
next step uses and the discriminator's update ratio. Lightning writes step values on logging batches only, so
the loop calls this there and nowhere else; every value is a device tensor or a host float already known, so
logging reads nothing back from the device beyond what Lightning's logger does."""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor


def log_training_step(
    module: L.LightningModule, losses: dict[str, Tensor], outputs: dict[str, Any], train_d: bool
) -> None:
    """Log one batch's values under ``train/`` and ``diag/`` from ``module``, a ``GANModule``; adds ``d_update_ratio``
    to ``outputs`` when known.

    ``diag/d_update_ratio`` covers the discriminator steps since the previous logging step; the learning rates
    are host floats (``LR_VANISHED`` reads them)."""
    module.log_dict({f"train/{name}": value for name, value in losses.items() if name not in ("loss_g", "loss_d")})
    module.log("train/loss_g", losses["loss_g"], prog_bar=True)
    module.log_dict(outputs.get("objective_logs") or {})  # e.g. the loss balancer's weights and shares
    if train_d:
        module.log("train/loss_d", losses["loss_d"], prog_bar=True)
        module.log("diag/d_loss_chance", outputs["d_loss_chance"])
        module.log_dict({"train/d_real": outputs["d_real"], "train/d_fake": outputs["d_fake"]})
    module.log("diag/nonfinite_steps", module.nonfinite_steps.float())
    opt_g, opt_d = module.optimizers(use_pl_optimizer=False)
    module.log_dict({"train/lr_g": opt_g.param_groups[0]["lr"], "train/lr_d": opt_d.param_groups[0]["lr"]})
    update_ratio = module.discriminator_update.read()
    if update_ratio is not None:
        outputs["d_update_ratio"] = update_ratio
        module.log("diag/d_update_ratio", update_ratio)
