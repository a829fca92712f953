"""Bad input at the edges of ``codecgan enhance|encode|decode|test|predict``: an empty folder, a folder that cannot
be listed, a damaged or foreign codes file, a checkpoint of the other family or cut short, an output folder that
cannot be written. Each is exit status 2 and one line naming the file and the fix, never a traceback; and an output
whose write fails midway leaves neither a file under its final name nor a temporary file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import codecgan.data.file_tree
from codecgan.cli import main
from codecgan.inference.codes_file import CodesFile
from tests.conftest import EXPERIMENTS

FIX = {
    "empty folder": "pass a folder that does",
    "folder without permission": "Give this user read and search access",
    "checkpoint of the other family": "use a checkpoint of the",
    "truncated checkpoint": "Pass a whole checkpoint",
    "output folder without permission": "pass a folder you may write to",
}


def run(args: list[str]) -> int:
    """``codecgan ARGS``' exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def truncated_copy(checkpoint: Path, folder: Path) -> Path:
    """``checkpoint`` cut at half its bytes, as a full disk or a copy killed midway leaves it."""
    folder.mkdir(parents=True)
    data = checkpoint.read_bytes()
    cut = folder / "last.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Listing ``folder`` raises ``PermissionError``, as for a folder without read permission (the tests run as
    root in CI, who may list any folder, so the permission is simulated where the listing happens)."""
    scandir = os.scandir

    def refusing_scandir(path):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return scandir(path)

    monkeypatch.setattr(codecgan.data.file_tree.os, "scandir", refusing_scandir)


def deny_writing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``os.access`` says ``folder`` may not be written (simulated: root may write anywhere)."""
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != folder and access(path, mode))


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    soundfile.write(folder / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(4000).astype(np.float32), 16000)
    return folder


@pytest.fixture(scope="module")
def codes_folder(codec_run, audio_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("codes")
    assert run(["encode", "--ckpt", str(codec_run.checkpoint), str(audio_folder), "--out", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("command", ["enhance", "encode", "decode"])
@pytest.mark.parametrize("case", list(FIX))
def test_a_bad_start_is_one_line_naming_the_file_and_the_fix_and_writes_nothing(
    command, case, codec_run, enhancer_run, audio_folder, codes_folder, tmp_path, monkeypatch, capsys
):
    own, other = (enhancer_run, codec_run) if command == "enhance" else (codec_run, enhancer_run)
    checkpoint, inputs, out = own.checkpoint, codes_folder if command == "decode" else audio_folder, tmp_path / "out"
    if case == "empty folder":
        inputs = tmp_path / "empty"
        inputs.mkdir()
        named = inputs
    elif case == "folder without permission":
        deny_listing(monkeypatch, inputs)
        named = inputs
    elif case == "checkpoint of the other family":
        checkpoint = named = other.checkpoint
    elif case == "truncated checkpoint":
        checkpoint = named = truncated_copy(own.checkpoint, tmp_path / "cut")
    else:
        deny_writing(monkeypatch, out)
        named = out

    status = run([command, "--ckpt", str(checkpoint), str(inputs), "--out", str(out)])

    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith(f"codecgan {command}: error: ") and str(named) in line and FIX[case] in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "case, fix",
    [
        ("corrupt codes file", "encode its audio again"),
        ("truncated codes file", "encode its audio again"),
        ("codes file from another model", "decode it with the checkpoint of the codec that wrote it"),
    ],
)
def test_decode_names_a_bad_codes_file_in_one_line_and_writes_no_audio_for_it(
    case, fix, codec_run, codes_folder, tmp_path, capsys
):
    bad = tmp_path / "bad.pt"
    if case == "corrupt codes file":
        bad.write_bytes(b"\x80\x02not a torch file")
    elif case == "truncated codes file":
        data = (codes_folder / "a.pt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        saved = torch.load(codes_folder / "a.pt", weights_only=True)
        torch.save({**saved, "hop_length": 2 * saved["hop_length"]}, bad)
    out = tmp_path / "out"

    status = run(["decode", "--ckpt", str(codec_run.checkpoint), str(bad), "--out", str(out)])

    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    named = [line for line in captured.err.splitlines() if str(bad) in line]
    assert named and all(fix in line for line in named)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["test", "predict"])
@pytest.mark.parametrize(
    "case, fix",
    [
        ("empty folder", "pass a folder that does"),
        ("folder without permission", "Give this user read and search access"),
        ("checkpoint of the other family", "Pass the config of the run that wrote it"),
        ("truncated checkpoint", "Pass a whole checkpoint"),
    ],
)
def test_lightning_commands_refuse_bad_input_in_one_line(
    command, case, fix, codec_run, enhancer_run, audio_folder, tmp_path, monkeypatch, capsys
):
    checkpoint, folder = codec_run.checkpoint, audio_folder
    if case == "empty folder":
        folder = tmp_path / "empty"
        folder.mkdir()
        named = folder
    elif case == "folder without permission":
        deny_listing(monkeypatch, folder)
        named = folder
    elif case == "checkpoint of the other family":
        checkpoint = named = enhancer_run.checkpoint
    else:
        checkpoint = named = truncated_copy(codec_run.checkpoint, tmp_path / "cut")
    data = f"--data.init_args.test_dir={folder}" if command == "test" else f"--data.init_args.predict_paths=[{folder}]"
    arguments = [command, "--config", str(EXPERIMENTS / "codec_tiny.yaml"), data, "--ckpt_path", str(checkpoint)]
    trainer = [f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.logger=false"]

    status = run([*arguments, *trainer, "--trainer.enable_progress_bar=false", "--data.init_args.num_workers=0"])

    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    (line,) = [line for line in captured.err.splitlines() if line.startswith("codecgan: ")]
    assert str(named) in line and fix in line
    assert not (tmp_path / "run" / "predictions").exists()


def fail_after_some_bytes(path: str | os.PathLike) -> None:
    """Write the start of a file, then fail as a full disk does."""
    with open(path, "wb") as file:
        file.write(b"RIFF\x00\x10\x00\x00WAVE")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing_soundfile_write(path, *args, **kwargs) -> None:
    fail_after_some_bytes(path)


def failing_torch_save(saved, path, *args, **kwargs) -> None:
    fail_after_some_bytes(path)


def files_in(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("command", ["enhance", "encode", "decode"])
def test_an_output_whose_write_fails_midway_leaves_no_file_and_no_temporary(
    command, codec_run, enhancer_run, audio_folder, codes_folder, tmp_path, monkeypatch, capsys
):
    checkpoint = (enhancer_run if command == "enhance" else codec_run).checkpoint
    inputs = codes_folder if command == "decode" else audio_folder
    if command == "encode":
        monkeypatch.setattr(torch, "save", failing_torch_save)
    else:
        monkeypatch.setattr(soundfile, "write", failing_soundfile_write)
    out = tmp_path / "out"

    status = run([command, "--ckpt", str(checkpoint), str(inputs), "--out", str(out)])

    assert status == 2
    assert os.strerror(errno.ENOSPC) in capsys.readouterr().err
    assert files_in(out) == []


def test_a_prediction_whose_write_fails_midway_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    from codecgan.inference.prediction_writer import AudioPredictionWriter

    writer = AudioPredictionWriter(str(tmp_path / "predictions"))
    codes = CodesFile(torch.zeros(1, 2, 3, dtype=torch.long), 256, 40, 16000, 120, 16000, 120)
    prediction = {"name": "take", "audio": torch.zeros(1, 120), "sample_rate": 16000, "codes": codes}
    monkeypatch.setattr(soundfile, "write", failing_soundfile_write)
    with pytest.raises(OSError):
        writer.write_on_batch_end(None, None, prediction, None, None, 0, 0)
    monkeypatch.undo()
    monkeypatch.setattr(torch, "save", failing_torch_save)
    with pytest.raises(OSError):
        writer.write_on_batch_end(None, None, prediction, None, None, 0, 0)
    assert files_in(tmp_path / "predictions") == ["take.wav"]  # whole: written before the codes failed
    assert soundfile.info(str(tmp_path / "predictions" / "take.wav")).frames == 120


def test_an_interrupted_report_leaves_the_previous_metrics(tmp_path, monkeypatch):
    from codecgan.evaluation import report

    path = tmp_path / "metrics.csv"
    rows = [{"utterance": 0, "file": "a.wav", "system": "enhanced", "pesq_wb": 2.5}]
    report.write_csv(rows, path)
    before = path.read_bytes()

    class InterruptedWriter:
        """Writes part of a row, then is interrupted (Ctrl-C, SIGTERM turned into an exception)."""

        def __init__(self, file) -> None:
            self.file = file

        def writerow(self, row) -> None:
            self.file.write("0,a.wav,enh")
            raise KeyboardInterrupt

    monkeypatch.setattr(report.csv, "writer", InterruptedWriter)
    with pytest.raises(KeyboardInterrupt):
        report.write_csv([{**rows[0], "pesq_wb": 3.0}] * 3, path)
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["metrics.csv"]
