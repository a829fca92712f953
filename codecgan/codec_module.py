"""The neural audio codec family: encoder + residual VQ + decoder against DAC-style discriminators."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from codecgan.config_error import ConfigError
from codecgan.evaluation.codec_scores import CodecScores, bitrate_kbps
from codecgan.evaluation.visqol_score import VISQOL_MODES
from codecgan.gan_module import Batch, Forward, GANModule
from codecgan.inference.predictions import Prediction, codec_prediction
from codecgan.losses import (
    MultiScaleMelLoss,
    discriminator_loss,
    discriminator_loss_at_chance,
    feature_matching_loss,
    generator_adversarial_loss,
    real_fake_means,
    split_real_fake,
)
from codecgan.losses.balancer import balancer_from_options

DAC_LOSS_WEIGHTS = {"mel": 15.0, "adversarial": 1.0, "feature_matching": 2.0, "commitment": 0.25, "codebook": 1.0}
# The terms the loss balancer may balance, by their loss_weights key; the VQ terms stay outside it, as in EnCodec.
BALANCED_TERMS = {
    "mel": "loss_mel",
    "adversarial": "loss_adv",
    "feature_matching": "loss_fm",
    "waveform": "loss_waveform",
}


class CodecGAN(GANModule):
    """Trains a codec generator (``CodecGenerator``) adversarially.

    Args:
        generator: returns a ``CodecOutput`` (``audio``, ``codes``, ``commitment_loss``, ``codebook_loss``).
        discriminator: returns one feature-map list per sub-discriminator, logits last.
        sample_rate: Hz, for the mel loss (linked from the data config by the CLI).
        adversarial_loss: ``least_squares`` (DAC's) or ``hinge``.
        loss_weights: weights of ``mel``, ``adversarial``, ``feature_matching``, ``commitment``,
            ``codebook`` and ``waveform`` (L1); missing keys take DAC's values (waveform 0).
        loss_balancer: EnCodec's gradient balancer (``codecgan.losses.balancer``) for the ``mel``,
            ``adversarial``, ``feature_matching`` and ``waveform`` terms: ``{weights: {adversarial: 4,
            feature_matching: 4, waveform: 0.1, mel: 2}, ema_decay: 0.999, total_norm: 1.0}`` (EnCodec's; a
            missing weight is 0: that term is logged, not trained on). Those terms are logged unweighted and their
            gradient reaches the generator through the balanced gradient at the estimate; the VQ terms
            (``commitment``, ``codebook``) are added outside it with their ``loss_weights``. ``None`` (default):
            DAC's weighted sum.
        mel_window_lengths, mel_bins: the mel loss's scales (DAC: 7 scales, 32- to 2048-sample windows).
        mel_magnitude_weight: its linear-magnitude term (``MultiScaleMelLoss``'s ``magnitude_weight``; DAC: 0).
        grad_clip_g, grad_clip_d: DAC's clipping (generator 1000, discriminator 10).
        test_codebook_counts: ``codecgan test`` scores the reconstruction with each of these numbers of codebooks
            (variable bitrate); ``None``: all of the generator's.
        test_visqol: also score ViSQOL in ``codecgan test``: ``audio`` (at 48 kHz, DAC's evaluation) or ``speech``
            (at 16 kHz, for speech codecs); ``None`` (default): not scored, as it takes about a second of CPU per
            second of audio (``codecgan.evaluation.visqol_score``).
        gan_options: the loop's settings (optimizers, schedulers, discriminator schedule, ...): see
            ``GANModule``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        sample_rate: int = 44100,
        adversarial_loss: str = "least_squares",
        loss_weights: dict[str, float] | None = None,
        loss_balancer: dict[str, Any] | None = None,
        mel_window_lengths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
        mel_bins: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320),
        mel_magnitude_weight: float = 0.0,
        grad_clip_g: float | None = 1000.0,
        grad_clip_d: float | None = 10.0,
        test_codebook_counts: tuple[int, ...] | None = None,
        test_visqol: str | None = None,
        **gan_options: Any,
    ) -> None:
        super().__init__(generator, discriminator, grad_clip_g=grad_clip_g, grad_clip_d=grad_clip_d, **gan_options)
        allowed = set(DAC_LOSS_WEIGHTS) | {"waveform"}
        unknown = set(loss_weights or {}) - allowed
        if unknown:
            raise ValueError(f"Unknown loss_weights keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
        self.loss_weights = {**DAC_LOSS_WEIGHTS, "waveform": 0.0, **(loss_weights or {})}
        self.loss_balancer = balancer_from_options(loss_balancer, BALANCED_TERMS, "model.init_args.loss_balancer")
        if self.loss_balancer is not None:
            self.loss_weights.update(balanced_term_factors(self.loss_balancer.weights, loss_weights or {}))
        self.adversarial_loss = adversarial_loss
        discriminator_loss([[torch.zeros(1)]], [[torch.zeros(1)]], adversarial_loss)  # validates the kind early
        self.sample_rate = sample_rate
        self.mel_loss = MultiScaleMelLoss(
            sample_rate, mel_window_lengths, mel_bins, magnitude_weight=mel_magnitude_weight
        )
        self.val_mel = MeanMetric()  # sum and count states: exact under DDP with uneven val shards
        counts = tuple(test_codebook_counts or (generator.n_codebooks,))
        if not all(1 <= count <= generator.n_codebooks for count in counts):
            raise ValueError(
                f"test_codebook_counts must lie in 1..{generator.n_codebooks} (the generator's codebooks), got {list(counts)}."
            )
        self.test_codebook_counts = counts
        if test_visqol is not None and test_visqol not in VISQOL_MODES:
            raise ConfigError(
                f"model.init_args.test_visqol must be one of {sorted(VISQOL_MODES)} or null, got {test_visqol!r}."
            )
        self.codec_scores = CodecScores(sample_rate, test_visqol)
        self.test_means = nn.ModuleDict(
            {name: MeanMetric(nan_strategy="ignore") for name in self.codec_scores.measures[1:]}
        )

    def generator_forward(self, batch: Batch) -> Forward:
        audio = batch["audio"]
        output = self.trained(self.generator)(audio)
        return {
            "estimate": output.audio,
            "reference": audio,
            "input": audio,
            "length": batch["length"],
            "codes": output.codes,
            "commitment_loss": output.commitment_loss,
            "codebook_loss": output.codebook_loss,
        }

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Prediction:
        """One file of ``data.predict_paths`` (``codecgan predict``): its codes and their decoding, for
        ``AudioPredictionWriter`` (``codecgan.inference.predictions``)."""
        return codec_prediction(self.generator, batch, self.sample_rate)

    def discriminator_loss(self, batch: Batch, forward: Forward) -> tuple[Tensor, dict[str, Any]]:
        # One call on real and generated audio together: half the ops of two calls, the same result, since
        # every layer of these discriminators treats each item on its own.
        audio = torch.cat([forward["reference"], forward["estimate"].detach()])
        real, fake = split_real_fake(self.trained(self.discriminator)(audio))
        d_real, d_fake = real_fake_means(real, fake)
        return discriminator_loss(real, fake, self.adversarial_loss), {
            "d_real": d_real,
            "d_fake": d_fake,
            "d_loss_chance": discriminator_loss_at_chance(real, self.adversarial_loss),
        }

    def generator_loss(
        self, batch: Batch, forward: Forward, adversarial: bool
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        weights = self.loss_weights
        estimate, reference = forward["estimate"], forward["reference"]
        terms = {
            "loss_mel": weights["mel"] * self.mel_loss(estimate, reference),
            "loss_vq": weights["commitment"] * forward["commitment_loss"]
            + weights["codebook"] * forward["codebook_loss"],
        }
        if weights["waveform"]:
            terms["loss_waveform"] = weights["waveform"] * (estimate.float() - reference.float()).abs().mean()
        if adversarial and (weights["adversarial"] or weights["feature_matching"]):
            real = self.discriminator(reference)
            fake = self.discriminator(estimate)
            terms["loss_adv"] = weights["adversarial"] * generator_adversarial_loss(fake, self.adversarial_loss)
            terms["loss_fm"] = weights["feature_matching"] * feature_matching_loss(real, fake)
        extra = {"codes": forward["codes"].detach(), "codebook_size": int(self.generator.codebook_size)}
        restarts = getattr(self.generator.quantizer, "dead_code_restarts", None)  # EMA codebooks only
        if restarts is not None:
            extra["vq_dead_code_restarts"] = restarts.sum()
        return terms, extra

    def generator_objective(
        self, loss_g: Tensor, terms: dict[str, Tensor], forward: Forward
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """With the loss balancer, Σ(estimate · G) + the VQ terms: its gradient at the estimate is the balanced
        gradient G, the VQ terms' is their own. Logs ``diag/balancer_weight/<term>`` and ``diag/balancer_share/<term>``."""
        if self.loss_balancer is None:
            return loss_g, {}
        estimate = forward["estimate"]
        balanced = {name: term for name, term in terms.items() if name in self.loss_balancer.weights}
        gradient, stats = self.loss_balancer(balanced, estimate)
        others = [term for name, term in terms.items() if name not in balanced]
        objective = (estimate * gradient).sum() + torch.stack(others).sum() if others else (estimate * gradient).sum()
        logs = {
            f"diag/balancer_{kind}/{name}": value for key, value in stats.items() for kind, name in [key.split("_", 1)]
        }
        return objective, logs

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        forward = self.generator_forward(batch)
        self.val_mel.update(self.mel_loss(forward["estimate"], forward["reference"]), batch["audio"].shape[0])
        self.log("val/loss_mel", self.val_mel)
        return {
            "estimate": forward["estimate"].detach(),
            "reference": forward["reference"],
            "input": forward["input"],
            "length": forward["length"],
            "index": batch["index"],
        }

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """Score each test utterance whole (never a crop, never padding) with the codec papers' measures
        (``CodecScores``) at each of ``test_codebook_counts``: ``outputs["scores"]``, one row per utterance and
        bitrate, for ``EvaluationReport``. Logs ``test/<measure>`` at the largest count, reduced across ranks."""
        generator, rows = self.generator, []
        for row, samples in enumerate(batch["length"].tolist()):
            audio = batch["audio"][row : row + 1, :, :samples]
            for count in self.test_codebook_counts:
                bitrate = bitrate_kbps(count, generator.codebook_size, self.sample_rate, generator.hop_length)
                estimate = generator(audio, n_quantizers=count).audio
                scores = self.codec_scores(audio[0].mean(0), estimate[0].mean(0), bitrate)
                rows.append({"utterance": int(batch["index"][row]), "system": f"{count} codebooks", **scores})
                if count == max(self.test_codebook_counts):
                    for name, metric in self.test_means.items():
                        metric.update(torch.tensor(scores[name]))
        self.log_dict({f"test/{name}": metric for name, metric in self.test_means.items()}, batch_size=len(rows))
        return {"scores": rows}


def balanced_term_factors(balancer_weights: dict[str, float], loss_weights: dict[str, float]) -> dict[str, float]:
    """The ``loss_weights`` of the balanced terms under the balancer: 1 (the term unweighted, for the balancer and the
    log) when computed, 0 when not needed; a balanced key set in ``loss_weights`` too is a ``ConfigError``."""
    both = sorted(set(loss_weights) & set(BALANCED_TERMS))
    if both:
        raise ConfigError(
            f"model.init_args.loss_weights.{both[0]} has no effect under model.init_args.loss_balancer: set it in "
            f"model.init_args.loss_balancer.weights.{both[0]} instead."
        )
    used = {key: balancer_weights[term] > 0 for key, term in BALANCED_TERMS.items()}
    adversarial = used["adversarial"] or used["feature_matching"]  # one discriminator call gives both
    return {
        "mel": 1.0,
        "waveform": float(used["waveform"]),
        "adversarial": float(adversarial),
        "feature_matching": float(adversarial),
    }
