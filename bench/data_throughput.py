"""Data throughput of folder training data: start-up time per file and time per training item.

    .venv/bin/python -m bench.data_throughput                      # 24 files of 2 minutes, 44.1 kHz 16-bit stereo
    .venv/bin/python -m bench.data_throughput --files 4 --minutes 5 --no-enhancement
    PYTHONPATH=/tmp/data_base .venv/bin/python bench/data_throughput.py   # another checkout's code: run as a file,
                                                    # as -m would put this checkout's root first on the path

Writes the files into a temporary folder (synthesized: tones and noise under a syllable-rate envelope,
with pauses), then for each family:

* start-up: building the datamodule and running ``setup`` (the folder scan and the datasets), divided
  by the number of files;
* per item: training batches through ``train_dataloader()`` with ``num_workers=0`` and one torch thread
  (as in a DataLoader worker), after one warm-up batch, divided by the items they hold.

The codec family uses ``codec_dac.yaml``'s data (44.1 kHz, 0.38 s crops, batch 12), once with the data
module's defaults and, where the code has them, once with DAC's recipe as ``codec_dac.yaml`` sets it
(loudness normalisation, salient excerpts, phase shift); the enhancement family
``enhance_cmgan.yaml``'s (16 kHz, 2 s crops, batch 4) on twin ``noisy/`` and ``clean/`` trees of 16 kHz mono
files. Targets (issue 13): at most 20 ms per file at start-up and 10 ms per training item. Where the data module
mixes noise on the fly, the enhancement family is measured once more mixing 1 s excerpts of a clean folder with
excerpts of a noise folder (16 kHz mono recordings, batch 4, once dry and once with every item reverberated):
target (issue 25) at most 3.5 ms per training item.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

STARTUP_TARGET_MS = 20.0
ITEM_TARGET_MS = 10.0
MIXING_ITEM_TARGET_MS = 3.5


def synthesized_recording(seconds: float, sample_rate: int, channels: int, seed: int) -> np.ndarray:
    """``[frames, channels]`` float32: harmonic tones and noise under a 4 Hz envelope, with 0.3 s pauses every 2 s."""
    rng = np.random.default_rng(seed)
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    pitch = 110 + 40 * rng.random()
    tone = sum(np.sin(2 * np.pi * pitch * harmonic * times) / harmonic for harmonic in (1, 2, 3, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * times)
    envelope[(times % 2.0) > 1.7] = 0.0
    mono = 0.2 * envelope * tone + 0.01 * rng.standard_normal(times.size)
    stereo = np.stack([mono * (1.0 - 0.1 * channel) for channel in range(channels)], axis=1)
    return stereo.astype(np.float32)


def write_recordings(root: Path, count: int, seconds: float, sample_rate: int, channels: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = root / f"recording_{index:03d}.wav"
        samples = synthesized_recording(seconds, sample_rate, channels, seed=index)
        soundfile.write(path, samples, sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths


def measure(datamodule_factory, num_files: int, batches: int) -> tuple[float, float, int]:
    """(ms per file to build and set up the datamodule, ms per training item, items timed)."""
    started = time.perf_counter()
    datamodule = datamodule_factory()
    datamodule.setup("fit")
    startup_ms = 1000 * (time.perf_counter() - started) / num_files

    loader = datamodule.train_dataloader()
    available = len(loader)
    iterator = iter(loader)
    next(iterator)  # warm-up: caches, first allocations
    timed = min(batches, available - 1)
    if timed < 1:
        raise SystemExit(f"The training loader has {available} batch(es); at least 2 are needed to time one.")
    items = 0
    started = time.perf_counter()
    for _ in range(timed):
        items += len(next(iterator)["index"])
    item_ms = 1000 * (time.perf_counter() - started) / items
    return startup_ms, item_ms, items


def verdict(value_ms: float, target_ms: float) -> str:
    return "meets" if value_ms <= target_ms else "misses"


def report(
    family: str, num_files: int, startup_ms: float, item_ms: float, items: int, item_target_ms: float = ITEM_TARGET_MS
) -> None:
    print(
        f"{family}: start-up {startup_ms:.1f} ms per file ({num_files} files; target <= {STARTUP_TARGET_MS:.0f} ms: "
        f"{verdict(startup_ms, STARTUP_TARGET_MS)}), {item_ms:.2f} ms per training item ({items} items timed; "
        f"target <= {item_target_ms:g} ms: {verdict(item_ms, item_target_ms)})"
    )


def write_room_responses(root: Path, count: int, sample_rate: int) -> None:
    """``count`` 0.5 s room impulse responses: a direct path, then exponentially decaying noise (RT60 about 0.4 s)."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng(index)
        frames = sample_rate // 2
        response = 0.3 * rng.standard_normal(frames) * np.exp(-np.arange(frames) / (0.06 * sample_rate))
        response[: sample_rate // 200] = 0.0
        response[0] = 1.0
        soundfile.write(root / f"room_{index:03d}.wav", response.astype(np.float32), sample_rate, subtype="FLOAT")


def measure_mixing(root: Path, files: int, seconds: float, batches: int) -> None:
    """The enhancement family mixing a clean folder with a noise folder: dry, then every item reverberated."""
    from codecgan.data import EnhancementDataModule

    for split, count in (("train", files), ("val", 1), ("test", 1)):
        write_recordings(root / "clean" / split, count, seconds, 16000, channels=1)
        write_recordings(root / "noise" / split, count, seconds, 16000, channels=1)
        write_room_responses(root / "rir" / split, 8, 16000)
    for probability, name in ((0.0, "dry"), (1.0, "every item reverberated")):
        mixing = lambda: EnhancementDataModule(  # noqa: E731
            sample_rate=16000,
            clean_dir=str(root / "clean"),
            noise_dirs=[str(root / "noise")],
            rir_dir=str(root / "rir"),
            reverb_probability=probability,
            snr_db_range=(-5.0, 20.0),
            crop_seconds=1.0,
            batch_size=4,
            num_workers=0,
        )
        report(
            f"enhancement mixed on the fly ({name}; 16 kHz mono clean and noise files, 1 s crops, batch 4)",
            2 * files + 2 * 2 + 8 * 3,
            *measure(mixing, 2 * files + 2 * 2 + 8 * 3, batches),
            item_target_ms=MIXING_ITEM_TARGET_MS,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24, help="recordings per family (default 24)")
    parser.add_argument("--minutes", type=float, default=2.0, help="length of each recording (default 2)")
    parser.add_argument("--batches", type=int, default=20, help="batches timed after the warm-up (default 20)")
    parser.add_argument("--codec-file-rate", type=int, default=44100, help="sample rate of the codec files (Hz)")
    parser.add_argument("--no-enhancement", action="store_true", help="measure the codec family only")
    parser.add_argument("--mixing-only", action="store_true", help="measure the enhancement family's mixing only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import codecgan
    from codecgan.data import CodecDataModule, EnhancementDataModule

    seconds = 60 * args.minutes
    code = Path(codecgan.__file__).parent
    print(f"{args.files} files of {args.minutes:g} min per family, code from {code}")
    with tempfile.TemporaryDirectory(prefix="codecgan_data_bench_") as directory:
        root = Path(directory)
        if args.mixing_only:
            measure_mixing(root / "mixing", args.files, seconds, args.batches)
            return
        write_recordings(root / "codec", args.files, seconds, args.codec_file_rate, channels=2)
        codec = lambda: CodecDataModule(  # noqa: E731
            sample_rate=44100, train_dir=str(root / "codec"), crop_seconds=0.38, batch_size=12, num_workers=0
        )
        report(
            f"codec ({args.codec_file_rate} Hz 16-bit stereo files, 44.1 kHz, 0.38 s crops, batch 12)",
            args.files,
            *measure(codec, args.files, args.batches),
        )
        if "loudness_db" in inspect.signature(CodecDataModule.__init__).parameters:
            dac_recipe = lambda: CodecDataModule(  # noqa: E731
                sample_rate=44100,
                train_dir=str(root / "codec"),
                crop_seconds=0.38,
                batch_size=12,
                num_workers=0,
                loudness_db=-16.0,
                salient_cutoff_db=-40.0,
                phase_shift=True,
            )
            report(
                "codec with codec_dac.yaml's recipe (loudness -16 LUFS, salient -40 LUFS, phase shift)",
                args.files,
                *measure(dac_recipe, args.files, args.batches),
            )
        if args.no_enhancement:
            return
        for tree in ("noisy", "clean"):
            write_recordings(root / "enhancement" / tree, args.files, seconds, 16000, channels=1)
        enhancement = lambda: EnhancementDataModule(  # noqa: E731
            sample_rate=16000, train_dir=str(root / "enhancement"), crop_seconds=2.0, batch_size=4, num_workers=0
        )
        report(
            "enhancement (16 kHz 16-bit mono noisy/clean pairs, 2 s crops, batch 4)",
            2 * args.files,
            *measure(enhancement, 2 * args.files, args.batches),
        )
        if "clean_dir" in inspect.signature(EnhancementDataModule.__init__).parameters:
            measure_mixing(root / "mixing", args.files, seconds, args.batches)


if __name__ == "__main__":
    main()
