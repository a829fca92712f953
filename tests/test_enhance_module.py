"""MetricGANEnhancer: PESQ failure policies, the lag-1 pairing, checkpointed lag state, tiny fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from codecgan import MetricGANEnhancer
from codecgan.config_error import ConfigError
from codecgan.data import EnhancementDataModule, SyntheticNoisySpeech
from codecgan.evaluation.enhancement_scores import ENHANCEMENT_MEASURES
from codecgan.evaluation.report import EvaluationReport
from codecgan.lightning_cli import build_cli
from codecgan.losses.enhancement import pesq_to_target
from codecgan.metrics import PesqPool, cut_to_common_length
from codecgan.models import CMGANGenerator, MetricDiscriminator
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.test_pesq_pool import pesq_worker_children

TINY_GENERATOR = dict(channels=4, num_blocks=1, attention_heads=2, dense_depth=1, dropout=0.0)


def make_module(**kwargs) -> MetricGANEnhancer:
    torch.manual_seed(0)
    generator = CMGANGenerator(**TINY_GENERATOR)
    kwargs.setdefault("pesq_workers", 1)
    return MetricGANEnhancer(generator, MetricDiscriminator(channels=4, dropout=0.0), **kwargs)


def make_batch(seed: int, silent: int = 0, size: int = 4, seconds: float = 0.5) -> dict[str, torch.Tensor]:
    """``size`` synthetic pairs; the first ``silent`` have an all-zero clean signal (PESQ finds no utterance)."""
    dataset = SyntheticNoisySpeech(size, seconds, 16000, seed=seed)
    items = [dataset[i] for i in range(size)]
    batch = {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0]}
    batch["clean"][:silent] = 0.0
    return batch


class DiscriminatorCalls:
    """Records the inputs and output of every discriminator call in training mode: the losses' calls, not the
    eval-mode prediction the metric-discriminator monitor reads."""

    def __init__(self, module: MetricGANEnhancer) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        module.discriminator.register_forward_hook(self._record)

    def _record(self, discriminator: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if discriminator.training:
            self.calls.append((*inputs, output))


def discriminator_step(module: MetricGANEnhancer, batch: dict) -> tuple[dict, torch.Tensor, dict]:
    forward = module.generator_forward(batch)
    loss, outputs = module.discriminator_loss(batch, forward)
    return forward, loss, outputs


@pytest.mark.parametrize("policy", ["mask", "drop_batch"])
def test_policies_train_on_valid_clips_or_drop_the_term_and_count_exactly(policy):
    module = make_module(pesq_failure_policy=policy)
    recorder = DiscriminatorCalls(module)
    _, loss, outputs = discriminator_step(module, make_batch(seed=1, silent=2))
    (_, _, clean_prediction), (_, _, estimate_prediction) = recorder.calls
    assert (outputs["pesq_clips"], outputs["pesq_failed_clips"]) == (4, 2)
    assert outputs["pesq_failures"]["no_utterances"] == 2 and sum(outputs["pesq_failures"].values()) == 2
    target = outputs["pesq_target"]
    assert torch.isnan(target[:2]).all() and torch.isfinite(target[2:]).all()
    assert torch.equal(outputs["metric_d_prediction"], estimate_prediction.float())
    clean_term = (clean_prediction.float() - 1).square().mean()
    if policy == "mask":
        assert outputs["pesq_dropped_batch"] == 0
        metric_term = (estimate_prediction[2:].float() - target[2:]).square().mean()
        assert loss.item() == pytest.approx((clean_term + metric_term).item(), rel=1e-6)
    else:
        assert outputs["pesq_dropped_batch"] == 1
        assert loss.item() == pytest.approx(clean_term.item(), rel=1e-6)
    loss.backward()  # always a backward through the discriminator: DDP ranks stay in step
    assert all(p.grad is not None for p in module.discriminator.parameters())
    module.close_pesq_pool()


def test_the_monitored_prediction_is_the_eval_mode_one_and_leaves_the_discriminator_unchanged():
    """MetricDiscriminatorMonitor correlates predictions made without dropout; the loss keeps CMGAN's dropout."""
    torch.manual_seed(0)
    discriminator = MetricDiscriminator(channels=4, dropout=0.5)
    module = MetricGANEnhancer(CMGANGenerator(**TINY_GENERATOR), discriminator, pesq_workers=1)
    recorder = DiscriminatorCalls(module)
    _, _, outputs = discriminator_step(module, make_batch(seed=3))
    clean, estimate, trained_prediction = recorder.calls[1]
    state = {name: value.clone() for name, value in discriminator.state_dict().items()}
    again = module._prediction_without_dropout(clean, estimate)
    assert all(torch.equal(value, discriminator.state_dict()[name]) for name, value in state.items())
    assert discriminator.training and torch.equal(outputs["metric_d_prediction"], again)
    assert torch.equal(again, discriminator.eval()(clean, estimate).float())
    assert not torch.allclose(trained_prediction.float(), again)  # dropout at 0.5 moves the training prediction
    module.close_pesq_pool()


def test_drop_batch_keeps_batches_where_every_clip_has_a_score():
    module = make_module(pesq_failure_policy="drop_batch")
    _, _, outputs = discriminator_step(module, make_batch(seed=2))
    assert (outputs["pesq_clips"], outputs["pesq_failed_clips"], outputs["pesq_dropped_batch"]) == (4, 0, 0)
    module.close_pesq_pool()


def check_pairing(outputs: dict, metric_call: tuple, scored_forward: dict, expected_target: torch.Tensor) -> None:
    """The discriminator's metric term saw ``scored_forward``'s spectra next to their own targets."""
    clean_magnitude, estimate_magnitude, _ = metric_call
    assert torch.equal(clean_magnitude, scored_forward["clean_magnitude"])
    assert torch.equal(estimate_magnitude, scored_forward["magnitude"].detach())
    torch.testing.assert_close(outputs["pesq_target"], expected_target, equal_nan=True)


def test_pesq_lag_1_pairs_each_target_with_the_estimate_it_scored():
    module = make_module(pesq_lag=1)
    recorder = DiscriminatorCalls(module)
    batches = [make_batch(seed=10), make_batch(seed=11, silent=1), make_batch(seed=12)]
    forwards, outputs = [], []
    for batch in batches:
        forward, _, step_outputs = discriminator_step(module, batch)
        forwards.append(forward)
        outputs.append(step_outputs)
    assert (outputs[0]["pesq_dropped_batch"], outputs[0]["pesq_clips"]) == (1, 0)  # no earlier batch yet
    assert torch.isnan(outputs[0]["pesq_target"]).all()
    with PesqPool(0) as inline:

        def targets(step: int) -> torch.Tensor:
            batch = batches[step]
            result = inline.score(batch["clean"], forwards[step]["estimate"].detach(), batch["length"])
            return pesq_to_target(torch.from_numpy(result.scores))

        for step in (1, 2):
            metric_call = recorder.calls[2 * step + 1]
            check_pairing(outputs[step], metric_call, forwards[step - 1], targets(step - 1))
            with pytest.raises(AssertionError):  # the same-step pairing is distinguishable
                check_pairing(outputs[step], metric_call, forwards[step], targets(step))
            with pytest.raises(AssertionError):  # so is a shuffled pairing within the batch
                check_pairing(outputs[step], metric_call, forwards[step - 1], targets(step - 1).roll(1))
    assert outputs[2]["pesq_failed_clips"] == 1 and math.isnan(outputs[2]["pesq_target"][0])
    module.close_pesq_pool()


def test_the_lag_buffer_round_trips_through_a_checkpoint():
    module = make_module(pesq_lag=1)
    discriminator_step(module, make_batch(seed=20, silent=1))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    state = checkpoint["pesq_lag_buffer"]
    assert all(isinstance(value, torch.Tensor) and value.shape[0] == 1 for value in state.values())
    resumed = make_module(pesq_lag=1)
    resumed.load_state_dict(module.state_dict())
    resumed.on_load_checkpoint(checkpoint)
    batch = make_batch(seed=21)
    torch.manual_seed(5)
    _, loss, outputs = discriminator_step(module, batch)
    torch.manual_seed(5)
    _, resumed_loss, resumed_outputs = discriminator_step(resumed, batch)
    torch.testing.assert_close(resumed_outputs["pesq_target"], outputs["pesq_target"], equal_nan=True)
    assert resumed_loss.item() == loss.item() and resumed_outputs["pesq_failed_clips"] == 1
    module.close_pesq_pool()
    resumed.close_pesq_pool()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pesq_failure_policy": "skip"}, "'mask', 'drop_batch'.*'skip'"),
        ({"pesq_lag": 2}, r"\(0, 1\), got 2"),
        ({"pesq_workers": -1}, "got -1"),
        ({"loss_weights": {"adv": 1.0}}, "'adv'"),
        ({"sample_rate": 8000}, "got 8000"),
    ],
)
def test_bad_arguments_are_rejected_with_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_module(**kwargs)


def tiny_fit_args(tmp_path: Path, max_steps: int, val_every: int, **model_args) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps, val_every, checkpoint_every=val_every)
    overlay["data"] = {
        "init_args": {
            "crop_seconds": 0.3,
            "val_crop_seconds": 1.0,
            "batch_size": 2,
            "synthetic_items": [16, 4, 4],
            "silent_item_fraction": 0.25,
        }
    }
    overlay["model"] = {"init_args": {"pesq_workers": 1, **model_args}}
    overlay_path = write_overlay(tmp_path, "overlay.yaml", overlay)
    return ["--config", str(EXPERIMENTS / "enhance_tiny.yaml"), "--config", str(overlay_path)]


def test_enhance_tiny_fit_logs_val_pesq_every_round_and_leaves_no_worker(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cli = build_cli(["fit", *tiny_fit_args(tmp_path, max_steps=4, val_every=2)])
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    pesq = [event.value for event in events.Scalars("val/pesq")]
    assert len(pesq) == 2 and all(1.0 < value < 4.7 for value in pesq)
    # One of the 4 validation items is (nearly) silent: PESQ finds no utterance in it, every round.
    assert [event.value for event in events.Scalars("val/pesq_failed_clips")] == [1.0, 1.0]
    assert len(events.Scalars("val/stoi")) == 2
    assert cli.model._pesq_pool.closed and pesq_worker_children() == []


def test_a_short_istft_output_is_scored_on_the_common_length_and_counted_as_a_mismatch(tmp_path):
    # The istft_length_mismatch fault: 16048-sample validation utterances come back 48 samples short. Validation must
    # score them (PESQ and STOI on the first 16000 samples) and SignalStats must count every clip, not crash.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = tiny_fit_args(tmp_path, max_steps=2, val_every=2)
    overlay = {
        "model": {"init_args": {"generator": {"init_args": {"match_length": False}}}},
        "data": {"init_args": {"synthetic_seconds": 1.003, "val_crop_seconds": 1.003}},
        "trainer": {"callbacks+": [{"class_path": "callbacks.SignalStats"}]},
    }
    with pytest.warns(UserWarning, match="LENGTH_MISMATCH: diag/length_mismatch counted 4 validation clips"):
        build_cli(["fit", *args, "--config", str(write_overlay(tmp_path, "mismatch.yaml", overlay))])
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    assert [event.value for event in events.Scalars("diag/length_mismatch")] == [4.0]
    assert 1.0 < events.Scalars("val/pesq")[0].value < 4.7 and events.Scalars("val/pesq_failed_clips")[0].value == 1
    assert 0.0 < events.Scalars("val/stoi")[0].value <= 1.0


def test_cut_to_common_length_cuts_both_signals_and_clamps_the_true_lengths():
    estimate, reference, length = torch.ones(2, 1, 10), torch.zeros(2, 1, 12), torch.tensor([12, 7])
    cut_estimate, cut_reference, cut_length = cut_to_common_length(estimate, reference, length)
    assert cut_estimate.shape == cut_reference.shape == (2, 1, 10) and cut_length.tolist() == [10, 7]
    assert cut_to_common_length(reference, reference, length)[0] is reference  # equal lengths: untouched


class FailAtBatch(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        assert {"pesq_target", "metric_d_prediction", "pesq_clips", "pesq_dropped_batch"} <= set(outputs)
        if batch_idx == 1:
            raise RuntimeError("planted failure")


def test_no_worker_outlives_a_fit_that_fails(tmp_path):
    module = make_module()
    data = EnhancementDataModule(crop_seconds=0.3, batch_size=2, synthetic_items=(8, 2, 2))
    trainer = L.Trainer(
        max_steps=4,
        callbacks=[FailAtBatch()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(RuntimeError, match="planted failure"):
        trainer.fit(module, data)
    assert module._pesq_pool.closed and pesq_worker_children() == []


def test_crops_too_short_for_pesq_fail_at_start_naming_the_key(tmp_path):
    data = EnhancementDataModule(crop_seconds=0.2, batch_size=2, synthetic_items=(4, 2, 2))
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match="data.crop_seconds gives 3200-sample crops"):
        trainer.fit(make_module(), data)
    assert pesq_worker_children() == []


def final_weights(cli) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in cli.model.state_dict().items()}


@pytest.mark.slow
def test_a_resumed_lag_1_run_continues_exactly(tmp_path):
    straight = build_cli(["fit", *tiny_fit_args(tmp_path / "a", max_steps=4, val_every=2, pesq_lag=1)])
    build_cli(["fit", *tiny_fit_args(tmp_path / "b", max_steps=2, val_every=2, pesq_lag=1)])
    checkpoint = tmp_path / "b" / "run" / "checkpoints" / "last.ckpt"
    assert "pesq_lag_buffer" in torch.load(checkpoint, weights_only=True)
    resumed = build_cli(
        ["fit", *tiny_fit_args(tmp_path / "b", max_steps=4, val_every=2, pesq_lag=1), "--ckpt_path", str(checkpoint)]
    )
    expected, actual = final_weights(straight), final_weights(resumed)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


class DiscriminatorUpdates(L.Callback):
    """Per batch: whether PESQ dropped it, whether the discriminator's weights or its optimizer's step count moved."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, bool, bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._weights = [p.detach().clone() for p in pl_module.discriminator.parameters()]
        self._steps = optimizer_steps_taken(trainer.optimizers[1])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        moved = any(not torch.equal(a, b) for a, b in zip(self._weights, pl_module.discriminator.parameters()))
        stepped = optimizer_steps_taken(trainer.optimizers[1]) > self._steps
        self.rows.append((int(outputs["pesq_dropped_batch"]), moved, stepped))


def optimizer_steps_taken(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"]) if optimizer.state else 0


def test_drop_batch_skips_the_whole_discriminator_update_as_cmgan_does(tmp_path):
    """A batch with a clip PESQ cannot score leaves the discriminator's weights and AdamW's state (momentum and step
    count) untouched; its scheduler waits for the skipped steps."""
    cli = build_cli(tiny_fit_args(tmp_path, max_steps=8, val_every=100, pesq_failure_policy="drop_batch"), run=False)
    updates = DiscriminatorUpdates()
    cli.trainer.callbacks.append(updates)
    cli.trainer.fit(cli.model, cli.datamodule)
    dropped = [row[0] for row in updates.rows]
    assert 0 < sum(dropped) < len(dropped), dropped  # the data gives both kinds of batch
    for was_dropped, moved, stepped in updates.rows:
        assert moved == stepped == (not was_dropped)
    _, scheduler_d = cli.model.lr_schedulers()
    # Skips are read at logging steps and the epoch's end; a scheduler still owes the batches it has not yet waited.
    waits = cli.model.nonfinite_guard.scheduler_waits[1]
    assert scheduler_d.last_epoch - waits == optimizer_steps_taken(cli.trainer.optimizers[1]) == 8 - sum(dropped)
    cli.model.close_pesq_pool()


def test_validation_scores_each_utterance_at_its_full_length_whatever_the_batch():
    """A padded batch of utterances of different lengths gives exactly the metrics of the utterances one by one."""
    module = make_module(pesq_workers=0).eval()
    lengths = [9600, 16000, 12800]
    full = make_batch(seed=30, size=3, seconds=1.0)
    for row, samples in enumerate(lengths):  # right padding, as a collate of whole utterances gives
        full["noisy"][row, :, samples:] = 0.0
        full["clean"][row, :, samples:] = 0.0
    batch = {**full, "length": torch.tensor(lengths), "index": torch.arange(3)}
    with torch.no_grad():
        together = module.validation_step(batch, 0)
        pesq_together, stoi_together = module.val_pesq.compute(), module.val_stoi.compute()
        module.val_pesq.reset(), module.val_stoi.reset()
        alone = []
        for row, samples in enumerate(lengths):
            item = {key: full[key][row : row + 1, :, :samples] for key in ("noisy", "clean")}
            alone.append(
                module.validation_step({**item, "length": torch.tensor([samples]), "index": torch.tensor([row])}, 0)
            )
        pesq_alone, stoi_alone = module.val_pesq.compute(), module.val_stoi.compute()
    assert together["estimate_length"].tolist() == lengths
    for row, (samples, single) in enumerate(zip(lengths, alone)):
        assert torch.equal(together["estimate"][row, :, :samples], single["estimate"][0])
        assert torch.all(together["estimate"][row, :, samples:] == 0)
        assert torch.equal(together["pesq"][row], single["pesq"][0])
        assert torch.equal(together["metric_d_prediction"][row], single["metric_d_prediction"][0])
    assert pesq_together == pesq_alone and stoi_together == stoi_alone
    module.close_pesq_pool()


class UtterancesSeenInTest(L.Callback):
    def __init__(self) -> None:
        self.indices: list[int] = []
        self.whole: list[bool] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.indices += outputs["index"].tolist()
        self.whole += (outputs["estimate_length"] == outputs["length"]).tolist()


def test_codecgan_test_scores_every_test_utterance_whole_with_every_measure_and_the_noisy_baseline(tmp_path):
    """`codecgan test` scores every test utterance once, at its length, enhanced and unprocessed, with the papers'
    measures; the report writes them per utterance."""
    args = tiny_fit_args(tmp_path, max_steps=2, val_every=2)
    overlay = {
        "data": {"init_args": {"synthetic_items": [16, 4, 5], "val_batch_size": 3}},
        "trainer": {"logger": False},
    }
    cli = build_cli([*args, "--config", str(write_overlay(tmp_path, "test.yaml", overlay))], run=False)
    tested = UtterancesSeenInTest()
    report = EvaluationReport()
    cli.trainer.callbacks += [tested, report]
    cli.trainer.test(cli.model, cli.datamodule)
    metrics = cli.trainer.callback_metrics
    assert 1.0 < float(metrics["test/pesq"]) < 4.7 and 0.0 < float(metrics["test/stoi"]) <= 1.0
    assert sorted(tested.indices) == [0, 1, 2, 3, 4] and all(tested.whole)
    assert sorted((row["utterance"], row["system"]) for row in report.rows) == [
        (index, system) for index in range(5) for system in ("enhanced", "noisy input")
    ]
    # The synthetic test set has silent utterances (silent_item_fraction): no measure is defined for them.
    silent = {row["utterance"] for row in report.rows if math.isnan(row["pesq_wb"])}
    assert 1 <= len(silent) < 5
    for row in report.rows:
        assert set(ENHANCEMENT_MEASURES) <= set(row)
        if row["utterance"] in silent:
            assert all(math.isnan(row[name]) for name in ENHANCEMENT_MEASURES), row
            continue
        assert 1.0 <= row["pesq_wb"] <= 4.65 and 1.0 <= row["pesq_nb"] <= 4.55
        assert all(1.0 <= row[name] <= 5.0 for name in ("csig", "cbak", "covl"))
        assert -10.0 <= row["ssnr_db"] <= 35.0 and 0.0 < row["stoi"] <= 1.0 and math.isfinite(row["si_sdr_db"])
    enhanced_pesq = [
        row["pesq_wb"] for row in report.rows if row["system"] == "enhanced" and row["utterance"] not in silent
    ]
    assert float(metrics["test/pesq"]) == pytest.approx(sum(enhanced_pesq) / len(enhanced_pesq), rel=1e-5)
    assert int(metrics["test/pesq_failed_clips"]) == len(silent)
    summary = json.loads(Path(cli.trainer.default_root_dir, "metrics.json").read_text())
    noisy_pesq = summary["systems"]["noisy input"]["measures"]["pesq_wb"]
    assert summary["systems"]["noisy input"]["utterances"] == 5 and noisy_pesq["scored"] == 5 - len(silent)
    assert noisy_pesq["failed"] == [f"#{index}" for index in sorted(silent)]
    cli.model.close_pesq_pool()


def test_discriminator_first_is_refused_naming_the_key_and_why(tmp_path):
    """The enhancer steps the generator first, as CMGAN does; a config asking otherwise fails on the key, not with a
    TypeError about a repeated argument."""
    message = r"model.init_args.discriminator_first must be false .*steps the generator first, as CMGAN does"
    with pytest.raises(ConfigError, match=message):
        make_module(discriminator_first=True)
    with pytest.raises(ValueError, match=message):
        build_cli(tiny_fit_args(tmp_path, max_steps=1, val_every=1, discriminator_first=True), run=False)
    assert make_module(discriminator_first=False).discriminator_first is False
