"""The speech-enhancement family: a CMGAN-style generator against a metric (PESQ-predicting) discriminator.

Per batch, as in CMGAN: the generator steps first; the metric discriminator then learns
``D(clean, clean) -> 1`` and ``D(clean, estimate) -> (PESQ - 1) / 3.5`` on the pre-update estimate.
PESQ runs in worker processes (``PesqPool``): submitted right after the generator forward and
waited for only in the discriminator step, so it overlaps the generator's backward
(``pesq_lag=0``), or a whole training step (``pesq_lag=1``: batch t's discriminator learns batch
t-1's targets, each next to the spectra it scored).

``loss_recipe`` picks the generator's losses: ``cmgan`` (RI, magnitude, time, metric) or ``mpsenet``
(magnitude, anti-wrapped phase, complex, STFT consistency, time, metric: ``codecgan.losses.mpsenet``,
with ``MPSENetGenerator``). MP-SENet's metric terms see the magnitude of the STFT of the estimate's
waveform (its "consistent" magnitude), CMGAN's the generator's magnitude head.

PESQ ignores level (an estimate scaled by 1e-6 scores the same), so the metric discriminator
cannot teach gain; only the spectral and time losses do. The SignalStats callback's
``val/amplitude_ratio`` watches for that.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric

from codecgan.config_error import ConfigError
from codecgan.evaluation.dnsmos_score import DNSMOS_MEASURES, DnsmosRows, DnsmosScore
from codecgan.evaluation.enhancement_scores import ENHANCEMENT_MEASURES, EnhancementScores, PendingRows
from codecgan.evaluation.freed_memory import keep_freed_memory, release_freed_memory
from codecgan.gan_module import Batch, Forward, GANModule
from codecgan.inference.predictions import Prediction, enhancement_prediction
from codecgan.losses.enhancement import (
    magnitude_loss,
    metric_discriminator_loss,
    metric_discriminator_loss_at_chance,
    metric_generator_loss,
    pesq_to_target,
    pesq_weights,
    ri_loss,
    time_loss,
)
from codecgan.losses.mpsenet import MPSENET_LOSS_WEIGHTS, complex_loss, consistency_loss, phase_losses
from codecgan.metrics import (
    PendingPesq,
    PesqHandle,
    PesqLimits,
    PesqPool,
    cut_to_common_length,
    default_worker_count,
    pad_to_batch,
    stoi_scores,
    to_device_without_waiting,
)

CMGAN_LOSS_WEIGHTS = {"ri": 0.1, "magnitude": 0.9, "time": 0.2, "gan": 0.05}
RECIPE_LOSS_WEIGHTS = {"cmgan": CMGAN_LOSS_WEIGHTS, "mpsenet": MPSENET_LOSS_WEIGHTS}
PESQ_LAGS = (0, 1)
LAG_STATE_KEY = "pesq_lag_buffer"


class MetricGANEnhancer(GANModule):
    """Trains an enhancer (``CMGANGenerator``, ``MPSENetGenerator``) against a ``MetricDiscriminator``.

    Args:
        generator: ``forward(noisy [B, 1, T]) -> EnhancementOutput``, with ``compressed_spectrum(audio)``;
            ``loss_recipe: mpsenet`` needs a ``MagnitudePhaseOutput`` (with the phase).
        discriminator: ``forward(clean_magnitude, estimate_magnitude) -> [B]`` in [0, 1].
        sample_rate: Hz; wideband PESQ and CMGAN's STFT need 16000 (linked from the data config).
        loss_recipe: ``cmgan`` or ``mpsenet``: which generator losses (see the module docstring).
        loss_weights: the recipe's keys (``cmgan``: ``ri``, ``magnitude``, ``time``, ``gan``; ``mpsenet``:
            ``magnitude``, ``phase``, ``complex``, ``consistency``, ``time``, ``gan``); missing keys take
            the recipe's published values.
        pesq_failure_policy: ``mask`` trains the metric term on the clips that have a PESQ;
            ``drop_batch`` (CMGAN) skips the discriminator's whole update (no optimizer step, on every
            rank) when any clip of any rank's batch has none.
        clamp_pesq_targets: clamp the targets ``(PESQ - 1) / 3.5`` to [0, 1]; CMGAN does not (its
            targets reach 1.04).
        pesq_lag: 0 or 1 (see the module docstring).
        pesq_workers: PESQ processes per rank; ``None`` = this rank's share of the CPU cores;
            0 = inline and blocking.
        discriminator_first: ``false``, the only value: the generator steps first, as in CMGAN, so that the metric
            discriminator learns the PESQ of the estimate the generator step started from.
        pesq_limits: the longest clip PESQ scores and each clip's time bound in the worker processes
            (``PesqLimits``); a clip beyond them counts as ``too_long`` or ``timeout``, never as a target.
        test_dnsmos: also score DNSMOS P.835 (SIG, BAK, OVRL; non-intrusive) in ``codecgan test``, which then accepts
            a test folder of noisy recordings without clean references (``codecgan.evaluation.dnsmos_score``;
            needs ``pip install 'codecgan[dnsmos]'``).
        gan_options: the loop's settings (optimizers, schedulers, discriminator schedule, clipping,
            ...): see ``GANModule``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        sample_rate: int = 16000,
        loss_recipe: str = "cmgan",
        loss_weights: dict[str, float] | None = None,
        pesq_failure_policy: str = "mask",
        clamp_pesq_targets: bool = False,
        pesq_lag: int = 0,
        pesq_workers: int | None = None,
        discriminator_first: bool = False,
        pesq_limits: PesqLimits | None = None,
        test_dnsmos: bool = False,
        **gan_options: Any,
    ) -> None:
        if discriminator_first:
            raise ConfigError(
                "model.init_args.discriminator_first must be false for MetricGANEnhancer: it steps the generator "
                "first, as CMGAN does, so that its metric discriminator learns the PESQ of the estimate the "
                "generator step started from. Remove the key."
            )
        super().__init__(generator, discriminator, discriminator_first=False, **gan_options)
        if loss_recipe not in RECIPE_LOSS_WEIGHTS:
            raise ConfigError(
                f"model.init_args.loss_recipe must be one of {sorted(RECIPE_LOSS_WEIGHTS)}, got {loss_recipe!r}."
            )
        recipe_weights = RECIPE_LOSS_WEIGHTS[loss_recipe]
        unknown = set(loss_weights or {}) - set(recipe_weights)
        if unknown:
            raise ConfigError(
                f"Unknown model.init_args.loss_weights keys {sorted(unknown)} for loss_recipe {loss_recipe!r}; "
                f"allowed: {sorted(recipe_weights)}."
            )
        pesq_weights(torch.zeros(1), pesq_failure_policy)  # validates the policy early
        if pesq_lag not in PESQ_LAGS:
            raise ValueError(f"pesq_lag must be one of {PESQ_LAGS}, got {pesq_lag!r}.")
        if pesq_workers is not None and pesq_workers < 0:
            raise ValueError(f"pesq_workers must be >= 0 (0 = inline) or null (the rank's cores), got {pesq_workers}.")
        if sample_rate != 16000:
            raise ValueError(f"sample_rate must be 16000 Hz (wideband PESQ, CMGAN's STFT), got {sample_rate}.")
        self.sample_rate = sample_rate
        self.loss_recipe = loss_recipe
        self.loss_weights = {**recipe_weights, **(loss_weights or {})}
        self.pesq_failure_policy, self.pesq_lag, self.pesq_workers = pesq_failure_policy, pesq_lag, pesq_workers
        self.clamp_pesq_targets = clamp_pesq_targets
        self.pesq_limits = PesqLimits() if pesq_limits is None else pesq_limits
        self._pesq_pool: PesqPool | None = None
        self._pesq_nb_pool: PesqPool | None = None  # narrow-band PESQ, for `codecgan test` only
        self._lagged: PendingPesq | None = None  # pesq_lag=1: the previous batch's scores on their way
        self._pending_test_rows: list[PendingRows] = []  # `codecgan test`: each batch's rows on their way
        self._measure_thread: ThreadPoolExecutor | None = None  # `codecgan test`: STOI, composite, SI-SDR
        # Sum and count states: exact under DDP with uneven validation shards; failures are counted.
        self.val_pesq, self.val_stoi = MeanMetric(nan_strategy="ignore"), MeanMetric(nan_strategy="ignore")
        self.val_pesq_failed, self.val_stoi_failed = SumMetric(), SumMetric()
        self.test_pesq, self.test_stoi = MeanMetric(nan_strategy="ignore"), MeanMetric(nan_strategy="ignore")
        self.test_pesq_failed, self.test_stoi_failed = SumMetric(), SumMetric()
        self.dnsmos = DnsmosScore() if test_dnsmos else None  # a ConfigError when its packages are missing
        self.test_dnsmos_means = (
            nn.ModuleDict({measure: MeanMetric(nan_strategy="ignore") for measure in DNSMOS_MEASURES})
            if test_dnsmos
            else None
        )
        self.test_references = True  # false while testing on noisy recordings without clean references

    # ------------------------------------------------------------------------------ PESQ pool
    @property
    def pesq_pool(self) -> PesqPool:
        """This rank's pool, started on first use."""
        if self._pesq_pool is None or self._pesq_pool.closed:
            ranks_here = self._trainer.num_devices if self._trainer is not None else 1
            workers = default_worker_count(ranks_here) if self.pesq_workers is None else self.pesq_workers
            self._pesq_pool = PesqPool(workers, self.sample_rate, limits=self.pesq_limits)
        return self._pesq_pool

    def close_pesq_pool(self) -> None:
        for pool in (self._pesq_pool, self._pesq_nb_pool):
            if pool is not None:
                pool.close()

    def setup(self, stage: str) -> None:
        """Start the PESQ workers while the data loads (after checking the crop length); prediction needs none."""
        super().setup(stage)
        if stage == "test":
            self.test_references = getattr(self._trainer.datamodule, "test_references", True)
            if not self.test_references and self.dnsmos is None:
                raise ConfigError(
                    "data.init_args.test_dir has no clean/ folder, so without clean references no measure of "
                    "codecgan test but the non-intrusive DNSMOS can score it: set model.init_args.test_dnsmos: true "
                    "(pip install 'codecgan[dnsmos]'), or add the clean/ folder."
                )
        if stage != "predict":
            _ = self.pesq_pool

    def check_crop_length(self, crop: int) -> None:
        """Fail at start when crops are too short or too long for PESQ (the metric discriminator takes any length)."""
        if crop < self.sample_rate // 4:
            raise ConfigError(
                f"data.crop_seconds gives {crop}-sample crops; PESQ needs at least {self.sample_rate // 4} "
                "(0.25 s), so every clip would fail as too_short and the metric discriminator learn nothing."
            )
        if crop > self.pesq_limits.max_samples(self.sample_rate):
            raise ConfigError(
                f"data.crop_seconds gives {crop / self.sample_rate:g} s crops, longer than "
                f"model.init_args.pesq_limits.max_clip_seconds ({self.pesq_limits.max_clip_seconds:g} s), so every "
                "clip would fail as too_long and the metric discriminator learn nothing. Shorten the crops or raise "
                "the limit."
            )

    def teardown(self, stage: str) -> None:
        self.close_pesq_pool()
        if self.dnsmos is not None:
            self.dnsmos.close()
        if stage == "test":
            self._stop_measure_thread()
            release_freed_memory()

    def configure_callbacks(self) -> list[Callback]:
        return [_ClosePesqPoolOnException()]  # a LightningModule has no on_exception hook

    def score_estimates(self, clean: Tensor, estimate: Tensor, length: Tensor) -> PesqHandle:
        """Start PESQ of ``estimate`` against ``clean`` (``[B, 1, T]``, on the samples both have); returns a
        ``PesqHandle``."""
        estimate, clean, length = cut_to_common_length(estimate, clean, length)
        return self.pesq_pool.submit(clean, estimate, length)

    # ---------------------------------------------------------------------------- the GAN hooks
    def generator_forward(self, batch: Batch) -> Forward:
        noisy, clean = batch["noisy"], batch["clean"]
        output = self.trained(self.generator)(noisy)
        with torch.no_grad():
            target = self.generator.compressed_spectrum(clean * output.normalization)
        forward = {
            "estimate": output.audio,
            "reference": clean,
            "input": noisy,
            "length": batch["length"],
            "real": output.real,
            "imag": output.imag,
            "magnitude": output.magnitude,
            "normalization": output.normalization,
            "clean_real": target.real,
            "clean_imag": target.imag,
            "clean_magnitude": target.magnitude,
            "metric_magnitude": output.magnitude,  # what the metric discriminator sees
        }
        if self.loss_recipe == "mpsenet":
            reanalysed = self.generator.compressed_spectrum(output.audio * output.normalization)
            forward.update(
                phase=output.phase,
                clean_phase=torch.atan2(target.imag, target.real),
                reanalysed_real=reanalysed.real,
                reanalysed_imag=reanalysed.imag,
                metric_magnitude=reanalysed.magnitude,
            )
        if self.training:
            forward["pending_pesq"] = self._queue_pesq(forward)
        return forward

    def _queue_pesq(self, forward: Forward) -> PendingPesq | None:
        """Submit this batch's PESQ if a discriminator step will use it; return the one to use now."""
        pending = None
        if self.discriminator_trains_at(self.global_step + self.pesq_lag):
            handle = self.score_estimates(forward["reference"], forward["estimate"].detach(), forward["length"])
            pending = PendingPesq(handle, forward["clean_magnitude"], forward["metric_magnitude"].detach())
        if self.pesq_lag == 0:
            return pending
        previous, self._lagged = self._lagged, pending
        return previous

    def generator_loss(
        self, batch: Batch, forward: Forward, adversarial: bool
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        weights, gain = self.loss_weights, forward["normalization"]
        estimate, reference, _ = cut_to_common_length(forward["estimate"], forward["reference"], forward["length"])
        magnitude = weights["magnitude"] * magnitude_loss(forward["magnitude"], forward["clean_magnitude"])
        if self.loss_recipe == "mpsenet":
            terms = {"loss_magnitude": magnitude, **self._phase_complex_consistency_terms(forward)}
        else:
            ri = ri_loss(forward["real"], forward["imag"], forward["clean_real"], forward["clean_imag"])
            terms = {"loss_ri": weights["ri"] * ri, "loss_magnitude": magnitude}
        # At unit input RMS, like the spectral terms (CMGAN before its May 2023 refactor, MP-SENet).
        terms["loss_time"] = weights["time"] * time_loss(estimate * gain, reference * gain)
        if adversarial and weights["gan"]:
            prediction = self.discriminator(forward["clean_magnitude"], forward["metric_magnitude"])
            terms["loss_adv"] = weights["gan"] * metric_generator_loss(prediction)
        return terms, {}

    def _phase_complex_consistency_terms(self, forward: Forward) -> dict[str, Tensor]:
        """MP-SENet's weighted phase (IP + GD + IAF), complex and consistency terms."""
        weights = self.loss_weights
        phase = sum(phase_losses(forward["phase"], forward["clean_phase"]))
        spectrum = (forward["real"], forward["imag"])
        return {
            "loss_phase": weights["phase"] * phase,
            "loss_complex": weights["complex"] * complex_loss(*spectrum, forward["clean_real"], forward["clean_imag"]),
            "loss_consistency": weights["consistency"]
            * consistency_loss(*spectrum, forward["reanalysed_real"], forward["reanalysed_imag"]),
        }

    def gradient_probe(self, forward: Forward) -> tuple[Tensor, ...]:
        if self.loss_recipe == "mpsenet":  # every term (spectrum, audio) derives from these
            return (forward["magnitude"], forward["phase"])
        return (forward["real"], forward["imag"])  # every term (audio, magnitude) derives from these

    def _prediction_without_dropout(self, clean: Tensor, estimate: Tensor) -> Tensor:
        """The discriminator's prediction for `(clean, estimate)` in eval mode, without gradient: what
        MetricDiscriminatorMonitor correlates with the PESQ targets. The prediction the loss uses has its dropout
        active, which adds noise to any correlation; eval mode also leaves spectral norm's power iteration alone, so
        this call does not change training."""
        training = self.discriminator.training
        self.discriminator.eval()
        try:
            with torch.no_grad():
                return self.discriminator(clean, estimate).float()
        finally:
            self.discriminator.train(training)

    def discriminator_loss(self, batch: Batch, forward: Forward) -> tuple[Tensor, dict[str, Any]]:
        pending: PendingPesq | None = forward["pending_pesq"]
        if pending is None:  # pesq_lag=1 and no earlier batch: a zero-weighted term, counted as dropped
            pending = PendingPesq.unscored(forward["clean_magnitude"], forward["metric_magnitude"].detach())
        result = pending.result()  # as late as possible: after the generator's step
        scores = to_device_without_waiting(torch.from_numpy(result.scores), self.device)
        target = pesq_to_target(scores, clamp=self.clamp_pesq_targets)
        weight = pesq_weights(target, self.pesq_failure_policy)
        chance = metric_discriminator_loss_at_chance(target, weight)
        dropped = (weight.sum() == 0).long()  # no clip of this batch teaches the metric term
        clean, estimate = pending.clean_magnitude.to(self.device), pending.estimate_magnitude.to(self.device)
        discriminator = self.trained(self.discriminator)
        clean_prediction = discriminator(clean, clean).float()
        estimate_prediction = discriminator(clean, estimate).float()
        outputs = {
            "d_real": clean_prediction.mean(),
            "d_fake": estimate_prediction.mean(),
            "d_loss_chance": chance,
            "pesq_target": target,
            "metric_d_prediction": self._prediction_without_dropout(clean, estimate),
            "pesq_clips": len(result.failures),
            "pesq_failed_clips": result.failed_clips,
            "pesq_dropped_batch": dropped,
            "pesq_failures": result.failure_counts(),
        }
        if self.pesq_failure_policy == "drop_batch":
            outputs["skip_update"] = dropped.bool()  # CMGAN: no discriminator update when a clip has no PESQ
        return metric_discriminator_loss(clean_prediction, estimate_prediction, target, weight), outputs

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Prediction:
        """One file of ``data.predict_paths`` (``codecgan predict``) enhanced, for ``AudioPredictionWriter``
        (``codecgan.inference.predictions``)."""
        return enhancement_prediction(self.generator, batch, self.sample_rate)

    # ------------------------------------------------------------------------------ validation
    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        return self.score_utterances(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        return self.score_utterances(batch, "test")

    @property
    def test_scores(self) -> EnhancementScores:
        """Wide-band PESQ from this rank's pool, narrow-band from a second pool started on first use; the other
        measures in the test's measure thread, while the next batch is enhanced."""
        if self._pesq_nb_pool is None or self._pesq_nb_pool.closed:
            self._pesq_nb_pool = PesqPool(self.pesq_pool.processes, self.sample_rate, "nb", self.pesq_limits)
        return EnhancementScores(self.pesq_pool, self._pesq_nb_pool, self._measure_thread)

    def _stop_measure_thread(self) -> None:
        if self._measure_thread is not None:
            self._measure_thread.shutdown(wait=True)
            self._measure_thread = None

    def enhance_utterances(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Enhance each utterance on its own, at its full length, so padding in a batch never reaches the
        generator's normalisation, InstanceNorm or attention. Returns the estimates padded to the batch
        (``[B, 1, T]``), their lengths (``[B]``) and the metric discriminator's predictions (``[B]``)."""
        estimates, predictions = [], []
        for row, samples in enumerate(batch["length"].tolist()):
            utterance = {key: batch[key][row : row + 1, ..., :samples] for key in ("noisy", "clean")}
            forward = self.generator_forward({**utterance, "length": batch["length"][row : row + 1]})
            estimates.append(forward["estimate"].float())
            predictions.append(self.discriminator(forward["clean_magnitude"], forward["metric_magnitude"]).float())
        estimate, estimate_length = pad_to_batch(estimates, batch["clean"].shape[-1])
        return estimate, estimate_length, torch.cat(predictions)

    def score_utterances(self, batch: Batch, split: str) -> dict[str, Any]:
        """Enhance each utterance whole (``enhance_utterances``) and score it, so every metric is the per-utterance
        value papers report. Logs ``<split>/pesq`` (wide-band), ``<split>/stoi`` and their failed-clip counts,
        reduced across ranks (``test``: at the end of the test).

        ``val``: the outputs callbacks read (docs/interfaces.md). ``test``: every measure of ``EnhancementScores``,
        for the enhanced output and for the noisy input as the baseline (``outputs["scores"]``, one row each, for
        ``EvaluationReport``), as ``PendingRows``: PESQ scores in the worker processes while the next batch is
        enhanced, and ``EvaluationReport`` and ``on_test_epoch_end`` wait for it."""
        if "clean" not in batch:
            return self.score_without_references(batch)
        estimate, estimate_length, predictions = self.enhance_utterances(batch)
        # Scored on the samples both have: SignalStats counts the clips whose lengths differ (LENGTH_MISMATCH).
        scored, clean, length = cut_to_common_length(
            estimate, batch["clean"], torch.minimum(batch["length"], estimate_length)
        )
        if split == "test":
            noisy = batch["noisy"][..., : scored.shape[-1]]
            pending = self.test_scores.submit(clean, {"enhanced": scored, "noisy input": noisy}, length, batch["index"])
            if self.dnsmos is not None:
                dnsmos = self.dnsmos.submit({"enhanced": scored, "noisy input": noisy}, length, batch["index"])
                pending = DnsmosRows(pending, dnsmos)
            self._pending_test_rows.append(pending)
            return {
                "scores": pending,
                "index": batch["index"],
                "length": batch["length"],
                "estimate_length": estimate_length,
            }
        handle = self.score_estimates(clean, scored, length)  # scores while STOI runs here
        stoi = stoi_scores(clean, scored, length, self.sample_rate)
        pesq = torch.from_numpy(handle.result().scores).float()
        outputs = {
            "estimate": estimate.detach(),
            "estimate_length": estimate_length,
            "reference": batch["clean"],
            "input": batch["noisy"],
            "length": batch["length"],
            "index": batch["index"],
            "metric_d_prediction": predictions.detach(),
            "pesq": pesq.to(self.device),
        }
        self.log_means(split, pesq, stoi)
        return outputs

    def score_without_references(self, batch: Batch) -> dict[str, Any]:
        """``score_utterances`` of a test batch of noisy recordings without clean references (``test_dir`` without
        ``clean/``): each utterance enhanced whole, and DNSMOS of the output and of the noisy input, in the
        background (``DnsmosRows``)."""
        if self.dnsmos is None:
            raise ConfigError(
                "The test batches have no clean references, so only DNSMOS can score them: set "
                "model.init_args.test_dnsmos: true (pip install 'codecgan[dnsmos]')."
            )
        generator = self.trained(self.generator)
        estimates = [
            generator(batch["noisy"][row : row + 1, ..., :samples]).audio.float()
            for row, samples in enumerate(batch["length"].tolist())
        ]
        estimate, estimate_length = pad_to_batch(estimates, batch["noisy"].shape[-1])
        samples = min(estimate.shape[-1], batch["noisy"].shape[-1])
        systems = {"enhanced": estimate[..., :samples], "noisy input": batch["noisy"][..., :samples]}
        length = torch.minimum(batch["length"], estimate_length)
        pending = DnsmosRows(None, self.dnsmos.submit(systems, length, batch["index"]))
        self._pending_test_rows.append(pending)
        return {
            "scores": pending,
            "index": batch["index"],
            "length": batch["length"],
            "estimate_length": estimate_length,
        }

    @property
    def test_measures_not_scored(self) -> dict[str, str]:
        """The measures ``codecgan test`` could not score and why, for ``EvaluationReport``."""
        return {} if self.test_references else dict.fromkeys(ENHANCEMENT_MEASURES, "no reference")

    def log_means(self, split: str, pesq: Tensor, stoi: Tensor) -> None:
        """Add the utterances' PESQ wb and STOI (``[B]``, NaN where failed) to ``<split>/pesq`` and ``<split>/stoi``
        and their failed-clip counts, reduced across ranks."""
        for name, scores in (("pesq", pesq), ("stoi", stoi)):
            mean, failed = getattr(self, f"{split}_{name}"), getattr(self, f"{split}_{name}_failed")
            mean.update(scores)
            failed.update(torch.isnan(scores).sum())
            self.log_dict({f"{split}/{name}": mean, f"{split}/{name}_failed_clips": failed})

    def on_test_epoch_start(self) -> None:
        """The generator EMA, when on, is what the test scores. STOI, the composite measures and SI-SDR are
        computed in a thread of their own while the next batch is enhanced (``EnhancementScores``), PESQ in the
        pools' worker processes. Freed memory stays in the process until the test ends
        (``codecgan.evaluation.freed_memory``): each whole utterance's attention reuses the last one's."""
        super().on_test_epoch_start()
        self._pending_test_rows = []
        self._stop_measure_thread()
        self._measure_thread = ThreadPoolExecutor(1, thread_name_prefix="codecgan-test-measures")
        keep_freed_memory()

    def on_test_epoch_end(self) -> None:
        """Log ``test/pesq`` and ``test/stoi`` of the enhanced utterances, once every batch's PESQ has arrived."""
        enhanced = [
            row for pending in self._pending_test_rows for row in pending.result() if row["system"] == "enhanced"
        ]
        self._pending_test_rows = []
        if enhanced and "pesq_wb" in enhanced[0]:
            pesq, stoi = (
                torch.tensor([row[key] for row in enhanced], dtype=torch.float32) for key in ("pesq_wb", "stoi")
            )
            self.log_means("test", pesq, stoi)
        if enhanced and self.dnsmos is not None:  # test/dnsmos_sig, ... of the enhanced output, reduced across ranks
            for measure, mean in self.test_dnsmos_means.items():
                mean.update(torch.tensor([row[measure] for row in enhanced], dtype=torch.float32))
                self.log(f"test/{measure}", mean)
        super().on_test_epoch_end()
        self._stop_measure_thread()
        release_freed_memory()

    # ------------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store every rank's PESQ-lag buffer (tensors ``[world, ...]``) so a resumed run's first
        discriminator step learns the same targets as the uninterrupted run. A collective under DDP:
        Lightning saves checkpoints on every rank.

        Not while the trainer handles an exception under DDP (``CrashCheckpoint``): the other ranks may
        be waiting in another collective, and the gather would hang. That checkpoint holds no buffer,
        so the first discriminator step after resuming from it gets no metric target (a dropped batch)."""
        super().on_save_checkpoint(checkpoint)
        distributed = self._trainer is not None and self._trainer.world_size > 1
        if distributed and self._trainer.interrupted:
            return
        if self.pesq_lag and self._lagged is not None:
            state = self._lagged.state_dict()
            gather = self.all_gather if distributed else (lambda tensor: tensor.unsqueeze(0))
            checkpoint[LAG_STATE_KEY] = {key: gather(value).cpu() for key, value in state.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(LAG_STATE_KEY)
        self._lagged = None
        if state is None or not self.pesq_lag:
            return
        world, rank = (self._trainer.world_size, self._trainer.global_rank) if self._trainer is not None else (1, 0)
        saved_world = state["scores"].shape[0]
        if saved_world != world:
            rank_zero_warn(
                f"The checkpoint's PESQ-lag buffer holds {saved_world} ranks' batches but this run has {world} "
                "ranks; the first discriminator step after resuming gets no metric target."
            )
            return
        self._lagged = PendingPesq.from_state_dict({key: value[rank] for key, value in state.items()}, self.device)


class _ClosePesqPoolOnException(Callback):
    """Stops the PESQ workers (and the test's measure thread, and gives freed memory back) when fit, validate or
    test fails or is interrupted (Ctrl-C): Lightning then skips the LightningModule's ``teardown``."""

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if isinstance(pl_module, MetricGANEnhancer):
            pl_module.close_pesq_pool()
            if trainer.testing:
                pl_module.teardown("test")
