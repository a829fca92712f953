"""The vocoder family: the log-mel spectrogram of an audio excerpt in, the excerpt's waveform out (issue 26).

A vocoder is the codec's loop without a quantizer: the data module gives audio excerpts (``CodecDataModule``), the
module computes each excerpt's log-mel on the device with its own front-end (``mel_spectrogram``, a submodule, so a
checkpoint holds everything needed to vocode), the generator turns the mel back into audio, and the discriminators
judge it against the excerpt.

Three loss recipes (``loss_recipe``). Vocos's (``vocos``; ``vocos.experiment.VocosExp.training_step`` in vocos 0.1.0):

- discriminator: hinge, each discriminator's sum over its sub-discriminators divided by their number
  (``per_discriminator``), the discriminators weighted by ``discriminator_weights`` (Vocos: MPD 1, MRD 0.1,
  ``mrd_loss_coeff`` in its ``configs/vocos.yaml``);
- generator: ``mel`` × the L1 of the two log-mels (``VocosMelLoss``: Vocos's 100 mels, n_fft 1024, hop 256 at the
  data's sample rate, whatever the front-end's settings, as Vocos's ``MelSpecReconstructionLoss``; weight 45 in
  Vocos) + ``adversarial`` × the hinge generator loss + ``feature_matching`` × the L1 of every feature map and the
  logits, each weighted and divided per discriminator as the discriminator's loss.

HiFi-GAN's (``hifigan``; jik876/hifi-gan ``train.py``) and BigVGAN-v2's (``bigvgan``; NVIDIA/BigVGAN ``train.py``):

- discriminator: least squares, ``Σ_k mean((1 - D_k(real))²) + mean(D_k(fake)²)`` summed over every
  sub-discriminator of every discriminator (``discriminator_weights`` 1 each, as in both references);
- generator: ``mel`` × the mel loss + ``adversarial`` × ``Σ_k mean((1 - D_k(fake))²)`` + ``feature_matching`` ×
  ``vocoder_feature_loss`` (2 × the sum of the mean absolute differences of every feature map, logits included;
  without the logits for BigVGAN's CQT discriminator, whose ``fmap`` leaves them out);
- mel loss: HiFi-GAN's, the L1 of ``HiFiGANLogMel`` at the front-end's settings with ``f_max`` None (its
  ``fmax_for_loss``), weight 45; BigVGAN-v2's, ``MultiScaleMelLoss(sample_rate)`` (DAC's 7 scales), weight 15.

Vocos's ``pretrain_mel_steps`` and BigVGAN's ``--freeze_step`` (mel-only steps before the discriminators train) are
``discriminator_start_step``; BigVGAN's ``clip_grad_norm`` is ``grad_clip_g`` and ``grad_clip_d``.

Lengths: a generator makes ``hop_length`` samples per mel frame, so a training or validation excerpt must be a whole
number of hops; anything else is a ``ConfigError`` at start-up naming the key and the nearest consistent values, never
a shape error at step 1 (gemelo-ai/vocos#3, #59). An evaluation item of any other length is padded to a whole number of hops
and its estimate cut back to the item's length.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from codecgan.config_error import ConfigError
from codecgan.evaluation.vocoder_scores import VOCODER_MEASURES, PendingVocoderRows, VocoderScores
from codecgan.gan_module import Batch, Forward, GANModule
from codecgan.losses.adversarial import (
    CHANCE_PER_SUB_DISCRIMINATOR,
    DiscriminatorOutputs,
    discriminator_loss,
    generator_adversarial_loss,
    real_fake_means,
)
from codecgan.losses.mel import MultiScaleMelLoss
from codecgan.losses.vocoder import HiFiGANMelLoss, vocoder_feature_loss
from codecgan.losses.vocos_losses import VocosMelLoss, feature_matching_loss_with_logits, per_discriminator
from codecgan.metrics import PesqPool, default_worker_count
from codecgan.models.cqt_discriminator import MultiScaleSubbandCQTDiscriminator
from codecgan.vocoder_settings import (
    check_discriminator_sample_rates,
    check_discriminator_weights,
    check_loss_recipe,
    check_mel_settings,
    check_whole_hops,
    discriminator_group_sizes,
    hifigan_loss_mel_settings,
    members,
)

VOCOS_LOSS_WEIGHTS = {"mel": 45.0, "adversarial": 1.0, "feature_matching": 1.0}
RECIPE_LOSS_WEIGHTS = {
    "vocos": VOCOS_LOSS_WEIGHTS,
    "hifigan": {"mel": 45.0, "adversarial": 1.0, "feature_matching": 1.0},  # feature matching's x2 is inside
    "bigvgan": {"mel": 15.0, "adversarial": 1.0, "feature_matching": 1.0},  # lambda_melloss of the v2 configs
}
ADVERSARIAL_KIND = {"vocos": "hinge", "hifigan": "least_squares", "bigvgan": "least_squares"}
MODEL = "model.init_args"


class VocoderGAN(GANModule):
    """Trains a mel-to-waveform generator adversarially.

    Args:
        generator: log-mel ``[B, n_mels, frames]`` -> audio ``[B, 1, frames * hop_length]`` (the head's padding
            decides the frames: ``VocosGenerator``). It exposes ``hop_length``; its mel bands (``n_mels``, or a Vocos
            backbone's ``input_channels``) are checked against the front-end's.
        discriminator: a discriminator, or a ``DiscriminatorSet`` of several, each with a ``discriminators`` list
            (one output list per entry; docs/interfaces.md). Vocos: ``VocosMultiPeriodDiscriminator`` and
            ``VocosMultiResolutionDiscriminator``.
        mel_spectrogram: the mel front-end, audio ``[B, 1, T]`` -> log-mel ``[B, n_mels, frames]``
            (``VocosMelSpectrogram``). Its ``sample_rate``, ``hop_length`` and ``n_mels`` must be the data's and the
            generator's.
        sample_rate: Hz (linked from ``data.init_args.sample_rate`` by the CLI).
        loss_recipe: ``vocos``, ``hifigan`` or ``bigvgan`` (the module's opening).
        loss_weights: ``mel``, ``adversarial``, ``feature_matching``; missing keys take the recipe's (Vocos and
            HiFi-GAN 45, 1, 1; BigVGAN-v2 15, 1, 1).
        discriminator_weights: one weight per discriminator of the set, in its order (Vocos: ``[1.0, 0.1]``, MPD and
            MRD); ``None``: 1 for each.
        gan_options: the loop's settings (optimizers, schedulers, ``discriminator_start_step``, ...): see
            ``GANModule``.

    Logs ``train/loss_mel``, ``train/loss_adv``, ``train/loss_fm`` (weighted) and ``val/mel_distance``: the L1
    between the log-mels of estimate and reference (the Vocos and HiFi-GAN mel loss unweighted; for BigVGAN the
    single-scale HiFi-GAN log-mel L1 that its validation reports), a ``MeanMetric`` whose sum and count
    are reduced across ranks, so it is exact under DDP with uneven validation shards. It is the family's quality
    metric (``codecgan.diagnosis.quality_metric``, lower is better); a vocoder's waveform SNR is not one, since
    nothing in its losses ties the phase to the reference's.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        mel_spectrogram: nn.Module,
        sample_rate: int = 24000,
        loss_recipe: str = "vocos",
        loss_weights: dict[str, float] | None = None,
        discriminator_weights: list[float] | None = None,
        **gan_options: Any,
    ) -> None:
        super().__init__(generator, discriminator, **gan_options)
        check_loss_recipe(loss_recipe)
        unknown = sorted(set(loss_weights or {}) - set(VOCOS_LOSS_WEIGHTS))
        if unknown:
            raise ConfigError(
                f"{MODEL}.loss_weights has unknown keys {unknown}; allowed: {sorted(VOCOS_LOSS_WEIGHTS)}."
            )
        self.loss_recipe = loss_recipe
        self.adversarial_kind = ADVERSARIAL_KIND[loss_recipe]
        self.loss_weights = {**RECIPE_LOSS_WEIGHTS[loss_recipe], **(loss_weights or {})}
        self.sample_rate = sample_rate
        self.mel_spectrogram = mel_spectrogram
        self.hop_length = check_mel_settings(generator, mel_spectrogram, sample_rate)
        check_discriminator_sample_rates(discriminator, sample_rate)
        self.discriminator_groups = discriminator_group_sizes(discriminator)
        self.discriminator_weights = check_discriminator_weights(discriminator_weights, len(self.discriminator_groups))
        self.feature_maps_with_logits = [
            not isinstance(m, MultiScaleSubbandCQTDiscriminator) for m in members(discriminator)
        ]
        if loss_recipe == "vocos":
            # Vocos's MelSpecReconstructionLoss(sample_rate): its own mel settings, whatever the front-end's.
            self.mel_loss = VocosMelLoss(sample_rate)
        elif loss_recipe == "hifigan":
            self.mel_loss = HiFiGANMelLoss(**hifigan_loss_mel_settings(mel_spectrogram))
        else:
            self.mel_loss = MultiScaleMelLoss(sample_rate)
            # BigVGAN validates with the single-scale log-mel L1 at the front-end's settings (fmax_for_loss).
            self.validation_mel_loss = HiFiGANMelLoss(**hifigan_loss_mel_settings(mel_spectrogram))
        self.val_mel_distance = MeanMetric()  # sum and count states: exact under DDP with uneven val shards

    # ------------------------------------------------------------------------------- start-up checks
    def check_crop_length(self, crop: int) -> None:
        """Fail at start when a training or validation excerpt is not a whole number of hops, or too short for the
        discriminators, naming the key and consistent values."""
        lengths = {"data.init_args.crop_seconds": crop}
        datamodule = self.trainer.datamodule
        if getattr(datamodule, "val_crop", "full") != "full":
            lengths["data.init_args.val_crop_seconds"] = datamodule.val_crop_samples
        for key, samples in lengths.items():
            check_whole_hops(key, samples, self.hop_length, self.sample_rate)
        super().check_crop_length(crop)

    # ----------------------------------------------------------------------------------- the recipe
    def generator_forward(self, batch: Batch) -> Forward:
        audio = batch["audio"]
        samples, missing = audio.shape[-1], -audio.shape[-1] % self.hop_length
        mel = batch.get("mel")  # precomputed (VocoderDataModule's mel_dir: a TTS model's mels), else the audio's
        if mel is None:
            with torch.no_grad():
                mel = self.mel_spectrogram(F.pad(audio, (0, missing)) if missing else audio)
        estimate = self.trained(self.generator)(mel)
        if missing:
            estimate = estimate[..., :samples]
        return {"estimate": estimate, "reference": audio, "input": audio, "length": batch["length"], "mel": mel}

    def discriminator_loss(self, batch: Batch, forward: Forward) -> tuple[Tensor, dict[str, Any]]:
        # One call on real and generated audio together: every layer treats each item on its own.
        outputs = self.trained(self.discriminator)(torch.cat([forward["reference"], forward["estimate"].detach()]))
        real = [[features[-1].chunk(2)[0]] for features in outputs]
        fake = [[features[-1].chunk(2)[1]] for features in outputs]
        loss = sum(
            weight * self.reduced(discriminator_loss(real_group, fake_group, self.adversarial_kind), real_group)
            for weight, real_group, fake_group in self.grouped(real, fake)
        )
        d_real, d_fake = real_fake_means(real, fake)
        # A discriminator that cannot tell scores the hinge's 2 (least squares: 0.5) per sub-discriminator: per
        # weighted group after Vocos's division, per weighted sub-discriminator in the summed recipes.
        per_group = [1] * len(self.discriminator_groups) if self.loss_recipe == "vocos" else self.discriminator_groups
        chance = CHANCE_PER_SUB_DISCRIMINATOR[self.adversarial_kind] * sum(
            weight * count for weight, count in zip(self.discriminator_weights, per_group)
        )
        return loss, {"d_real": d_real, "d_fake": d_fake, "d_loss_chance": chance}

    def generator_loss(
        self, batch: Batch, forward: Forward, adversarial: bool
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        weights = self.loss_weights
        estimate, reference = forward["estimate"], forward["reference"]
        terms = {"loss_mel": weights["mel"] * self.mel_loss(estimate, reference)}
        if adversarial and (weights["adversarial"] or weights["feature_matching"]):
            with torch.no_grad():  # the real features are constants of the feature-matching loss
                real = self.discriminator(reference)
            fake = self.discriminator(estimate)
            adversarial_loss = feature_matching = 0.0
            groups = zip(self.grouped(real, fake), self.feature_maps_with_logits)
            for (weight, real_group, fake_group), with_logits in groups:
                generator_term = generator_adversarial_loss(fake_group, self.adversarial_kind)
                adversarial_loss = adversarial_loss + weight * self.reduced(generator_term, fake_group)
                if self.loss_recipe == "vocos":
                    matching = feature_matching_loss_with_logits(real_group, fake_group)
                else:
                    matching = vocoder_feature_loss(real_group, fake_group, include_logits=with_logits)
                feature_matching = feature_matching + weight * self.reduced(matching, fake_group)
            terms["loss_adv"] = weights["adversarial"] * adversarial_loss
            terms["loss_fm"] = weights["feature_matching"] * feature_matching
        return terms, {}

    def reduced(self, term: Tensor, outputs: DiscriminatorOutputs) -> Tensor:
        """A discriminator's sum over its sub-discriminators as the recipe takes it: divided by their number in
        Vocos's (``per_discriminator``), the sum itself in HiFi-GAN's and BigVGAN's."""
        return per_discriminator(term, outputs) if self.loss_recipe == "vocos" else term

    def grouped(
        self, real: DiscriminatorOutputs, fake: DiscriminatorOutputs
    ) -> list[tuple[float, DiscriminatorOutputs, DiscriminatorOutputs]]:
        """(weight, real outputs, fake outputs) of each discriminator of the set, in its order."""
        if len(real) != sum(self.discriminator_groups):
            raise RuntimeError(
                f"The discriminator returned {len(real)} output lists; its discriminators have "
                f"{self.discriminator_groups} sub-discriminators."
            )
        groups, start = [], 0
        for weight, size in zip(self.discriminator_weights, self.discriminator_groups):
            groups.append((weight, real[start : start + size], fake[start : start + size]))
            start += size
        return groups

    # ------------------------------------------------------------------------------------ validation
    @property
    def mel_distance(self) -> nn.Module:
        """The unweighted log-mel L1 that validation and `codecgan test` report: the recipe's mel loss, or BigVGAN's
        single-scale one (what its own validation reports) beside its 7-scale training loss."""
        return getattr(self, "validation_mel_loss", self.mel_loss)

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        forward = self.generator_forward(batch)
        distance = self.mel_distance(forward["estimate"], forward["reference"])
        self.val_mel_distance.update(distance, batch["audio"].shape[0])
        self.log("val/mel_distance", self.val_mel_distance)
        return {
            "estimate": forward["estimate"].detach(),
            "reference": forward["reference"],
            "input": forward["input"],
            "length": forward["length"],
            "index": batch["index"],
        }

    # ------------------------------------------------------------------------------------------ test
    def on_test_epoch_start(self) -> None:
        """Start the test's PESQ workers and the processes for the WORLD measures (``default_worker_count`` each),
        so both score an utterance while the generator runs on the next."""
        super().on_test_epoch_start()
        ranks_here = self.trainer.num_devices if self._trainer is not None else 1
        self._test_pesq_pool = PesqPool(default_worker_count(ranks_here), 16000, "wb")
        # WORLD's Harvest takes about 0.5 s of CPU per second of audio and F0 track, four tracks per utterance: its
        # own spawned processes (no fork of a process holding CUDA), one per core of this rank's share.
        self._test_world_processes = ProcessPoolExecutor(
            default_worker_count(ranks_here), mp_context=multiprocessing.get_context("spawn")
        )
        self.vocoder_scores = VocoderScores(
            self.sample_rate, self.mel_distance, self._test_pesq_pool, self._test_world_processes
        )
        self.test_means = nn.ModuleDict({name: MeanMetric(nan_strategy="ignore") for name in VOCODER_MEASURES}).to(
            self.device
        )
        self._pending_test_rows = []

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """Resynthesise each test utterance whole (padded to whole hops, cut back) and score it
        (``VocoderScores``): ``outputs["scores"]``, one ``vocoder`` row per utterance, for ``EvaluationReport``;
        PESQ and the WORLD measures arrive while the next batch runs."""
        rows = []
        for row, samples in enumerate(batch["length"].tolist()):
            audio = batch["audio"][row : row + 1, :, :samples]
            estimate = self.resynthesise(audio)
            rows.append(self.vocoder_scores.submit(audio[0].mean(0), estimate[0].mean(0), int(batch["index"][row])))
        pending = PendingVocoderRows(rows)
        self._pending_test_rows.append(pending)
        return {"scores": pending}

    def on_test_epoch_end(self) -> None:
        """Log ``test/<measure>``: the means over the utterances that have a value, reduced across ranks."""
        for pending in self._pending_test_rows:
            for row in pending.result():
                for name, metric in self.test_means.items():
                    metric.update(torch.tensor(row[name], device=self.device))
        self._pending_test_rows = []
        for name, metric in self.test_means.items():
            self.log(f"test/{name}", metric)
        super().on_test_epoch_end()

    def teardown(self, stage: str) -> None:
        super().teardown(stage)
        if stage == "test" and getattr(self, "_test_pesq_pool", None) is not None:
            self._test_pesq_pool.close()
            self._test_world_processes.shutdown(wait=True)
            self._test_pesq_pool = self._test_world_processes = None

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """One file of ``data.predict_paths`` (``codecgan predict``) resynthesised whole, channel by channel, at the
        model's rate, for ``AudioPredictionWriter``; an item that could not be read passes through with its
        ``error``."""
        if "error" in batch:
            return batch
        described = {key: value for key, value in batch.items() if key != "audio"}
        audio = self.resynthesise(batch["audio"].unsqueeze(1))[:, 0]
        return {**described, "audio": audio, "sample_rate": self.sample_rate}

    @torch.no_grad()
    def resynthesise(self, audio: Tensor) -> Tensor:
        """``audio`` ``[B, 1, T]`` -> its log-mel -> the generator's audio ``[B, 1, T]`` (padded to whole hops for
        the front-end, cut back)."""
        samples, missing = audio.shape[-1], -audio.shape[-1] % self.hop_length
        mel = self.mel_spectrogram(F.pad(audio, (0, missing)) if missing else audio)
        return self.generator(mel)[..., :samples]
