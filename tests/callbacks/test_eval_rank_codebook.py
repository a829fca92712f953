"""EvalDeterminism, RankConsistency and CodebookUsage on scripted outputs."""

from __future__ import annotations

import pytest
import torch

from callbacks import CodebookUsage, EvalDeterminism, RankConsistency
from callbacks.codebook_usage import code_counts, entropy_bits
from tests.callbacks.callback_fakes import FakeModule, FakeStrategy, FakeTrainer, train_steps, validation_round


def validation_batches(seed: int, items: int = 6, batch: int = 3) -> list[dict]:
    audio = torch.randn(items, 1, 400, generator=torch.Generator().manual_seed(seed))
    return [
        {
            "input": audio[i : i + batch],
            "reference": audio[i : i + batch],
            "length": torch.full((batch,), 400),
            "index": torch.arange(i, i + batch),
            "estimate": audio[i : i + batch],
        }
        for i in range(0, items, batch)
    ]


def test_identical_validation_inputs_are_not_flagged() -> None:
    callback, trainer, module = EvalDeterminism(), FakeTrainer(), FakeModule()
    for _ in range(3):
        validation_round(callback, trainer, module, validation_batches(seed=0))
    assert [v for n, v, _ in module.logged if n == "diag/eval_input_changed"] == [0.0, 0.0]
    assert callback.alarms.active == {}


def test_random_validation_crops_raise_eval_nondeterministic() -> None:
    callback, trainer, module = EvalDeterminism(), FakeTrainer(), FakeModule()
    validation_round(callback, trainer, module, validation_batches(seed=0))
    with pytest.warns(UserWarning, match="EVAL_NONDETERMINISTIC: 6 validation items"):
        validation_round(callback, trainer, module, validation_batches(seed=1))
    assert module.last("diag/eval_input_changed_fraction") == 1.0


def test_rank_consistency_reports_the_submodule_that_drifted() -> None:
    module = FakeModule()
    trainer = FakeTrainer(world_size=2)
    callback = RankConsistency(every_n_steps=2)
    train_steps(callback, trainer, module, [{}, {}])
    assert module.last("diag/rank_param_spread/generator") == 0.0
    with torch.no_grad():
        checksums = torch.stack(
            [
                torch.stack([p.double().sum(), p.double().square().sum()])
                for p in [
                    torch.cat([q.reshape(-1) for q in module.generator.parameters()]),
                    torch.cat([q.reshape(-1) for q in module.discriminator.parameters()]),
                ]
            ]
        )
    drifted = checksums.clone()
    drifted[0, 1] *= 1.001
    trainer.strategy = FakeStrategy(2, gathered=torch.stack([checksums, drifted]))
    with pytest.warns(UserWarning, match="RANK_DIVERGENCE: Parameters differed across DDP ranks.*generator"):
        train_steps(callback, trainer, module, [{}, {}])
    assert module.last("diag/rank_param_spread/discriminator") == 0.0


def test_code_counts_skip_frames_past_the_true_length() -> None:
    codes = torch.tensor([[[0, 1, 2, 3]], [[3, 3, 3, 3]]])  # [B=2, n_q=1, frames=4]
    counts = code_counts(codes, 4, frames_valid=torch.tensor([4, 1]))
    assert counts.tolist() == [[1.0, 1.0, 1.0, 2.0]]
    assert entropy_bits(torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])).tolist() == [2.0, 0.0]


def codec_outputs(codes: torch.Tensor, codebook_size: int = 16) -> dict:
    return {
        "codes": codes,
        "codebook_size": codebook_size,
        "length": torch.full((codes.shape[0],), 80),
        "estimate": torch.zeros(codes.shape[0], 1, 80),
    }


def test_codebook_usage_per_window_and_collapse_alarm() -> None:
    callback, trainer, module = CodebookUsage(window_steps=2), FakeTrainer(log_every_n_steps=2), FakeModule()
    uniform = (
        torch.arange(16).reshape(1, 1, 16).repeat(2, 2, 1) % 16
    )  # [B=2, n_q=2, 16 frames]: every code once per row
    collapsed = uniform.clone()
    collapsed[:, 1] = 0
    with pytest.warns(UserWarning, match="CODEBOOK_COLLAPSE: 1 quantizer used.*quantizer 1 at 0.0%"):
        train_steps(
            callback, trainer, module, [codec_outputs(uniform), codec_outputs(uniform)] + [codec_outputs(collapsed)] * 4
        )
    assert module.last("diag/codebook_entropy/0") == pytest.approx(4.0)
    assert module.last("diag/codebook_entropy_fraction/0") == pytest.approx(1.0)
    assert module.last("diag/dead_codes/1") == 15
    assert list(callback.alarms.active) == ["CODEBOOK_COLLAPSE"]
