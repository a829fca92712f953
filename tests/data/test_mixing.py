"""Noise mixed on the fly: mixtures a pure function of (seed, epoch, index), their SNR and level as drawn, fixed
validation mixtures, reverberation with a dry target, the data-leak check over clean and noise folders, config
errors naming the key, and the tiny enhancer trained from a clean folder and a noise folder."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.data import EnhancementDataModule
from codecgan.data.leaks import find_data_leaks
from codecgan.data.mixing import PEAK_LIMIT, mix
from codecgan.data.noise import make_noise
from codecgan.data.synthetic_speech import synthesize_speech
from tests.data.wav_files import write_audio

RATE = 16000
SPLIT_FILES = {"train": (3, 2.0), "val": (2, 1.0), "test": (2, 1.0)}


def write_layout(root: Path, rirs: bool = False) -> dict[str, str]:
    """clean/, noise/ (and rir/) folders with train/ val/ test/ subfolders of synthetic speech, noise and
    exponentially decaying room responses; the data module's mixing arguments."""
    for split, (count, seconds) in SPLIT_FILES.items():
        for index in range(count):
            seed = 100 * list(SPLIT_FILES).index(split) + index
            speech = synthesize_speech(round(seconds * RATE), RATE, seed).numpy()
            write_audio(root / "clean" / split / f"speech{index}.wav", speech, RATE)
            kind = ("pink", "babble", "white")[index % 3]
            noise = make_noise(kind, round((seconds + 1.5) * RATE), RATE, seed).numpy()
            write_audio(root / "noise" / split / f"{kind}{index}.wav", noise, RATE)
            if rirs:
                generator = np.random.default_rng(seed)
                decay = np.exp(-np.arange(2000) / 300.0) * generator.standard_normal(2000) * 0.1
                decay[:400] = 0.0  # reflections from 25 ms on
                decay[40] = 0.8  # the direct path, after 2.5 ms
                write_audio(root / "rir" / split / f"room{index}.wav", decay.astype(np.float32), RATE, "FLOAT")
    arguments = {"clean_dir": str(root / "clean"), "noise_dirs": [str(root / "noise")]}
    return {**arguments, "rir_dir": str(root / "rir")} if rirs else arguments


def datamodule(root: Path, **kwargs) -> EnhancementDataModule:
    arguments = dict(sample_rate=RATE, crop_seconds=1.0, batch_size=2, snr_db_range=(-5.0, 20.0), val_crop="full")
    module = EnhancementDataModule(**{**arguments, **kwargs})
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict[str, str]:
    return write_layout(tmp_path_factory.mktemp("mixing"))


def power(signal: torch.Tensor) -> float:
    return float(signal.double().pow(2).mean())


def test_a_training_mixture_is_a_pure_function_of_seed_epoch_and_index(layout) -> None:
    train = datamodule(Path(), **layout).datasets["train"]
    again = datamodule(Path(), **layout).datasets["train"]  # another worker or rank builds its own copy
    assert len(train) == 6 and train.independent_draws
    first = train[(3, 1)]
    train[(0, 4)]  # whatever was asked before
    for other in (train[(3, 1)], again[(3, 1)]):
        assert torch.equal(other["noisy"], first["noisy"]) and torch.equal(other["clean"], first["clean"])
    next_epoch = train[(3, 2)]
    assert not torch.equal(next_epoch["noisy"], first["noisy"])
    assert train.draw(3, 1, RATE) != train.draw(3, 2, RATE)
    other_seed = datamodule(Path(), seed=1, **layout).datasets["train"]
    assert not torch.equal(other_seed[(3, 1)]["noisy"], first["noisy"])


def test_the_mixture_has_the_drawn_snr_and_a_level_in_range(layout) -> None:
    train = datamodule(Path(), **layout).datasets["train"]
    snrs, limited = [], 0
    for epoch in range(3):
        for index in range(len(train)):
            item = train[(index, epoch)]
            length = int(item["length"])
            clean, noisy = item["clean"][:, :length], item["noisy"][:, :length]
            drawn = train.draw(index, epoch, length)
            snr = 10 * math.log10(power(clean) / power(noisy - clean))
            assert abs(snr - drawn.snr_db) < 0.1, (index, epoch, snr, drawn)
            level = 10 * math.log10(power(noisy))
            peak = float(noisy.abs().max())
            assert level <= drawn.level_db + 0.01 and -35.0 - 0.01 <= drawn.level_db <= -15.0 + 0.01
            if peak >= PEAK_LIMIT - 1e-4:  # lowered so that no sample clips
                limited += 1
            else:
                assert level == pytest.approx(drawn.level_db, abs=0.01)
            snrs.append(drawn.snr_db)
    assert limited <= 2 and min(snrs) < 2.0 and max(snrs) > 13.0 and all(-5.0 <= snr <= 20.0 for snr in snrs)


def test_validation_and_test_mixtures_are_the_same_in_every_epoch(layout) -> None:
    module = datamodule(Path(), **layout)
    for split in ("val", "test"):
        dataset = module.datasets[split]
        assert len(dataset) == 2 and dataset[(0, 0)]["noisy"].shape == (1, RATE)  # full: each utterance whole
        for index in range(2):
            assert torch.equal(dataset[(index, 0)]["noisy"], dataset[(index, 7)]["noisy"])
    assert not torch.equal(module.datasets["val"][(0, 0)]["noisy"], module.datasets["test"][(0, 0)]["noisy"])


def test_the_training_loader_gives_the_same_batches_with_worker_processes(layout) -> None:
    module = datamodule(Path(), **layout)
    batches = list(module.train_dataloader())
    assert batches[0]["noisy"].shape == (2, 1, RATE) and batches[0]["index"].tolist() == [0, 1]
    assert torch.equal(batches[0]["noisy"][1], module.datasets["train"][(1, 0)]["noisy"])
    with_workers = datamodule(Path(), num_workers=2, **layout)
    for batch, other in zip(batches, with_workers.train_dataloader(), strict=True):
        assert torch.equal(batch["noisy"], other["noisy"]) and torch.equal(batch["clean"], other["clean"])


def test_noise_files_are_read_as_excerpts_of_the_item_length(layout, monkeypatch) -> None:
    from codecgan.data import audio_reading

    reads = []
    decode = audio_reading.decode_mono

    def recording(path, start=0, stop=None):
        reads.append((Path(path).parent.parent.name, start, stop))
        return decode(path, start, stop)

    train = datamodule(Path(), **layout).datasets["train"]
    monkeypatch.setattr(audio_reading, "decode_mono", recording)
    for index in range(len(train)):
        train[(index, 0)]
    noise_reads = [(start, stop) for folder, start, stop in reads if folder == "noise"]
    assert len(noise_reads) == len(train) and all(stop - start == RATE for start, stop in noise_reads)
    assert any(start > 0 for start, _ in noise_reads)  # noise files are 3.5 s: the window starts anywhere


def test_silent_speech_gives_noise_at_the_level_and_silent_noise_the_speech() -> None:
    speech = synthesize_speech(RATE, RATE, 3).unsqueeze(0)
    noise = make_noise("white", RATE, RATE, 4).unsqueeze(0)
    noisy, clean = mix(torch.zeros_like(speech), noise, 10.0, -30.0)
    assert clean.abs().max() == 0 and 10 * math.log10(power(noisy)) == pytest.approx(-30.0, abs=0.01)
    noisy, clean = mix(speech, torch.zeros_like(noise), 10.0, -30.0)
    assert torch.equal(noisy, clean) and 10 * math.log10(power(noisy)) == pytest.approx(-30.0, abs=0.01)


def test_reverberated_speech_keeps_a_dry_time_aligned_target(tmp_path: Path) -> None:
    module = datamodule(tmp_path, reverb_probability=1.0, **write_layout(tmp_path, rirs=True))
    train = module.datasets["train"]
    item = train[(2, 0)]
    dry = train.speech[(2, 0)]["audio"]
    gain = float(item["clean"].norm() / dry.norm())
    assert torch.allclose(item["clean"], gain * dry, atol=1e-6)  # the target is the dry speech
    assert train.draw(2, 0, RATE).rir_item is not None
    # The speech in the mixture is reverberant: without its noise, it is not the target.
    drawn = train.draw(2, 0, RATE)
    noise = train.noise.read(drawn.noise_item, drawn.noise_start, RATE)
    rir = train.rirs[drawn.rir_item]["audio"]
    noisy, clean = mix(dry, noise, drawn.snr_db, drawn.level_db, rir)
    assert torch.equal(noisy, item["noisy"])
    dry_mixture, _ = mix(dry, noise, drawn.snr_db, drawn.level_db)
    assert not torch.allclose(noisy, dry_mixture, atol=1e-3)
    # Aligned: the reverberant speech correlates with the target at lag 0, not 2.5 ms (the response's pre-delay) later.
    reverberant, target = mix(dry, torch.zeros_like(noise), 0.0, -25.0, rir)
    at_zero, at_delay = float((reverberant * target).sum()), float((reverberant[:, 40:] * target[:, :-40]).sum())
    assert at_zero > 0.5 * float(target.pow(2).sum()) and at_zero > 2 * abs(at_delay)


def test_a_noise_file_in_the_training_and_test_noise_folders_is_a_leak(tmp_path: Path) -> None:
    arguments = write_layout(tmp_path)
    shutil.copy(tmp_path / "noise" / "train" / "pink0.wav", tmp_path / "noise" / "test" / "fan.wav")
    shutil.copy(tmp_path / "clean" / "val" / "speech1.wav", tmp_path / "clean" / "test" / "speech9.wav")
    module = datamodule(tmp_path, **arguments)
    assert module.source_folders["test"] == [str(tmp_path / "clean" / "test"), str(tmp_path / "noise" / "test")]
    report = find_data_leaks(module.source_folders)
    assert report.files_checked == 7 * 2 + 2
    assert report.examples(5) == [
        "test file noise/test/fan.wav is training file noise/train/pink0.wav (same content)",
        "val file clean/val/speech1.wav is test file clean/test/speech9.wav (same content)",
    ]


def test_a_prepared_test_set_of_pairs_beside_mixed_training(tmp_path: Path) -> None:
    arguments = write_layout(tmp_path)
    shutil.rmtree(tmp_path / "clean" / "test")
    speech = synthesize_speech(RATE, RATE, 9).numpy()
    write_audio(tmp_path / "pairs" / "clean" / "a.wav", speech, RATE)
    write_audio(tmp_path / "pairs" / "noisy" / "a.wav", speech + 0.01, RATE)
    module = datamodule(tmp_path, test_dir=str(tmp_path / "pairs"), **arguments)
    item = module.datasets["test"][(0, 0)]
    assert torch.allclose(item["noisy"] - item["clean"], torch.full((1, RATE), 0.01), atol=1e-4)
    assert module.source_folders["test"] == [str(tmp_path / "pairs")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_dir": "pairs"}, "data.init_args.train_dir and data.init_args.clean_dir are both given"),
        ({"val_dir": "pairs"}, "data.init_args.val_dir and data.init_args.clean_dir"),
        ({"noise_dirs": []}, "data.init_args.clean_dir needs data.init_args.noise_dirs"),
        ({"noise_dirs": ["nowhere"]}, "data.init_args.noise_dirs: 'nowhere/train' is not a folder"),
        ({"snr_db_range": (20.0, -5.0)}, r"data.init_args.snr_db_range must be \[low, high\]"),
        ({"level_db_range": (-20.0, 5.0)}, "data.init_args.level_db_range must be"),
        ({"level_db_range": (-20.0,)}, r"data.init_args.level_db_range must be a pair \[low, high\]"),
        ({"snr_db_range": 5.0}, r"data.init_args.snr_db_range must be a pair \[low, high\], got 5.0"),
        ({"reverb_probability": 1.5}, r"data.init_args.reverb_probability must be in \[0, 1\]"),
        ({"reverb_probability": 0.5}, "data.init_args.reverb_probability is 0.5: set data.init_args.rir_dir"),
        ({"clean_dir": None}, "data.init_args.noise_dirs and data.init_args.rir_dir need data.init_args.clean_dir"),
    ],
)
def test_config_errors_name_the_key(layout, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        datamodule(Path(), **{**layout, **change})


def test_an_empty_noise_folder_is_a_config_error(tmp_path: Path) -> None:
    arguments = write_layout(tmp_path)
    for split in SPLIT_FILES:
        (tmp_path / "quiet" / split).mkdir(parents=True)
    with pytest.raises(ConfigError, match="data.init_args.noise_dirs: .*quiet/train.* holds no .wav/.flac files"):
        datamodule(tmp_path, **{**arguments, "noise_dirs": [arguments["noise_dirs"][0], str(tmp_path / "quiet")]})
    for path in (tmp_path / "clean" / "train").iterdir():
        path.unlink()
    with pytest.raises(ConfigError, match="data.init_args.clean_dir: .*clean/train.* holds no .wav/.flac files"):
        datamodule(tmp_path, **arguments)


@pytest.mark.slow
def test_the_tiny_enhancer_trains_from_a_clean_folder_and_a_noise_folder(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from codecgan.lightning_cli import build_cli
    from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

    arguments = write_layout(tmp_path / "data")
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=2)
    overlay["data"] = {"init_args": {**arguments, "crop_seconds": 0.5, "batch_size": 2, "snr_db_range": [0, 10]}}
    overlay["model"] = {"init_args": {"pesq_workers": 1}}
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.DataLeakCheck"})
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    cli = build_cli(["fit", "--config", str(EXPERIMENTS / "enhance_tiny.yaml"), "--config", str(config)])
    assert cli.trainer.global_step == 4 and len(cli.datamodule.datasets["train"]) == 12
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    pesq = [event.value for event in events.Scalars("val/pesq")]
    assert len(pesq) == 2 and all(1.0 < value < 4.7 for value in pesq)
    assert [event.value for event in events.Scalars("diag/data_leak_files")] == [0.0]


# The override of enhance_cmgan.yaml that docs/training.md ("Noise mixed on the fly") shows.
CMGAN_MIXING_OVERRIDE = """
data:
  init_args:
    train_dir: null
    val_dir: null
    test_dir: null
    clean_dir: {root}/clean
    noise_dirs: [{root}/noise]
    rir_dir: {root}/rir
    snr_db_range: [-5, 20]
    level_db_range: [-35, -15]
    reverb_probability: 0.3
"""


def test_the_documented_override_of_enhance_cmgan_mixes_every_split(tmp_path: Path) -> None:
    from codecgan.lightning_cli import build_cli
    from tests.conftest import EXPERIMENTS

    write_layout(tmp_path, rirs=True)
    override = tmp_path / "mixing.yaml"
    override.write_text(CMGAN_MIXING_OVERRIDE.format(root=tmp_path))
    cli = build_cli(
        ["--config", str(EXPERIMENTS / "enhance_cmgan.yaml"), "--config", str(override), "--trainer.logger", "false"],
        run=False,
    )
    data = cli.datamodule
    data.setup("fit")
    assert sorted(data.mixing_folders) == ["test", "train", "val"] and data.mixing.reverb_probability == 0.3
    item = data.datasets["train"][(0, 0)]
    assert item["noisy"].shape == item["clean"].shape == (1, 2 * RATE)  # enhance_cmgan.yaml's 2 s crops
