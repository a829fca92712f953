"""`make demo`: the tiny codec trains (its validation SNR, SI-SDR and mel distance end better than at its first
validation), and the demo ends with the diagnosis of its own run, which finds nothing above info."""

from __future__ import annotations

from pathlib import Path

import pytest

from codecgan import demo
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.report import diagnose_path, render_text
from codecgan.lightning_cli import build_cli


def test_the_demo_trains_the_tiny_codec_with_4_dimensional_codebooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = build_cli(demo.cli_arguments(), run=False)
    generator = cli.model.generator
    assert (generator.n_codebooks, generator.codebook_size, generator.hop_length) == (4, 256, 40)
    assert [quantizer.codebook.embedding_dim for quantizer in generator.quantizer.quantizers] == [4, 4, 4, 4]
    assert cli.trainer.max_steps == 400 and cli.trainer.default_root_dir == str(demo.RUN_DIR)


@pytest.mark.slow
def test_demo_improves_its_codec_and_reports_its_run_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo.main() == 0
    history = MetricHistory.from_tensorboard_run(str(demo.RUN_DIR))
    snr = demo.scalar_series(history, "val/snr_db")
    si_sdr = demo.scalar_series(history, "val/si_sdr")
    mel = demo.scalar_series(history, "val/loss_mel")
    assert snr[0][0] == 0 and len(snr) >= 3  # a validation before the first step, then during training
    # The untrained codec's SNR depends on its output level (-2.8 dB: a quiet output with a DC offset), so the SNR
    # need only rise; the scale-invariant SI-SDR shows the training. Measured: SNR -2.77 -> -0.20 dB, SI-SDR -41.9 ->
    # -13.6 dB, mel distance 5.33 -> 1.63.
    assert snr[-1][1] > snr[0][1] + 1.0
    assert snr[-1][1] > -1.0  # where the demo's SNR ends (-0.20 dB measured): near 0 dB, as the README says
    assert si_sdr[-1][1] > si_sdr[0][1] + 10.0
    assert mel[-1][1] < 0.7 * mel[0][1]
    findings, runs = diagnose_path(str(demo.RUN_DIR))
    assert [(f.code, f.severity) for f in findings if f.severity != "info"] == []
    printed = capsys.readouterr().out
    diagnosis = render_text(findings, str(demo.RUN_DIR), runs)
    assert printed.rstrip().endswith(diagnosis)  # the demo ends with what `codecgan diagnose runs/demo` prints
    assert printed.index("validation mel distance:") < printed.index(diagnosis.splitlines()[0])
