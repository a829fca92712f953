"""On a GPU, the training-step hooks of every callback queue work without reading anything back to the host
between logging steps (a host sync per batch would stall the GPU). Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from callbacks import (
    CodebookUsage,
    DiscriminatorHealth,
    DivergenceMonitor,
    EvalDeterminism,
    MetricDiscriminatorMonitor,
    PesqHealth,
    SignalStats,
)
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_outputs(step: int) -> dict:
    device = torch.device("cuda")
    target = torch.rand(8, device=device)
    return {
        "loss": torch.tensor(1.0, device=device),
        "losses": {name: torch.rand((), device=device) for name in ("loss_g", "loss_d", "loss_fm", "loss_adv")},
        "d_stepped": True,
        "d_real": torch.rand((), device=device),
        "d_fake": torch.rand((), device=device),
        "d_loss_chance": 2.0,
        "grad_norm_d": torch.rand((), device=device),
        "pesq_dropped_batch": step % 2,
        "pesq_clips": 8,
        "pesq_failed_clips": step % 2,
        "metric_d_prediction": torch.rand(8, device=device),
        "pesq_target": target,
        "codes": torch.randint(0, 1024, (8, 4, 50), device=device),
        "codebook_size": 1024,
        "length": torch.full((8,), 16000, device=device),
        "estimate": torch.rand(8, 1, 16000, device=device),
        "reference": torch.rand(8, 1, 16000, device=device),
        "input": torch.rand(8, 1, 16000, device=device),
        "index": torch.arange(8, device=device),
    }


def test_no_host_sync_between_logging_steps() -> None:
    callbacks = [
        PesqHealth(),
        MetricDiscriminatorMonitor(),
        DiscriminatorHealth(),
        DivergenceMonitor(),
        CodebookUsage(window_steps=10),
    ]
    validation_callbacks = [SignalStats(), EvalDeterminism()]
    trainer, module = FakeTrainer(log_every_n_steps=10), FakeModule()
    trainer.strategy.root_device = torch.device("cuda")
    outputs = [cuda_outputs(step) for step in range(20)]
    torch.cuda.synchronize()
    for step, output in enumerate(outputs):
        logging_step = (step + 1) % 10 == 0
        torch.cuda.set_sync_debug_mode("default" if logging_step else "error")
        try:
            for callback in callbacks:
                callback.on_train_batch_end(trainer, module, output, None, step)
            for callback in validation_callbacks:
                callback.on_validation_batch_end(trainer, module, output, None, step)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        trainer.advance()
    for callback in validation_callbacks:
        callback.on_validation_epoch_end(trainer, module)
    assert {"diag/pesq_none_rate", "diag/metric_d_mae", "diag/d_loss_to_chance", "val/snr_db"} <= module.names()
    assert "diag/codebook_entropy/0" in module.names()
