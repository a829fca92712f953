"""The vocoder family: the log-mel spectrogram of an audio excerpt in, the excerpt's waveform out (issue 26).

A vocoder is the codec's loop without a quantizer: the data module gives audio excerpts (``CodecDataModule``), the
module computes each excerpt's log-mel on the device with its own front-end (``mel_spectrogram``, a submodule, so a
checkpoint holds everything needed to vocode), the generator turns the mel back into audio, and the discriminators
judge it against the excerpt.

The loss recipe is Vocos's (``loss_recipe: vocos``; ``vocos.experiment.VocosExp.training_step`` in vocos 0.1.0):

- discriminator: hinge, each discriminator's sum over its sub-discriminators divided by their number
  (``per_discriminator``), the discriminators weighted by ``discriminator_weights`` (Vocos: MPD 1, MRD 0.1,
  ``mrd_loss_coeff`` in its ``configs/vocos.yaml``);
- generator: ``mel`` × the L1 of the two log-mels (``VocosMelLoss``: Vocos's 100 mels, n_fft 1024, hop 256 at the
  data's sample rate, whatever the front-end's settings, as Vocos's ``MelSpecReconstructionLoss``; weight 45 in
  Vocos) + ``adversarial`` × the hinge generator loss + ``feature_matching`` × the L1 of every feature map and the
  logits, each weighted and divided per discriminator as the discriminator's loss.

Vocos's ``pretrain_mel_steps`` (mel-only steps before the discriminators train) is ``discriminator_start_step``.
HiFi-GAN's and BigVGAN's recipes (least squares, feature matching ×2, their mel front-ends) are names reserved for
``loss_recipe`` and refused with a ``ConfigError`` until their parts exist.

Lengths: a generator makes ``hop_length`` samples per mel frame, so a training or validation excerpt must be a whole
number of hops; anything else is a ``ConfigError`` at start-up naming the key and the nearest consistent values, never
a shape error at step 1 (gemelo-ai/vocos#3, #59). An evaluation item of any other length is padded to a whole number of hops
and its estimate cut back to the item's length.
"""

from __future__ import annotations

import math
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
from codecgan.losses.vocos_losses import VocosMelLoss, feature_matching_loss_with_logits, per_discriminator
from codecgan.metrics import PesqPool, default_worker_count
from codecgan.models.discriminator_set import DiscriminatorSet

LOSS_RECIPES = ("vocos", "hifigan", "bigvgan")
AVAILABLE_LOSS_RECIPES = ("vocos",)
VOCOS_LOSS_WEIGHTS = {"mel": 45.0, "adversarial": 1.0, "feature_matching": 1.0}
ADVERSARIAL_KIND = {"vocos": "hinge"}
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
        loss_recipe: ``vocos``; ``hifigan`` and ``bigvgan`` are not yet available.
        loss_weights: ``mel``, ``adversarial``, ``feature_matching``; missing keys take Vocos's (45, 1, 1).
        discriminator_weights: one weight per discriminator of the set, in its order (Vocos: ``[1.0, 0.1]``, MPD and
            MRD); ``None``: 1 for each.
        gan_options: the loop's settings (optimizers, schedulers, ``discriminator_start_step``, ...): see
            ``GANModule``.

    Logs ``train/loss_mel``, ``train/loss_adv``, ``train/loss_fm`` (weighted) and ``val/mel_distance``: the L1
    between the log-mels of estimate and reference (the mel loss unweighted), a ``MeanMetric`` whose sum and count
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
        self.loss_weights = {**VOCOS_LOSS_WEIGHTS, **(loss_weights or {})}
        self.sample_rate = sample_rate
        self.mel_spectrogram = mel_spectrogram
        self.hop_length = check_mel_settings(generator, mel_spectrogram, sample_rate)
        self.discriminator_groups = discriminator_group_sizes(discriminator)
        self.discriminator_weights = check_discriminator_weights(discriminator_weights, len(self.discriminator_groups))
        # Vocos's MelSpecReconstructionLoss(sample_rate): its own mel settings, whatever the front-end's.
        self.mel_loss = VocosMelLoss(sample_rate)
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
            weight * per_discriminator(discriminator_loss(real_group, fake_group, self.adversarial_kind), real_group)
            for weight, real_group, fake_group in self.grouped(real, fake)
        )
        d_real, d_fake = real_fake_means(real, fake)
        # A discriminator that cannot tell scores the hinge's 2 per sub-discriminator: 2 per weighted group here.
        chance = CHANCE_PER_SUB_DISCRIMINATOR[self.adversarial_kind] * sum(self.discriminator_weights)
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
            for weight, real_group, fake_group in self.grouped(real, fake):
                generator_term = generator_adversarial_loss(fake_group, self.adversarial_kind)
                adversarial_loss = adversarial_loss + weight * per_discriminator(generator_term, fake_group)
                matching = feature_matching_loss_with_logits(real_group, fake_group)
                feature_matching = feature_matching + weight * per_discriminator(matching, fake_group)
            terms["loss_adv"] = weights["adversarial"] * adversarial_loss
            terms["loss_fm"] = weights["feature_matching"] * feature_matching
        return terms, {}

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
    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        forward = self.generator_forward(batch)
        distance = self.mel_loss(forward["estimate"], forward["reference"])
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
            self.sample_rate, self.mel_loss, self._test_pesq_pool, self._test_world_processes
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


def check_loss_recipe(loss_recipe: str) -> None:
    """Raise a ``ConfigError`` naming ``model.init_args.loss_recipe`` unless the recipe exists and is available."""
    if loss_recipe not in LOSS_RECIPES:
        raise ConfigError(f"{MODEL}.loss_recipe must be one of {list(LOSS_RECIPES)}, got {loss_recipe!r}.")
    if loss_recipe not in AVAILABLE_LOSS_RECIPES:
        raise ConfigError(
            f"{MODEL}.loss_recipe {loss_recipe!r} is not yet available: its generator, discriminators and mel "
            f"front-end are not in codecgan yet. Available: {list(AVAILABLE_LOSS_RECIPES)}."
        )


def front_end_setting(mel_spectrogram: nn.Module, name: str) -> int:
    """A mel front-end's ``name`` (``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels``): its own attribute, or
    that of its torchaudio transform (``mel_spec``, as ``VocosMelSpectrogram``)."""
    for part in (mel_spectrogram, getattr(mel_spectrogram, "mel_spec", None)):
        value = getattr(part, name, None)
        if isinstance(value, int):
            return value
    raise ConfigError(
        f"{MODEL}.mel_spectrogram ({type(mel_spectrogram).__name__}) has no {name}: give a mel front-end such as "
        "codecgan.models.VocosMelSpectrogram."
    )


def generator_mel_bands(generator: nn.Module) -> int | None:
    """The mel bands a generator takes: its ``n_mels``, or its Vocos backbone's ``input_channels``; None if neither."""
    bands = getattr(generator, "n_mels", None)
    if bands is None:
        bands = getattr(getattr(generator, "backbone", None), "input_channels", None)
    return bands


def check_mel_settings(generator: nn.Module, mel_spectrogram: nn.Module, sample_rate: int) -> int:
    """The hop in samples, after checking that the data, the mel front-end and the generator agree on the sample
    rate, the hop and the mel bands; a ``ConfigError`` naming both keys and the consistent value otherwise."""
    front_end = f"{MODEL}.mel_spectrogram.init_args"
    rate = front_end_setting(mel_spectrogram, "sample_rate")
    if rate != sample_rate:
        raise ConfigError(
            f"{front_end}.sample_rate is {rate} Hz but data.init_args.sample_rate is {sample_rate} Hz: the mel "
            f"front-end must read the data's rate. Set {front_end}.sample_rate: {sample_rate}."
        )
    hop = front_end_setting(mel_spectrogram, "hop_length")
    generator_hop = getattr(generator, "hop_length", None)
    if generator_hop is None:
        raise ConfigError(f"{MODEL}.generator ({type(generator).__name__}) has no hop_length (samples per mel frame).")
    if generator_hop != hop:
        raise ConfigError(
            f"{MODEL}.generator.init_args.hop_length is {generator_hop} samples but {front_end}.hop_length is {hop}: "
            f"the generator must make one hop of audio per mel frame. Set both to {hop}."
        )
    bands, generator_bands = front_end_setting(mel_spectrogram, "n_mels"), generator_mel_bands(generator)
    if generator_bands is not None and generator_bands != bands:
        raise ConfigError(
            f"{MODEL}.generator.init_args.n_mels is {generator_bands} but {front_end}.n_mels is {bands}: the "
            f"generator takes the front-end's mel bands. Set both to {bands}."
        )
    return hop


def check_whole_hops(key: str, samples: int, hop: int, sample_rate: int) -> None:
    """Raise a ``ConfigError`` naming ``key`` when ``samples`` is not a whole number of ``hop``-sample frames, with
    the nearest durations that are."""
    if samples % hop == 0:
        return
    shorter, longer = (samples // hop) * hop, (samples // hop + 1) * hop
    options = [f"{seconds_for(n, sample_rate)} ({n} samples)" for n in (shorter, longer) if n > 0]
    raise ConfigError(
        f"{key} gives {samples} samples at {sample_rate} Hz, not a whole number of hops of {hop} samples "
        f"({MODEL}.generator.init_args.hop_length): the generated audio would not cover the excerpt. "
        f"Use {' or '.join(options)}."
    )


def seconds_for(samples: int, sample_rate: int) -> str:
    """The shortest decimal number of seconds that the data module rounds back to ``samples``."""
    for digits in range(3, 12):
        text = f"{samples / sample_rate:.{digits}f}".rstrip("0").rstrip(".")
        if round(float(text) * sample_rate) == samples:
            return text
    return repr(samples / sample_rate)


def discriminator_group_sizes(discriminator: nn.Module) -> list[int]:
    """The number of sub-discriminators of each discriminator of the set (one for a single discriminator)."""
    members = list(discriminator.discriminators) if isinstance(discriminator, DiscriminatorSet) else [discriminator]
    sizes = []
    for member in members:
        subs = getattr(member, "discriminators", None)
        if subs is None:
            raise ConfigError(
                f"{MODEL}.discriminator: {type(member).__name__} has no `discriminators` list, so its share of the "
                "outputs cannot be weighted; use multi-discriminators such as VocosMultiPeriodDiscriminator."
            )
        sizes.append(len(subs))
    return sizes


def check_discriminator_weights(weights: list[float] | None, count: int) -> list[float]:
    """One finite, non-negative weight per discriminator of the set (1 each when ``weights`` is None)."""
    if weights is None:
        return [1.0] * count
    if len(weights) != count or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ConfigError(
            f"{MODEL}.discriminator_weights must hold {count} non-negative numbers, one per discriminator of "
            f"{MODEL}.discriminator (Vocos: [1.0, 0.1] for MPD and MRD), got {list(weights)}."
        )
    return [float(w) for w in weights]
