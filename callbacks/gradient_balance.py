"""GradientBalance: how much each generator loss term actually moves the generator."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback, require
from callbacks.distributed import reduce_sum
from callbacks.history_compaction import thin_runs
from callbacks.run_config import model_family
from codecgan.cadence import is_logging_step
from codecgan.codec_module import BALANCED_TERMS, DAC_LOSS_WEIGHTS, CodecGAN
from codecgan.diagnosis import tags
from codecgan.diagnosis.history import Point
from codecgan.diagnosis.rules import gan_term_negligible, loss_term_disabled
from codecgan.diagnosis.rules.adversarial import GAN_SHARE_FLOOR, GAN_SHARE_WINDOW
from codecgan.enhance_module import RECIPE_LOSS_WEIGHTS
from codecgan.vocoder_module import VOCOS_LOSS_WEIGHTS, VocoderGAN

# Loss-weight keys whose term has another name ("loss_adv"), or shares one with another key (the codec's commitment
# and codebook weights both scale "loss_vq"): None leaves the key out of LOSS_TERM_DISABLED.
TERM_OF_WEIGHT: dict[str, str | None] = {
    "adversarial": "loss_adv",
    "gan": "loss_adv",
    "feature_matching": "loss_fm",
    "commitment": None,
    "codebook": None,
}


def term_norms_reported(callback: GradientBalance, trainer: Trainer) -> bool:
    """Whether the module measured the term gradients in this batch (at its end): it does when `global_step` is a
    multiple of `term_gradient_interval` as the step begins, and `global_step` advances once per batch."""
    return (trainer.global_step - 1) % callback.every_n_steps == 0


class GradientBalance(DiagnosticCallback):
    """Measures, every `every_n_steps` batches, the norm of each weighted generator loss term's gradient at the
    generator's output, and each term's share of their sum.

    Sets the documented `pl_module.term_gradient_interval = every_n_steps` so the module reports
    `term_grad_norms` on those steps, and logs `diag/grad_share/<term>` and `diag/grad_norm_term/<term>` at those
    steps. Why: a term's weight says little about its pull; a 0.05-weighted GAN term can be invisible next
    to a 0.9-weighted magnitude term. Catches GAN_TERM_NEGLIGIBLE for the terms named in `gan_terms` (default: names
    containing "adv", "gan" or "metric"), and LOSS_TERM_DISABLED for the other terms, from the module's
    `loss_weights` and its recipe's published weights, which it records at the start of fit (`loss_term_weights`).
    Under DDP the norms are summed over ranks before the shares are taken. Under CodecGAN's loss balancer it also
    keeps each term's share of the balanced gradient (`diag/balancer_share/<term>`), which GAN_TERM_NEGLIGIBLE reads
    instead. Its history keeps the shares only, thinned where the
    rule answers alike (`_compact`).
    """

    codes = ("GAN_TERM_NEGLIGIBLE", "LOSS_TERM_DISABLED")
    unread_tags = (tags.GRAD_NORM_TERM_PREFIX,)
    sync_moments = {"on_train_batch_end": term_norms_reported}

    def __init__(self, every_n_steps: int = 50, gan_terms: list[str] | None = None) -> None:
        super().__init__()
        require(
            isinstance(every_n_steps, int) and every_n_steps >= 1,
            f"GradientBalance every_n_steps must be a positive integer, got {every_n_steps!r}.",
        )
        require(
            gan_terms is None or (isinstance(gan_terms, (list, tuple)) and all(isinstance(t, str) for t in gan_terms)),
            "GradientBalance gan_terms must be None or a list of loss-term names such as ['loss_adv'], "
            f"got {gan_terms!r}.",
        )
        self.every_n_steps = every_n_steps
        self.gan_terms = tuple(gan_terms) if gan_terms is not None else None
        self.term_weights: dict[str, dict[str, Any]] | None = None  # LOSS_TERM_DISABLED's, set at the start of fit
        self.family: str | None = None  # GAN_TERM_NEGLIGIBLE's, set at the start of fit

    def rule_settings(self) -> dict[str, dict[str, Any]]:
        gan_terms = None if self.gan_terms is None else list(self.gan_terms)
        return {
            "GAN_TERM_NEGLIGIBLE": {"gan_terms": gan_terms, "family": self.family, "term_weights": self.term_weights},
            "LOSS_TERM_DISABLED": {"term_weights": self.term_weights, "gan_terms": gan_terms},
        }

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.term_gradient_interval = self.every_n_steps
        self.term_weights = loss_term_weights(pl_module)
        self.family = model_family(pl_module)

    def on_disabled(self, trainer: Trainer) -> None:
        module = getattr(trainer, "lightning_module", None)
        if module is not None:  # the module stops measuring term gradients that nothing reads any more
            module.term_gradient_interval = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        norms = outputs.get("term_grad_norms") if isinstance(outputs, Mapping) else None
        if norms:
            terms = sorted(norms)  # the same order on every rank
            vector = torch.stack([torch.as_tensor(norms[t], dtype=torch.float64).reshape(()).cpu() for t in terms])
            totals = reduce_sum(trainer, vector.to(trainer.strategy.root_device)).tolist()
            grand_total = sum(totals)
            values = {tags.GRAD_NORM_TERM_PREFIX + t: n / trainer.world_size for t, n in zip(terms, totals)}
            if grand_total > 0:
                values.update({tags.GRAD_SHARE_PREFIX + t: n / grand_total for t, n in zip(terms, totals)})
            self._record(trainer, pl_module, values)
            # Under the loss balancer, each term's share of the balanced gradient (rank-identical, logged by the loop).
            balanced = {
                tag: float(value)
                for tag, value in (outputs.get("objective_logs") or {}).items()
                if tag.startswith(tags.BALANCER_SHARE_PREFIX)
            }
            self._record(trainer, pl_module, balanced, log=False)
            findings = {
                "GAN_TERM_NEGLIGIBLE": gan_term_negligible(
                    self.history, self.gan_terms, self.family, self.term_weights
                ),
                "LOSS_TERM_DISABLED": loss_term_disabled(self.history, self.term_weights, self.gan_terms),
            }
            self._raise(trainer, findings)
            self._compact()
        if is_logging_step(trainer):
            self.alarms.log_active(pl_module)

    def _compact(self) -> None:
        """Keep the shares growing with the times a term's share falls under the rule's floor, not with the steps
        (`callbacks/history_compaction.py`): of each run of shares at or above the floor, the first and last
        GAN_SHARE_WINDOW - 1 points. The rule flags a point by the median of the window of GAN_SHARE_WINDOW points
        ending at it; a window holding a dropped point lies inside such a run, so it is at or above the floor on the
        thinned series as on every point, and every other window is the same points. The rule reads the flags, the
        windows' medians where flagged and at the last point, and the newest points."""
        shares = self.history.tags_with_prefix(tags.GRAD_SHARE_PREFIX) + self.history.tags_with_prefix(
            tags.BALANCER_SHARE_PREFIX
        )
        for tag in shares:
            thin_runs(self.history, tag, high_shares, {"high": (GAN_SHARE_WINDOW - 1, GAN_SHARE_WINDOW - 1)})


def loss_term_weights(pl_module: LightningModule) -> dict[str, dict[str, Any]]:
    """{term: {"key": its config path, "weight": the run's weight, "published": the recipe's weight or None}} for each
    weighted generator loss term of `pl_module` (its `loss_weights`; the recipe's are MetricGANEnhancer's
    `loss_recipe` table, CodecGAN's DAC weights or VocoderGAN's Vocos weights). Terms that a CodecGAN loss balancer
    weighs are left out: the balancer's weights set their pull (GAN_TERM_NEGLIGIBLE reads their balanced shares)."""
    weights = getattr(pl_module, "loss_weights", None)
    if not isinstance(weights, Mapping):
        return {}
    recipe = getattr(pl_module, "loss_recipe", None)
    if isinstance(recipe, str) and recipe in RECIPE_LOSS_WEIGHTS:
        published = RECIPE_LOSS_WEIGHTS[recipe]
    elif isinstance(pl_module, VocoderGAN):
        published = VOCOS_LOSS_WEIGHTS
    else:
        published = DAC_LOSS_WEIGHTS if isinstance(pl_module, CodecGAN) else {}
    balanced = BALANCED_TERMS if getattr(pl_module, "loss_balancer", None) is not None else {}
    found = {}
    for key, weight in weights.items():
        term = TERM_OF_WEIGHT.get(key, f"loss_{key}")
        if term is not None and key not in balanced:
            recipe_weight = published.get(key)
            found[term] = {
                "key": f"model.init_args.loss_weights.{key}",
                "weight": float(weight),
                "published": None if recipe_weight is None else float(recipe_weight),
            }
    return found


def high_shares(points: list[Point]) -> list[str | None]:
    """ "high" for a share at or above GAN_TERM_NEGLIGIBLE's floor; None otherwise (NaN included)."""
    return ["high" if math.isfinite(p.value) and p.value >= GAN_SHARE_FLOOR else None for p in points]
