"""MetricGANPlusEnhancer: the phase schedule, the history buffer, the repeated epoch, and tiny fits of the recipe."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile
import torch
from lightning.pytorch import Callback

from codecgan.cli import main
from codecgan.config_error import ConfigError
from codecgan.data.samplers import ResumableDataLoader, ResumableTrainSampler
from codecgan.lightning_cli import build_cli
from codecgan.metricgan_plus_module import (
    DiscriminatorTerm,
    MetricGANPlusEnhancer,
    loss_at_chance,
    metricgan_plus_phase,
    to_monitor_scale,
)
from codecgan.metricgan_replay import ReplayBuffer
from codecgan.models import MetricGANPlusDiscriminator, MetricGANPlusEnhancerNet
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

TINY = EXPERIMENTS / "enhance_metricgan_plus_tiny.yaml"


def test_phase_is_two_discriminator_passes_then_a_generator_pass_every_epoch():
    phases = [metricgan_plus_phase(step, batches_per_pass=2) for step in range(14)]
    assert phases == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 0, 0]


def test_monitor_scale_maps_the_recipe_target_to_the_monitors():
    # D predicts (PESQ + 0.5) / 5; the monitors compare (PESQ - 1) / 3.5: PESQ 1 -> 0, 4.5 -> 1.
    assert torch.allclose(to_monitor_scale(torch.tensor([[0.3], [1.0]])), torch.tensor([0.0, 1.0]))


def test_sampler_yields_the_epochs_first_items_once_per_pass_and_resumes_inside_a_pass():
    done = [0]
    sampler = ResumableTrainSampler(range(10), 2, lambda: (done[0], 0), items_per_epoch=4, passes=3, seed=1)
    keys = list(sampler)
    assert len(sampler) == 12 and keys[:4] == keys[4:8] == keys[8:] and len({index for index, _ in keys}) == 4
    done[0] = 3  # three batches trained: resume at the second pass's second batch
    assert list(sampler) == keys[6:]


def test_history_caps_items_and_bytes_evicting_the_oldest():
    buffer = ReplayBuffer(max_items=3, max_megabytes=1.0)
    for score in range(5):
        buffer.add(torch.full((1000,), float(score)), torch.zeros(1000), score)
    assert [buffer[i].score for i in range(len(buffer))] == [2.0, 3.0, 4.0] and buffer.nbytes == 3 * 8000
    # 1 MB holds 2**20 bytes: two items of 2 x 100,000 float32 samples (800,000 bytes each) do not fit.
    big = ReplayBuffer(max_items=10, max_megabytes=1.0)
    for score in range(3):
        big.add(torch.zeros(100_000), torch.zeros(100_000), score)
    assert len(big) == 1 and big[0].score == 2.0
    big.add(torch.zeros(200_000), torch.zeros(200_000), 9.0)  # larger than the whole cap: not kept
    assert len(big) == 1 and big[0].score == 2.0


def test_history_sample_is_seeded_and_survives_a_state_dict_round_trip():
    buffer = ReplayBuffer(max_items=100, max_megabytes=10.0)
    for score in range(20):
        buffer.add(torch.randn(50), torch.randn(50), score)
    restored = ReplayBuffer(max_items=100, max_megabytes=10.0)
    restored.load_state_dict(buffer.state_dict())
    drawn = [item.score for item in buffer.sample(4, torch.Generator().manual_seed(7))]
    again = [item.score for item in restored.sample(4, torch.Generator().manual_seed(7))]
    assert drawn == again and len(set(drawn)) == 4
    assert all(torch.equal(a.enhanced, b.enhanced) for a, b in zip(buffer, restored))
    assert len(buffer.sample(50, torch.Generator().manual_seed(0))) == 20


def test_enhancer_net_clamps_slopes_and_keeps_the_inputs_length():
    net = MetricGANPlusEnhancerNet(hidden_size=8)
    with torch.no_grad():
        net.mask_estimator.mask_activation.slope[:3] = torch.tensor([5.0, math.nan, 2.0])
    net.clamp_mask_slopes(3.5)
    assert net.mask_estimator.mask_activation.slope[:3].tolist() == [3.5, 3.5, 2.0]
    output = net(torch.randn(2, 1, 4100))
    assert output.audio.shape == (2, 1, 4100) and output.features.shape == (2, 17, 257)


def test_a_schedule_option_or_an_out_of_range_history_setting_fails_naming_the_key():
    parts = MetricGANPlusEnhancerNet(hidden_size=8), MetricGANPlusDiscriminator(channels=2)
    with pytest.raises(ConfigError, match="discriminator_update_period"):
        MetricGANPlusEnhancer(*parts, discriminator_update_period=2)
    with pytest.raises(ConfigError, match="history_portion"):
        MetricGANPlusEnhancer(*parts, history_portion=1.5)


class RecordOutputs(Callback):
    """Keeps the counts each training step returned."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        keys = ("replay_items", "replay_buffer_items", "pesq_clips", "pesq_failed_clips", "pesq_target_noisy")
        self.rows.append({key: outputs[key] for key in keys if key in outputs} | {"d": outputs["d_stepped"]})


def fit_tiny(tmp_path: Path, max_steps: int, ckpt_path: str | None = None, **data) -> object:
    tmp_path.mkdir(parents=True, exist_ok=True)
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=max_steps, val_every=max_steps, checkpoint_every=5)
    overlay["trainer"]["check_val_every_n_epoch"] = None
    overlay["data"] = {"init_args": {"synthetic_items": [16, 2, 2], **data}}
    overlay["model"] = {"init_args": {"pesq_workers": 0}}
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    recorder = RecordOutputs()
    cli = build_cli(["--config", str(TINY), "--config", str(config)], run=False)
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=ckpt_path)
    return cli, recorder


@pytest.mark.slow
def test_tiny_fit_steps_each_network_as_the_recipe_and_counts_failed_clips(tmp_path):
    # Half the items silent: PESQ fails on them (enhanced and noisy), counted, masked, no NaN in the losses.
    cli, recorder = fit_tiny(tmp_path, max_steps=12, silent_item_fraction=0.5)
    model, rows = cli.model, recorder.rows
    assert [row["d"] for row in rows] == [True] * 8 + [False] * 4
    opt_g, opt_d = model.optimizers(use_pl_optimizer=False)
    g_steps = next(iter(opt_g.state.values()))["step"].item()
    d_steps = next(iter(opt_d.state.values()))["step"].item()
    replayed = rows[4]["replay_items"]
    assert rows[4]["replay_buffer_items"] == len(model.history) and replayed == round(0.2 * len(model.history))
    failed = sum(row.get("pesq_failed_clips", 0) for row in rows)
    assert sum(row.get("pesq_clips", 0) for row in rows) == 16  # 8 utterances, enhanced and noisy, scored once
    assert failed > 0 and len(model.history) == 8 - failed // 2
    # 3 D steps per batch in both passes, one per replayed item; a term whose clips all failed does not step.
    all_failed_batches = sum(
        1 for row in rows[:8] if torch.isnan(row["pesq_target_noisy"]).all()
    )  # then enhanced and noisy both skip
    assert d_steps == 2 * 4 * 3 + replayed - 2 * all_failed_batches and g_steps == 4
    assert all(math.isfinite(float(value)) for value in cli.trainer.callback_metrics.values())


@pytest.mark.slow
def test_resume_mid_epoch_equals_the_straight_run_bitwise(tmp_path):
    # Checkpoint at step 5 (the second discriminator pass, on cached scores), resume to 17 through the generator
    # pass and the next epoch's replay.
    straight, _ = fit_tiny(tmp_path / "straight", max_steps=17)
    fit_tiny(tmp_path / "first", max_steps=5)
    checkpoint = str(tmp_path / "first" / "run" / "checkpoints" / "step5.ckpt")
    resumed, recorder = fit_tiny(tmp_path / "resumed", max_steps=17, ckpt_path=checkpoint)
    assert recorder.rows[11]["replay_items"] > 0  # step 16 replays
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [item.score for item in straight.model.history] == [item.score for item in resumed.model.history]


@pytest.mark.slow
def test_codecgan_enhance_runs_a_metricgan_plus_checkpoint(tmp_path):
    fit_tiny(tmp_path / "run", max_steps=5)
    noisy = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    soundfile.write(tmp_path / "noisy.wav", noisy.numpy(), 16000)
    checkpoint = tmp_path / "run" / "run" / "checkpoints" / "step5.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main(["enhance", "--ckpt", str(checkpoint), str(tmp_path / "noisy.wav"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 0
    enhanced, rate = soundfile.read(tmp_path / "out" / "noisy.wav")
    assert rate == 16000 and enhanced.shape == (16000,) and 0 < abs(enhanced).max() < 1


def test_recipe_config_has_speechbrains_sizes_optimizers_and_epoch():
    cli = build_cli(
        ["--config", str(EXPERIMENTS / "enhance_metricgan_plus.yaml"), "--trainer.logger", "false"], run=False
    )
    count = lambda module: sum(parameter.numel() for parameter in module.parameters())  # noqa: E731
    assert count(cli.model.generator) == 1_895_514 and count(cli.model.discriminator) == 19_010
    (optimizer_g, optimizer_d), _ = cli.model.configure_optimizers()
    for optimizer in (optimizer_g, optimizer_d):
        assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 5e-4
        assert optimizer.defaults["weight_decay"] == 0  # not AdamW's default carried over by the CLI
    assert cli.model.grad_clip_g == cli.model.grad_clip_d == 5.0 and cli.model.history_portion == 0.2
    assert cli.model.generator.min_mask == 0.05 and cli.model.mask_slope_max == 3.5
    data = cli.datamodule
    assert (data.batch_size, data.samples_per_epoch, data.epoch_passes, data.short_items) == (1, 100, 3, "zero_pad")
    assert cli.trainer.max_epochs == 750


def test_crops_too_short_for_the_discriminator_fail_naming_the_key():
    module = MetricGANPlusEnhancer(MetricGANPlusEnhancerNet(hidden_size=8), MetricGANPlusDiscriminator(channels=2))
    with pytest.raises(ConfigError, match="data.crop_seconds gives 4000-sample crops; MetricGANPlusDiscriminator"):
        module.check_crop_length(4000)  # 0.25 s: long enough for PESQ, 16 frames for the discriminator
    module.check_crop_length(4096)


@pytest.mark.slow
def test_tiny_config_learns_in_120_steps(tmp_path):
    # Measured (2-core VM, seed 0, about 60 s): val/pesq 1.092 at step 60 -> 1.130 at step 120 (10 epochs, 40 generator
    # steps); the discriminator's enhanced term falls from 0.062 (step 5) to 0.010 (step 119), train/loss_d from 1.015
    # to 0.327.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=120, val_every=60, checkpoint_every=120)
    overlay["trainer"]["log_every_n_steps"] = 6
    del overlay["data"]  # the tiny config's data
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    build_cli(["fit", "--config", str(TINY), "--config", str(config)])
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0}).Reload()
    pesq = [event.value for event in events.Scalars("val/pesq")]
    assert len(pesq) == 2 and pesq[1] > pesq[0] + 0.02, pesq
    enhanced = [event.value for event in events.Scalars("train/loss_d_enhanced")]
    assert sum(enhanced[-4:]) / 4 < 0.5 * enhanced[0], enhanced


def test_a_clip_without_pesq_is_masked_and_a_term_without_clips_does_not_step():
    torch.manual_seed(0)
    module = MetricGANPlusEnhancer(MetricGANPlusEnhancerNet(hidden_size=8), MetricGANPlusDiscriminator(channels=2))
    degraded, reference = torch.rand(2, 20, 257), torch.rand(2, 20, 257)
    target = torch.tensor([0.5, math.nan])
    term = DiscriminatorTerm("enhanced", degraded, reference, target, torch.isfinite(target).float())
    module.discriminator.eval()  # the same prediction twice: no batch statistics, no power iteration
    with torch.no_grad():
        prediction = module.discriminator(degraded, reference).reshape(-1)
        loss, outputs = module.discriminator_loss({}, {"discriminator_term": term})
        assert torch.allclose(loss, (prediction[0] - 0.5) ** 2) and not outputs["skip_update"]
        failed = DiscriminatorTerm("noisy", degraded, reference, torch.full((2,), math.nan), torch.zeros(2))
        loss, outputs = module.discriminator_loss({}, {"discriminator_term": failed})
        assert loss == 0 and outputs["skip_update"]


def test_loss_at_chance_is_the_best_constants_loss_over_the_terms_with_clips():
    clips = torch.ones(2)
    terms = [
        DiscriminatorTerm("clean", None, None, torch.ones(2), clips),
        DiscriminatorTerm("enhanced", None, None, torch.tensor([0.2, 0.4]), clips),
        DiscriminatorTerm("noisy", None, None, torch.full((2,), math.nan), torch.zeros(2)),
    ]
    # c = mean(1, 0.3) = 0.65: (1 - 0.65)^2 + mean((0.2 - 0.65)^2, (0.4 - 0.65)^2) = 0.1225 + 0.1325
    assert loss_at_chance(terms).item() == pytest.approx(0.255)


@pytest.mark.parametrize(("passes", "batches"), [(1, 12), (3, 13)])
def test_an_epoch_that_is_not_three_whole_passes_fails_naming_the_key(passes, batches):
    module = MetricGANPlusEnhancer(MetricGANPlusEnhancerNet(hidden_size=8), MetricGANPlusDiscriminator(channels=2))
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(epoch_passes=passes), num_training_batches=batches)
    with pytest.raises(ConfigError, match="data.init_args.epoch_passes: 3"):
        module.on_train_start()


def test_the_loader_state_names_the_epochs_items_and_passes_only_when_set():
    plain = ResumableDataLoader(range(10), sampler=ResumableTrainSampler(range(10), 2), batch_size=2)
    assert plain.state_dict() == {"seed": 0, "num_replicas": 1, "dataset_size": 10}
    sampler = ResumableTrainSampler(range(10), 2, items_per_epoch=4, passes=3)
    repeated = ResumableDataLoader(range(10), sampler=sampler, batch_size=2)
    assert repeated.state_dict() == {**plain.state_dict(), "samples_per_epoch": 4, "epoch_passes": 3}
    with pytest.warns(UserWarning, match="training data order changed"):
        repeated.load_state_dict(plain.state_dict())
