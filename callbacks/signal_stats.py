"""SignalStats: waveform-level quality and sanity of the validation estimates."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio, signal_noise_ratio

from callbacks.base import DiagnosticCallback, require
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import outside_sanity_check
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import amplitude_unstable, length_mismatch, negative_snr

SUMS = (
    "clips",
    "scored",
    "snr_db",
    "si_sdr",
    "estimate_energy",
    "reference_energy",
    "peak_ratio",
    "dc_offset",
    "clipped",
    "samples",
    "mismatched",
    "silent",
)
# References quieter than -80 dBFS RMS carry no measurable signal: counted as silent, not scored.
SILENT_RMS = 1e-4
# Caps the dB of a perfect reconstruction so one identical clip cannot make the mean infinite.
MAX_DB = 100.0
EPS = 1e-12
MEAN_TAGS = {
    tags.VAL_SNR: "snr_db",
    tags.VAL_SI_SDR: "si_sdr",
    tags.VAL_PEAK_RATIO: "peak_ratio",
    tags.VAL_DC_OFFSET: "dc_offset",
}


def clip_statistics(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    length: torch.Tensor,
    clip_level: float,
    estimate_length: torch.Tensor | None = None,
) -> dict[str, torch.Tensor | float]:
    """Per-batch sums of per-clip statistics, over the samples estimate and reference both have.

    `estimate`, `reference`: `[B, 1, T]` (T may differ); `length`: `[B]` samples; `estimate_length`: `[B]` samples of
    each estimate when they differ within a batch (an utterance-by-utterance step pads them)."""
    batch, t_est, t_ref = estimate.shape[0], estimate.shape[-1], reference.shape[-1]
    t = min(t_est, t_ref)
    est, ref = estimate.detach()[:, 0, :t].double(), reference.detach()[:, 0, :t].to(estimate.device).double()
    length = length.to(estimate.device)
    if estimate_length is not None:
        estimate_length = estimate_length.to(estimate.device)
        mismatched = estimate_length != length
        length = torch.minimum(length, estimate_length)
    else:
        mismatched = torch.ones(batch, dtype=torch.bool, device=est.device) if t_est != t_ref else length > t_est
    valid = torch.arange(t, device=est.device)[None, :] < length[:, None]
    est, ref = est * valid, ref * valid
    samples = valid.sum(-1).clamp(min=1)
    ref_energy, est_energy = (ref**2).sum(-1), (est**2).sum(-1)
    silent = (ref_energy / samples).sqrt() < SILENT_RMS
    scored = ~silent
    # torchmetrics' definitions (neither removes the mean); the zeros past each clip's length add nothing to the sums.
    snr = signal_noise_ratio(est, ref)
    si_sdr = scale_invariant_signal_distortion_ratio(est, ref)
    peak = est.abs().amax(-1) / ref.abs().amax(-1).clamp(min=EPS)
    dc_offset = (est.sum(-1) / samples).abs() / (ref_energy / samples).sqrt().clamp(min=EPS)

    def scored_sum(values: torch.Tensor) -> torch.Tensor:
        return torch.where(scored, values.clamp(-MAX_DB, MAX_DB), 0.0).sum()

    return {
        "clips": float(batch),
        "scored": scored.sum(),
        "snr_db": scored_sum(snr),
        "si_sdr": scored_sum(si_sdr),
        "estimate_energy": torch.where(scored, est_energy, 0.0).sum(),
        "reference_energy": torch.where(scored, ref_energy, 0.0).sum(),
        "peak_ratio": torch.where(scored, peak, 0.0).sum(),
        "dc_offset": torch.where(scored, dc_offset, 0.0).sum(),
        "clipped": ((est.abs() >= clip_level) & valid).sum(),
        "samples": valid.sum(),
        "mismatched": mismatched.sum(),
        "silent": silent.sum(),
    }


class SignalStats(DiagnosticCallback):
    """Measures, on validation, per clip over its true length: SNR (dB), SI-SDR (dB) (torchmetrics' definitions), peak
    ratio, DC offset (|mean of estimate| / RMS of reference), the fraction of clipped
    samples, and the number of clips whose estimate length differs from the reference (or falls short of the true
    length); and over all scored clips the amplitude ratio, sqrt(summed energy of the estimates / summed energy of
    the references): a ratio of sums, so one near-silent reference cannot move it as it would move a mean of
    per-clip ratios.

    Logs `val/snr_db`, `val/si_sdr`, `val/amplitude_ratio`, `val/peak_ratio`, `val/dc_offset`,
    `val/clipped_fraction` (means over scored clips), `diag/length_mismatch` and `diag/silent_reference_clips`
    (counts) once per validation round. Why: a GAN can lower its losses while the waveform drifts in level or sign;
    these catch NEGATIVE_SNR, AMPLITUDE_UNSTABLE and LENGTH_MISMATCH. The DC offset names one cause of the first two:
    DAC's discriminators subtract each clip's mean and its mel filters give 0 Hz no weight, so nothing in its losses
    trains DC, and a codec can drift into it (a tanh output stuck near ±1). Silent references (below -80 dBFS) are
    counted, not scored. Under DDP the per-clip sums and counts are summed over ranks before dividing. The level
    rule also reads the module's `val/loss_mel` (a codec's) or `val/mel_distance` (a vocoder's) where one is logged: a
    generator quieter than its reference while that loss still falls is warming up (info), not failing. A vocoder's
    SNR is no measure of it (its mel input holds no phase), so NEGATIVE_SNR stays quiet where `val/mel_distance` is.
    """

    codes = ("NEGATIVE_SNR", "AMPLITUDE_UNSTABLE", "LENGTH_MISMATCH")
    sync_moments = {"on_validation_epoch_end": outside_sanity_check}

    def __init__(self, clip_level: float = 0.999) -> None:
        super().__init__()
        require(0 < clip_level <= 1, f"SignalStats clip_level must be in (0, 1], got {clip_level!r}.")
        self.clip_level = clip_level
        self._sums = RunningSums(SUMS)
        self._rules_due = False

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not isinstance(outputs, Mapping) or "estimate" not in outputs:
            return
        statistics = clip_statistics(
            outputs["estimate"],
            outputs["reference"],
            outputs["length"],
            self.clip_level,
            outputs.get("estimate_length"),
        )
        for name, value in statistics.items():
            self._sums.add(name, value)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            self._sums.reset()
            return
        sums = self._sums.flush(trainer)
        if sums["clips"] == 0:
            return
        values = {
            tags.VAL_CLIPS: sums["clips"],  # every validation item exactly once, summed over ranks
            tags.LENGTH_MISMATCH: sums["mismatched"],
            tags.SILENT_REFERENCES: sums["silent"],
        }
        if sums["scored"] > 0:
            for tag, name in MEAN_TAGS.items():
                values[tag] = sums[name] / sums["scored"]
            values[tags.VAL_AMPLITUDE_RATIO] = (sums["estimate_energy"] / max(sums["reference_energy"], EPS)) ** 0.5
        values[tags.VAL_CLIPPED_FRACTION] = sums["clipped"] / max(sums["samples"], 1.0)
        self._record(trainer, pl_module, values, on_epoch=True)
        self.alarms.log_active(pl_module, on_epoch=True)
        self._rules_due = True

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run the rules once the module's own epoch metrics are computed: the level and SNR rules read the module's
        validation mel loss (`val/loss_mel` or `val/mel_distance`, synchronised across ranks by its metric), which
        Lightning computes after the epoch-end hooks."""
        if not self._rules_due:
            return
        self._rules_due = False
        for tag in tags.VAL_MEL_MEASURES:
            mel = trainer.callback_metrics.get(tag)
            if mel is not None:
                self._record(trainer, pl_module, {tag: float(mel)}, log=False)
        self._raise(
            trainer,
            {
                "NEGATIVE_SNR": negative_snr(self.history),
                "AMPLITUDE_UNSTABLE": amplitude_unstable(self.history),
                "LENGTH_MISMATCH": length_mismatch(self.history),
            },
        )

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._sums]

    def _extra_state(self) -> dict[str, Any]:
        return {"sums": self._sums.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._sums.load_state_dict(state["sums"])
