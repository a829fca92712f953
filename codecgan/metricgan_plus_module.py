"""MetricGAN+ (Fu et al., Interspeech 2021) trained as SpeechBrain's VoiceBank recipe trains it
(``recipes/Voicebank/enhance/MetricGAN/train.py``, speechbrain 1.1.2; docs/training.md, "MetricGAN+").

An epoch draws ``data.samples_per_epoch`` utterances and yields them three times (``data.epoch_passes: 3``), so an
epoch is three passes of ``n`` batches, and the phase of a batch is a function of the step alone
(``metricgan_plus_phase``), the same in a resumed run:

0. discriminator, current pass: the generator (frozen) enhances the batch; PESQ scores the enhancement and the
   noisy input; the discriminator takes three optimizer steps: ``D(clean, clean) -> 1``,
   ``D(enhanced, clean) -> Q(enhanced)``, ``D(noisy, clean) -> Q(noisy)``, with ``Q = (PESQ_wb + 0.5) / 5``.
   Each scored enhancement joins the history (``ReplayBuffer``).
1. discriminator, current pass again, on the same utterances and scores (the generator has not changed); its
   first batch first replays ``round(history_portion · |history|)`` items of the history, one step each.
2. generator: one step per batch on ``MSE(D(enhanced, clean), 1)``, the discriminator in training mode.

A D-only batch takes the frozen-generator path of ``GANModule`` (its loss is logged, from ``peek``, and the batch
counts one step), so ``max_steps`` and ``val_check_interval`` count batches of every phase.
A clip without a PESQ is masked out of its term and counted (``pesq_failed_clips``); a term with no clip left does
not step the discriminator. It never joins the history.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from codecgan.config_error import ConfigError
from codecgan.enhance_module import MetricGANEnhancer
from codecgan.gan_module import Batch, Forward
from codecgan.losses.enhancement import pesq_to_target
from codecgan.losses.metricgan_plus import metricgan_plus_generator_loss
from codecgan.metricgan_replay import ReplayBuffer
from codecgan.metrics import PesqLimits, cut_to_common_length, pad_to_batch
from codecgan.models.metricgan_plus_features import N_FFT, metricgan_plus_features

PASSES = 3
GENERATOR_PHASE = 2
STATE_KEY = "metricgan_plus"
# GANModule's schedule options and the values that leave the recipe's schedule alone.
FIXED_SCHEDULE = {"discriminator_start_step": 0, "discriminator_update_period": 1, "discriminator_warmup_steps": 0}
DISCRIMINATOR_MIN_FRAMES = 17  # four unpadded 5x5 convolutions


def metricgan_plus_phase(step: int, batches_per_pass: int) -> int:
    """The phase of batch ``step``: 0 and 1 train the discriminator (1 after the history replay), 2 the generator."""
    return (step % (PASSES * batches_per_pass)) // batches_per_pass


def recipe_target(pesq: Tensor) -> Tensor:
    """The discriminator's target ``(PESQ_wb + 0.5) / 5`` (MOS-LQO in, NaN stays NaN)."""
    return (pesq.float() + 0.5) / 5


def to_monitor_scale(prediction: Tensor) -> Tensor:
    """A prediction of ``(PESQ + 0.5) / 5`` on ``MetricDiscriminatorMonitor``'s scale ``(PESQ - 1) / 3.5``."""
    return pesq_to_target(5 * prediction.float().reshape(-1) - 0.5)


@dataclass
class DiscriminatorTerm:
    """One discriminator step: ``D(degraded, reference) -> target`` on the clips whose ``weight`` is 1."""

    name: str
    degraded: Tensor
    reference: Tensor
    target: Tensor
    weight: Tensor


class MetricGANPlusEnhancer(MetricGANEnhancer):
    """Trains ``MetricGANPlusEnhancerNet`` against a ``MetricGANPlusDiscriminator`` with MetricGAN+'s loop.

    Validation, test and prediction are ``MetricGANEnhancer``'s (each utterance whole, PESQ wb and STOI).

    Args:
        generator: ``forward(noisy [B, 1, T]) -> MaskedFeaturesOutput`` with ``clamp_mask_slopes(maximum)``.
        discriminator: ``forward(degraded_features, reference_features) -> [B, 1]``.
        sample_rate: 16000 Hz, the only rate (wideband PESQ, the recipe's STFT).
        history_portion: the fraction of the history replayed each epoch (0.2 in the recipe).
        history_max_items, history_max_megabytes: the history's cap; the oldest items are evicted first
            (``codecgan.metricgan_replay``). The recipe keeps every enhancement of the run on disk.
        mask_slope_max: the learnable sigmoid's slopes are clamped to at most this (NaN to it) before each
            generator step (3.5 in the recipe).
        pesq_workers, pesq_limits: as ``MetricGANEnhancer``.
        gan_options: the loop's settings (optimizers, clipping, ...): see ``GANModule``. The discriminator's
            schedule is the recipe's, so ``discriminator_start_step``, ``discriminator_update_period`` and
            ``discriminator_warmup_steps`` keep their defaults.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        sample_rate: int = 16000,
        history_portion: float = 0.2,
        history_max_items: int = 20000,
        history_max_megabytes: float = 2048.0,
        mask_slope_max: float = 3.5,
        pesq_workers: int | None = None,
        pesq_limits: PesqLimits | None = None,
        **gan_options: Any,
    ) -> None:
        for key, neutral in FIXED_SCHEDULE.items():
            if gan_options.get(key, neutral) != neutral:
                raise ConfigError(
                    f"model.init_args.{key} does not apply to MetricGANPlusEnhancer: its phases (discriminator, "
                    "discriminator, generator passes over each epoch's utterances) are fixed by the recipe. "
                    f"Remove the key (or set it to {neutral})."
                )
        if not 0 <= history_portion <= 1:
            raise ConfigError(
                f"model.init_args.history_portion must be in [0, 1] (0.2: the recipe), got {history_portion}."
            )
        if history_max_items < 0 or not history_max_megabytes >= 0:
            raise ConfigError(
                "model.init_args.history_max_items and history_max_megabytes must be >= 0 (0: no history), got "
                f"{history_max_items} and {history_max_megabytes}."
            )
        super().__init__(
            generator, discriminator, sample_rate, pesq_workers=pesq_workers, pesq_limits=pesq_limits, **gan_options
        )
        self.history_portion, self.mask_slope_max = history_portion, mask_slope_max
        self.history = ReplayBuffer(history_max_items, history_max_megabytes)
        # This epoch's PESQ of each utterance's enhancement and noisy input, by dataset index (NaN: failed).
        self.epoch_scores: dict[int, tuple[float, float]] = {}
        self.batches_per_pass = self.batch_step = 0

    # ------------------------------------------------------------------------------ the schedule
    def setup(self, stage: str) -> None:
        trainer = self._trainer
        if stage == "fit" and trainer is not None and trainer.world_size > 1:
            raise ConfigError(
                f"MetricGANPlusEnhancer trains on one device (trainer.devices: 1), got {trainer.world_size} "
                "processes: its history and score caches are per process, as SpeechBrain's recipe trains on one GPU."
            )
        super().setup(stage)

    def check_crop_length(self, crop: int) -> None:
        super().check_crop_length(crop)
        shortest = (DISCRIMINATOR_MIN_FRAMES - 1) * (N_FFT // 2)
        if crop < shortest:
            raise ConfigError(
                f"data.crop_seconds gives {crop}-sample crops; MetricGANPlusDiscriminator needs "
                f"{DISCRIMINATOR_MIN_FRAMES} frames, at least {shortest} samples ({shortest / self.sample_rate:g} s)."
            )

    def on_train_start(self) -> None:
        passes = getattr(self.trainer.datamodule, "epoch_passes", None)
        batches = self.trainer.num_training_batches
        if passes != PASSES or batches % PASSES:
            raise ConfigError(
                f"MetricGANPlusEnhancer needs data.init_args.epoch_passes: {PASSES} (got {passes}) and an epoch of "
                f"whole passes ({batches} batches; trainer.limit_train_batches must not cut it)."
            )
        self.batches_per_pass = batches // PASSES
        super().on_train_start()

    def phase(self, step: int) -> int:
        if not self.batches_per_pass:
            raise RuntimeError("MetricGANPlusEnhancer's phases are known once training starts (on_train_start).")
        return metricgan_plus_phase(step, self.batches_per_pass)

    def discriminator_trains_at(self, step: int) -> bool:
        return self.phase(step) != GENERATOR_PHASE

    def generator_trains_at(self, step: int) -> bool:
        return self.phase(step) == GENERATOR_PHASE

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        # The batch's step: a frozen generator's step counts before the discriminator's steps run.
        self.batch_step = step = self.global_step
        if self.generator_trains_at(step):
            self.generator.clamp_mask_slopes(self.mask_slope_max)
        elif step % (PASSES * self.batches_per_pass) == 0:
            self.epoch_scores = {}  # a new epoch's utterances

    # ---------------------------------------------------------------------------- the GAN hooks
    def generator_forward(self, batch: Batch) -> Forward:
        """The batch cut to its longest item: with ``data.short_items: zero_pad``, crops longer than any utterance
        and batches of one (the recipe's), every utterance is enhanced and judged whole, as in SpeechBrain."""
        samples = int(batch["length"].max())
        noisy, clean = batch["noisy"][..., :samples], batch["clean"][..., :samples]
        output = self.trained(self.generator)(noisy)
        with torch.no_grad():
            clean_features = metricgan_plus_features(clean[:, 0])
        return {
            "estimate": output.audio,
            "reference": clean,
            "input": noisy,
            "length": batch["length"],
            "enhanced_features": output.features,
            "noisy_features": output.noisy_features,
            "clean_features": clean_features,
        }

    def generator_loss(
        self, batch: Batch, forward: Forward, adversarial: bool
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``MSE(D(enhanced, clean), 1)`` (the recipe's ``mse_weight`` is 0). On a discriminator batch, where the
        generator does not step, its value for the log (``peek``)."""
        features = forward["enhanced_features"], forward["clean_features"]
        if self.generator_trains_at(self.batch_step):
            prediction = self.discriminator(*features)
        else:
            prediction = self.peek(*features)
        return {"loss_adv": metricgan_plus_generator_loss(prediction.float())}, {}

    def peek(self, degraded: Tensor, reference: Tensor) -> Tensor:
        """The discriminator's prediction ``[B, 1]`` as its steps see it (training mode: batch statistics, spectral
        norm's power iteration), without gradient and with its buffers (batch-norm running statistics, spectral
        norm's vectors) put back, so that looking changes nothing. Eval mode would not do: at the start its spectral
        norm's random vectors give predictions of millions, and its running statistics (momentum 0.01) lag far
        behind the features for hundreds of steps."""
        saved = [buffer.clone() for buffer in self.discriminator.buffers()]
        try:
            with torch.no_grad():
                return self.discriminator(degraded, reference).float()
        finally:
            with torch.no_grad():
                for buffer, value in zip(self.discriminator.buffers(), saved):
                    buffer.copy_(value)

    def gradient_probe(self, forward: Forward) -> tuple[Tensor, ...]:
        return (forward["enhanced_features"],)

    def _discriminator_step(self, opt_d: Any, batch: Batch, forward: Forward, train_d: bool) -> dict[str, Any]:
        """The recipe's discriminator steps of this batch, each through ``GANModule._discriminator_step`` (its own
        backward, clipping, non-finite check and optimizer step); the outputs sum their losses."""
        if not train_d:
            return super()._discriminator_step(opt_d, batch, forward, train_d)
        terms, outputs = self._discriminator_terms(batch, forward)
        losses, steps = {}, []
        for term in terms:
            forward["discriminator_term"] = term
            step = super()._discriminator_step(opt_d, batch, forward, True)
            loss = step["losses_d"]["loss_d"]
            losses[f"loss_d_{term.name}"] = losses.get(f"loss_d_{term.name}", 0) + loss
            steps.append(step)
        del forward["discriminator_term"]
        losses["loss_d"] = sum(losses.values())
        outputs.update(
            losses_d=losses,
            grad_norm_d=torch.stack([step["grad_norm_d"] for step in steps]).max(),
            skipped_d=torch.stack([step["skipped_d"] for step in steps]).any(),
            not_stepped_d=torch.stack([step["not_stepped_d"] for step in steps]).all(),
            d_update_skipped=torch.stack([step["not_stepped_d"] for step in steps]).any(),
            d_loss_chance=loss_at_chance(terms),
        )
        return outputs

    def discriminator_loss(self, batch: Batch, forward: Forward) -> tuple[Tensor, dict[str, Any]]:
        """One term's masked squared error ``sum_b w_b (D_b - q_b)² / max(sum_b w_b, 1)``; a term with no clip
        asks not to step (``skip_update``): its zero gradient would still move Adam's weights."""
        term: DiscriminatorTerm = forward["discriminator_term"]
        prediction = self.trained(self.discriminator)(term.degraded, term.reference).float().reshape(-1)
        error = torch.where(term.weight > 0, prediction - term.target, 0.0)
        loss = (term.weight * error**2).sum() / term.weight.sum().clamp(min=1)
        return loss, {"skip_update": term.weight.sum() == 0}

    def _discriminator_terms(self, batch: Batch, forward: Forward) -> tuple[list[DiscriminatorTerm], dict[str, Any]]:
        """This batch's terms in the recipe's order and the outputs the monitors read (docs/interfaces.md)."""
        enhanced_pesq, noisy_pesq, counts = self._batch_scores(batch, forward)
        clean, enhanced = forward["clean_features"], forward["enhanced_features"].detach()
        noisy = forward["noisy_features"]
        enhanced_target, noisy_target = recipe_target(enhanced_pesq), recipe_target(noisy_pesq)
        ones = torch.ones(clean.shape[0], device=self.device)
        terms = self._replayed_terms()
        replayed = len(terms)
        terms += [
            DiscriminatorTerm("clean", clean, clean, ones, ones),
            DiscriminatorTerm("enhanced", enhanced, clean, enhanced_target, torch.isfinite(enhanced_target).float()),
            DiscriminatorTerm("noisy", noisy, clean, noisy_target, torch.isfinite(noisy_target).float()),
        ]
        d_enhanced = self.peek(enhanced, clean)
        outputs = {
            "d_real": self.peek(clean, clean).mean(),
            "d_fake": d_enhanced.mean(),
            "pesq_target": pesq_to_target(enhanced_pesq),
            "metric_d_prediction": to_monitor_scale(d_enhanced),
            "pesq_target_noisy": pesq_to_target(noisy_pesq),
            "metric_d_prediction_noisy": to_monitor_scale(self.peek(noisy, clean)),
            "pesq_dropped_batch": (~torch.isfinite(enhanced_pesq)).all().long(),
            "replay_items": replayed,
            "replay_buffer_items": len(self.history),
            **counts,
        }
        return terms, outputs

    def _batch_scores(self, batch: Batch, forward: Forward) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """PESQ wb ``[B]`` of the enhancement and of the noisy input (NaN where it failed), and the counts of the clips
        scored now: a clip scored earlier this epoch (the second discriminator pass) reuses its scores, uncounted.
        Newly scored enhancements with a score join the history."""
        indices = batch["index"].tolist()
        counts: dict[str, Any] = {"pesq_clips": 0, "pesq_failed_clips": 0, "pesq_failures": {}}
        if not all(index in self.epoch_scores for index in indices):
            clean, length = forward["reference"], batch["length"]
            enhanced = self.score_estimates(clean, forward["estimate"].detach(), length)
            noisy = self.score_estimates(clean, forward["input"], length).result()
            enhanced = enhanced.result()
            for result in (enhanced, noisy):
                counts["pesq_clips"] += len(result.failures)
                counts["pesq_failed_clips"] += result.failed_clips
                for kind, clips in result.failure_counts().items():
                    counts["pesq_failures"][kind] = counts["pesq_failures"].get(kind, 0) + clips
            estimate, reference, _ = cut_to_common_length(forward["estimate"].detach(), clean, length)
            for row, index in enumerate(indices):
                score = float(enhanced.scores[row])
                self.epoch_scores[index] = (score, float(noisy.scores[row]))
                if math.isfinite(score):
                    samples = int(length[row])
                    self.history.add(estimate[row, 0, :samples], reference[row, 0, :samples], score)
        enhanced_pesq, noisy_pesq = torch.tensor([self.epoch_scores[index] for index in indices]).T
        return enhanced_pesq.to(self.device), noisy_pesq.to(self.device), counts

    def _replayed_terms(self) -> list[DiscriminatorTerm]:
        """On the first batch of the second discriminator pass: ``round(history_portion · |history|)`` items drawn
        from the history with a generator seeded by (seed, step), one term each, with the scores they had."""
        step = self.batch_step
        if step % (PASSES * self.batches_per_pass) != self.batches_per_pass:
            return []
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        terms = []
        for item in self.history.sample(round(self.history_portion * len(self.history)), generator):
            degraded, reference = metricgan_plus_features(torch.stack([item.enhanced, item.clean]).to(self.device))
            target = recipe_target(torch.tensor([item.score], device=self.device))
            terms.append(DiscriminatorTerm("replay", degraded[None], reference[None], target, torch.ones_like(target)))
        return terms

    # ------------------------------------------------------------------------------ validation
    def enhance_utterances(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Each utterance enhanced whole; predictions on ``MetricDiscriminatorMonitor``'s scale ``(PESQ - 1) / 3.5``."""
        estimates, predictions = [], []
        for row, samples in enumerate(batch["length"].tolist()):
            output = self.generator(batch["noisy"][row : row + 1, ..., :samples])
            clean_features = metricgan_plus_features(batch["clean"][row : row + 1, 0, :samples])
            estimates.append(output.audio.float())
            predictions.append(to_monitor_scale(self.discriminator(output.features, clean_features)))
        estimate, estimate_length = pad_to_batch(estimates, batch["clean"].shape[-1])
        return estimate, estimate_length, torch.cat(predictions)

    # ------------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The history and this epoch's scores, so that a resumed run replays and reuses what the straight run
        would have."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[STATE_KEY] = {"history": self.history.state_dict(), "epoch_scores": dict(self.epoch_scores)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(STATE_KEY)
        if state is not None:
            self.history.load_state_dict(state["history"])
            self.epoch_scores = dict(state["epoch_scores"])


def loss_at_chance(terms: list[DiscriminatorTerm]) -> Tensor:
    """The summed loss of the best constant output ``c`` over this batch's terms, each a masked mean: ``c`` is the
    mean of the mean targets of the terms that have a clip (computed on the device, without reading it back)."""
    weights = [term.weight.sum() for term in terms]
    means = torch.stack(
        [(term.weight * term.target.nan_to_num()).sum() / weight.clamp(min=1) for term, weight in zip(terms, weights)]
    )
    present = (torch.stack(weights) > 0).float()
    constant = (means * present).sum() / present.sum()
    losses = [
        (term.weight * (term.target.nan_to_num() - constant) ** 2).sum() / weight.clamp(min=1)
        for term, weight in zip(terms, weights)
    ]
    return torch.stack(losses).sum()
