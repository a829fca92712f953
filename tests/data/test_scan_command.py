"""`codecgan scan DIR`: decodes every file, lists the broken ones, exits 2 if any; starts without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from codecgan.cli import main
from tests.conftest import ROOT
from tests.data.wav_files import noise, write_audio


def run_scan(*args: str) -> tuple[int, str]:
    try:
        main(["scan", *args])
    except SystemExit as exit_info:
        return exit_info.code, ""
    raise AssertionError("codecgan scan must exit with a status")


def test_scan_lists_every_bad_file_and_exits_2(tmp_path: Path, capsys) -> None:
    write_audio(tmp_path / "good.wav", noise(0.5, 8000), 8000)
    corrupt = noise(0.5, 8000)
    corrupt[3000] = np.inf  # a good header over bad samples: only a full decode finds it
    write_audio(tmp_path / "deep" / "inf.wav", corrupt, 8000, subtype="FLOAT")
    (tmp_path / "empty.flac").write_bytes(b"")
    status, _ = run_scan(str(tmp_path))
    out = capsys.readouterr().out
    assert status == 2
    assert f"{tmp_path / 'deep' / 'inf.wav'}: contains 1 non-finite samples" in out
    assert f"{tmp_path / 'empty.flac'}: empty file (0 bytes)" in out
    assert "good.wav" not in out and "Decoded 3 audio file(s)" in out and "2 bad" in out


def test_scan_of_good_folders_exits_0_and_a_missing_folder_exits_2(tmp_path: Path, capsys) -> None:
    write_audio(tmp_path / "a" / "one.wav", noise(0.2, 8000), 8000)
    write_audio(tmp_path / "b" / "two.wav", noise(0.2, 8000), 8000)
    assert run_scan(str(tmp_path / "a"), str(tmp_path / "b"))[0] == 0
    assert "Decoded 2 audio file(s)" in capsys.readouterr().out
    assert run_scan(str(tmp_path / "nowhere"))[0] == 2
    assert "nowhere" in capsys.readouterr().err


def test_scan_starts_without_importing_torch(tmp_path: Path) -> None:
    write_audio(tmp_path / "one.wav", noise(0.2, 8000), 8000)
    script = (
        "import sys\nfrom codecgan.cli import main\n"
        f"try:\n    main(['scan', {str(tmp_path)!r}])\nexcept SystemExit as exit_info:\n    status = exit_info.code\n"
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'scan imported torch'\n"
        "raise SystemExit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
