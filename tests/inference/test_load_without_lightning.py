"""``codecgan.load`` and the inference commands work where Lightning cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch

from codecgan.inference.checkpoint_loading import load
from tests.conftest import ROOT

# Runs in a fresh interpreter: any import of lightning or pytorch_lightning raises ImportError.
SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoLightning(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("lightning", "pytorch_lightning"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, NoLightning())
    import torch
    import codecgan
    from codecgan.cli import main

    codec_ckpt, enhancer_ckpt, wav, out, results = sys.argv[1:]
    codec, enhancer = codecgan.load(codec_ckpt), codecgan.load(enhancer_ckpt)
    audio = 0.1 * torch.randn(2, 1, 1601, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = codec.encode(audio)
        torch.save({"codes": codes, "decoded": codec.decode(codes, 1601), "enhanced": enhancer(audio).audio}, results)
    try:
        main(["enhance", "--ckpt", enhancer_ckpt, wav, "--out", out])
    except SystemExit as exit:
        status = exit.code
    print(json.dumps({
        "status": status,
        "training": [codec.training, enhancer.training],
        "codec": [codec.sample_rate, codec.hop_length, codec.n_codebooks, codec.codebook_size],
        "enhancer": [enhancer.sample_rate, enhancer.n_fft, enhancer.hop_length],
        "lightning_modules": sorted(
            name for name in sys.modules if name.split(".")[0] in ("lightning", "pytorch_lightning")
        ),
    }))
    """
)


def test_load_and_enhance_run_with_lightning_blocked(codec_run, enhancer_run, recordings, tmp_path):
    source, _ = recordings
    results = tmp_path / "results.pt"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(codec_run.checkpoint),
            str(enhancer_run.checkpoint),
            str(source / "mono_16k.wav"),
            str(tmp_path / "out"),
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["status"] == 0 and (tmp_path / "out" / "mono_16k.wav").is_file()
    assert report["training"] == [False, False] and report["lightning_modules"] == []
    assert report["codec"] == [16000, 40, 4, 256] and report["enhancer"] == [16000, 400, 100]
    # The same generators as loaded here, with Lightning importable.
    codec, enhancer = load(codec_run.checkpoint), load(enhancer_run.checkpoint)
    produced = torch.load(results, weights_only=True)
    audio = 0.1 * torch.randn(2, 1, 1601, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(produced["codes"], codec.encode(audio))
        torch.testing.assert_close(produced["decoded"], codec(audio).audio, rtol=0, atol=1e-5)
        torch.testing.assert_close(produced["enhanced"], enhancer(audio).audio)
