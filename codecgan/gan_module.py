"""The adversarial training loop shared by every model family.

`GANModule` alternates a discriminator step and a generator step on every batch with Lightning's
manual optimization. Subclasses say *what* the generator computes and *which* losses each network
minimises (`generator_forward`, `discriminator_loss`, `generator_loss`; optionally `generator_objective`, the scalar
the generator's backward differentiates); this file says *how* the two networks are stepped, and nothing else.

Conventions that matter for diagnosis, resume and speed:

- ``trainer.global_step`` counts **one per batch** (``codecgan.optimizer_steps``), so ``max_steps``,
  ``val_check_interval`` and checkpoint intervals count batches.
- The torch RNG is reseeded from ``(seed, global_step, rank)`` at the start of every batch, so
  dropout and quantizer dropout draw the same numbers in a resumed run as in a straight one.
- A step whose gradient norm is not finite leaves its network's weights and optimizer state
  untouched, decided on the device from the all-reduced gradients, so every rank decides the same.
  A non-finite generator output makes both networks skip; a non-finite loss skips its own network.
  ``codecgan.nonfinite_guard`` counts such batches and stops a run that keeps producing them.
- A batch that does not log reads nothing back from the device: counters and the discriminator's
  update ratio (``codecgan.discriminator_update_meter``) are summed there and read at logging steps.
- Each network's gradients are zeroed immediately before its own backward, and the other
  network's parameters are frozen (``toggled_optimizer``) during it: a stale ``zero_grad`` lets
  generator-step gradients leak into the discriminator step, a known way to make a discriminator
  stop learning (NeMo #7266).
- A step calls the network it trains through ``self.trained(network)``: under ``strategy: gan_ddp``
  (``codecgan.ddp_strategy``) its own DDP wrapper, so its backward all-reduces its gradients once.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.nn.utils import parametrize

from codecgan import optimizer_steps
from codecgan.cadence import is_logging_step
from codecgan.compilation import compile_mode, compile_networks
from codecgan.ddp_strategy import DDPRouting, on_any_rank
from codecgan.discriminator_update_meter import DiscriminatorUpdateMeter
from codecgan.generator_ema import GeneratorEMA, adapt_generator_ema_weights
from codecgan.loop_options import check_discriminator_takes, check_loop_options
from codecgan.nonfinite_guard import NonFiniteGuard
from codecgan.step_logging import log_training_step
from codecgan.term_gradients import term_gradient_norms
from codecgan.weight_loading import load_network_weights

Batch = dict[str, Tensor]
Forward = dict[str, Any]


def _no_scheduler(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


class GANModule(L.LightningModule):
    """Base LightningModule: one generator forward, a discriminator step, a generator step per batch.

    Args:
        generator: the network that produces audio.
        discriminator: the network (or set of networks) that judges it.
        optimizer_g, optimizer_d: optimizer factories (LightningCLI ``class_path`` entries).
        scheduler_g, scheduler_d: LR scheduler factories. ``None`` keeps the LR.
        scheduler_interval: ``step`` steps each scheduler after each step its optimizer took (the
            generator's once per batch); ``epoch`` steps both at the end of every training epoch, so a
            schedule reads in epochs (CMGAN: StepLR halving every 30 epochs) whatever the number of GPUs.
        discriminator_start_step: batches of generator-only warm-up before the discriminator trains
            and the adversarial terms enter the generator loss.
        discriminator_warmup_steps: batches of discriminator-only warm-up: the generator is frozen (no backward, no
            optimizer step, its scheduler waits) while the discriminator trains and its loss terms are still
            logged. For a run started from a generator alone (a released DAC model, ``init_from``).
        discriminator_update_period: the discriminator steps on every ``period``-th batch. The
            schedule depends only on the step counter, so it is identical on every rank (a per-rank
            random skip desynchronises DDP, NeMo #7209).
        grad_clip_g, grad_clip_d: gradient-norm clipping values; ``None`` measures without clipping.
        discriminator_first: step order inside a batch. DAC steps the discriminator first; CMGAN steps
            the generator first and then trains its metric discriminator on the pre-update estimate.
        max_nonfinite_in_a_row: batches in a row with a skipped (non-finite) step before training stops.
        compile: ``torch.compile`` generator and discriminator in place: ``true`` or a mode, ``default``,
            ``reduce-overhead`` (CUDA graphs), ``max-autotune`` or ``max-autotune-no-cudagraphs``
            (``codecgan.compilation``).
        compile_backend: ``torch.compile`` backend; ``aot_eager`` traces forward and backward without
            generating kernels (a quick check for graph breaks).
        init_from: a ``codecgan fit`` checkpoint whose generator and discriminator weights a fresh run starts
            from, a DAC model file (``weights.pth``) for the generator alone, or a vocoder reference's released
            files (docs/vocoders.md, "Fine-tuning from released weights") (``codecgan.weight_loading``); a
            run resumed with ``--ckpt_path`` restores its own checkpoint.
        ema_decay: keep an exponential moving average of the generator's weights with this decay, in [0, 1)
            (e.g. 0.999), updated after each generator step; validation, test and prediction then use it
            (``codecgan.generator_ema``). ``None`` (default): no average.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable = torch.optim.AdamW,
        optimizer_d: OptimizerCallable = torch.optim.AdamW,
        scheduler_g: LRSchedulerCallable | None = None,
        scheduler_d: LRSchedulerCallable | None = None,
        scheduler_interval: str = "step",
        discriminator_start_step: int = 0,
        discriminator_update_period: int = 1,
        grad_clip_g: float | None = None,
        grad_clip_d: float | None = None,
        discriminator_first: bool = True,
        max_nonfinite_in_a_row: int = 10,
        compile: bool | str = False,
        compile_backend: str = "inductor",
        init_from: str | None = None,
        discriminator_warmup_steps: int = 0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_loop_options(
            discriminator_start_step,
            discriminator_update_period,
            scheduler_interval,
            grad_clip_g,
            grad_clip_d,
            discriminator_warmup_steps,
            ema_decay,
        )
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g or _no_scheduler, scheduler_d or _no_scheduler
        self.scheduler_interval = scheduler_interval
        self.discriminator_start_step = discriminator_start_step
        self.discriminator_update_period = discriminator_update_period
        self.discriminator_warmup_steps = discriminator_warmup_steps
        self.grad_clip_g, self.grad_clip_d = grad_clip_g, grad_clip_d
        self.discriminator_first = discriminator_first
        self.compile_mode, self.compile_backend = compile_mode(compile), compile_backend
        self.init_from = init_from
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        # Its counters are this module's buffers nonfinite_steps and nonfinite_in_a_row (checkpointed).
        self.nonfinite_guard = NonFiniteGuard(self, max_nonfinite_in_a_row)
        self.discriminator_update = DiscriminatorUpdateMeter()
        self.ddp_routing = DDPRouting()
        # Set by the GradientBalance callback: report each generator loss term's gradient norm every N batches.
        self.term_gradient_interval = 0
        self._fit_start_step, self._batches_this_fit = 0, 0

    # ----------------------------------------------------------------------------- subclass API
    def generator_forward(self, batch: Batch) -> Forward:
        """Run the generator. Must return ``estimate``, ``reference``, ``input``, ``length``."""
        raise NotImplementedError

    def discriminator_loss(self, batch: Batch, forward: Forward) -> tuple[Tensor, dict[str, Any]]:
        """The discriminator's loss on the detached estimate, and step outputs (``d_real``, ``d_fake``,
        ``d_loss_chance``, ...).

        ``skip_update`` (a bool tensor) among the outputs asks that the discriminator not step on this
        batch: its backward still runs (every DDP rank must reduce), but no rank's optimizer steps if any
        rank asked, so the replicas stay identical (``d_update_skipped`` in the outputs)."""
        raise NotImplementedError

    def generator_loss(
        self, batch: Batch, forward: Forward, adversarial: bool
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The generator's weighted loss terms (summed into ``loss_g``) and extra step outputs.

        ``adversarial`` is False during the generator-only warm-up.
        """
        raise NotImplementedError

    def generator_objective(
        self, loss_g: Tensor, terms: dict[str, Tensor], forward: Forward
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar the generator's backward differentiates, and values to log at logging steps (full tags).

        ``loss_g``, the sum of the ``terms``, by default. A family that shapes the gradient itself (EnCodec's loss
        balancer, ``CodecGAN``) returns a surrogate whose gradient is the one it wants: one backward, so the
        one-device path, DDP's single reduction, clipping and the non-finite skip stay as they are."""
        return loss_g, {}

    def gradient_probe(self, forward: Forward) -> tuple[Tensor, ...]:
        """The generator output tensors every loss term depends on (for ``term_grad_norms``)."""
        return (forward["estimate"],)

    # ---------------------------------------------------------------------------- optimization
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_from is not None:
            networks = {"generator": self.generator, "discriminator": self.discriminator}
            # A codec's sample rate, checked against a DAC model file's.
            load_network_weights(
                networks, self.init_from, getattr(self, "sample_rate", None), getattr(self, "mel_spectrogram", None)
            )
            if self.generator_ema is not None:
                self.generator_ema.reset(self.generator)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        crop = getattr(datamodule, "crop_samples", None)
        if stage == "fit" and crop is not None:
            self.check_crop_length(crop)

    def check_crop_length(self, crop: int) -> None:
        """Fail at start, naming the key, when ``crop``-sample crops are too short for the discriminator."""
        check_discriminator_takes(self.discriminator, crop, self.device)

    def trained(self, network: nn.Module) -> nn.Module:
        """``network`` as the step that trains it must call it: through its own DDP wrapper under ``gan_ddp``
        (``DDPRouting.trained``), itself otherwise."""
        return self.ddp_routing.trained(network, self.training)

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Lightning's backward hook, after the precision plugin has scaled ``loss``: ``optimizer_steps.backward``
        (on one device, without autograd's per-parameter accumulation ops)."""
        optimizer_steps.backward(loss, self.parameters(), self.trainer.strategy, *args, **kwargs)

    def configure_model(self) -> None:
        if self.compile_mode:
            compile_networks([self.generator, self.discriminator], self.compile_mode, self.compile_backend)

    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_g(self.generator.parameters())
        opt_d = self.optimizer_d(self.discriminator.parameters())
        return [opt_g, opt_d], [self.scheduler_g(opt_g), self.scheduler_d(opt_d)]

    def discriminator_trains_at(self, step: int) -> bool:
        return step >= self.discriminator_start_step and step % self.discriminator_update_period == 0

    def on_fit_start(self) -> None:
        opt_g, opt_d = self.optimizers(use_pl_optimizer=False)
        optimizer_steps.check_optimizers(self.trainer, {"optimizer_g": opt_g, "optimizer_d": opt_d})
        if self.generator_ema is not None:
            rank_zero_info(
                f"Generator EMA: an average of the generator's weights with decay {self.generator_ema.decay} "
                "(model.init_args.ema_decay), updated after each generator step; validation, test and prediction "
                "use it."
            )

    def generator_trains_at(self, step: int) -> bool:
        return step >= self.discriminator_warmup_steps

    def on_train_start(self) -> None:
        self._fit_start_step, self._batches_this_fit = self.global_step, 0
        if self.global_step < self.discriminator_warmup_steps:
            rank_zero_info(
                f"Discriminator warm-up: the generator stays frozen until step {self.discriminator_warmup_steps} "
                f"(model.init_args.discriminator_warmup_steps) while the discriminator trains."
            )

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        torch.manual_seed(seed * 1_000_003 + self.global_step * 7919 + self.global_rank)
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the previous batch's graph outputs may be reused
        if is_logging_step(self.trainer):
            # Before this batch steps: a run of non-finite batches stops with the weights it left untouched.
            self.read_step_counters()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batches_this_fit += 1

    def on_train_epoch_end(self) -> None:
        self.read_step_counters()
        if self.scheduler_interval == "epoch":
            scheduler_g, scheduler_d = self.lr_schedulers()
            if self.generator_trains_at(self.global_step - 1):  # it waits out the warm-up
                scheduler_g.step()
            scheduler_d.step()

    def read_step_counters(self) -> None:
        """Read the device-side counters (a host sync; at logging steps only) and check the step count."""
        optimizer_steps.check_step_count(self.trainer, self._batches_this_fit, self._fit_start_step)
        self.nonfinite_guard.read(self.global_step)

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        opt_g, opt_d = self.optimizers()
        step = self.global_step
        train_d = self.discriminator_trains_at(step)
        with torch.set_grad_enabled(self.generator_trains_at(step)):  # no graph (nor DDP reduction) for a frozen one
            forward = self.generator_forward(batch)

        outputs: dict[str, Any] = {}
        if self.discriminator_first:
            outputs.update(self._discriminator_step(opt_d, batch, forward, train_d))
            outputs.update(self._generator_step(opt_g, batch, forward, step))
        else:
            outputs.update(self._generator_step(opt_g, batch, forward, step))
            outputs.update(self._discriminator_step(opt_d, batch, forward, train_d))
        if self.scheduler_interval == "step":
            scheduler_g, scheduler_d = self.lr_schedulers()
            if self.generator_trains_at(step):
                self.nonfinite_guard.step_scheduler(scheduler_g, 0)
            if train_d:  # the discriminator's schedule counts its own updates
                self.nonfinite_guard.step_scheduler(scheduler_d, 1)

        losses = {**outputs.pop("losses"), **outputs.pop("losses_d")}
        outputs["losses"] = losses
        skipped_g = outputs.pop("skipped_g")
        skipped = torch.stack([skipped_g, outputs.pop("skipped_d")])
        outputs["nonfinite"] = skipped.any()
        self.nonfinite_guard.count(skipped, not_stepped=torch.stack([skipped_g, outputs.pop("not_stepped_d")]))
        if is_logging_step(self.trainer):  # Lightning writes step values on these batches only
            log_training_step(self, losses, outputs, train_d)
        outputs.update(
            loss=losses["loss_g"],
            estimate=detached(forward["estimate"]),
            reference=detached(forward["reference"]),
            input=detached(forward["input"]),
            length=forward["length"],
            d_stepped=train_d,
        )
        return outputs

    def _discriminator_step(self, opt_d: Any, batch: Batch, forward: Forward, train_d: bool) -> dict[str, Any]:
        if not train_d:
            nan = torch.full((), math.nan, device=self.device)
            skipped = torch.zeros((), dtype=torch.bool, device=self.device)
            return dict(d_real=nan, d_fake=nan, grad_norm_d=nan, losses_d={}, skipped_d=skipped, not_stepped_d=skipped)
        with self.toggled_optimizer(opt_d), parametrize.cached():
            loss_d, extra = self.discriminator_loss(batch, forward)
            grad_norm, skipped = self._backward_and_clip(loss_d, opt_d, self.discriminator, self.grad_clip_d)
            asked = extra.pop("skip_update", None)
            not_stepped = skipped if asked is None else skipped | on_any_rank(asked, self.trainer.world_size)
            with self.discriminator_update.measuring(list(self.discriminator.parameters())):
                optimizer_steps.step(self.trainer, opt_d, not_stepped, counted=False)
        extra = {key: detached(value) if isinstance(value, Tensor) else value for key, value in extra.items()}
        extra.update(grad_norm_d=grad_norm, losses_d={"loss_d": loss_d.detach()}, skipped_d=skipped)
        if asked is not None:
            extra["d_update_skipped"] = not_stepped
        extra["not_stepped_d"] = not_stepped
        return extra

    def _generator_step(self, opt_g: Any, batch: Batch, forward: Forward, step: int) -> dict[str, Any]:
        if not self.generator_trains_at(step):
            return self._frozen_generator_step(opt_g, batch, forward)
        adversarial = step >= self.discriminator_start_step
        outputs: dict[str, Any] = {}
        # Weight-normed weights computed once per network in each step (the discriminator's may be called
        # several times): parametrize.cached.
        with self.toggled_optimizer(opt_g), parametrize.cached():
            terms, extra = self.generator_loss(batch, forward, adversarial)
            stacked = torch.stack(list(terms.values()))
            loss_g = stacked.sum()
            if self.term_gradient_interval and step % self.term_gradient_interval == 0:
                outputs["term_grad_norms"] = term_gradient_norms(terms, self.gradient_probe(forward))
            objective, outputs["objective_logs"] = self.generator_objective(loss_g, terms, forward)
            grad_norm, skipped = self._backward_and_clip(objective, opt_g, self.generator, self.grad_clip_g)
            optimizer_steps.step(self.trainer, opt_g, skipped, counted=True)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator, skipped)
        losses = dict(zip(terms, stacked.detach().unbind()))  # two ops, not one detach per term
        losses["loss_g"] = loss_g.detach()
        outputs.update(extra, grad_norm_g=grad_norm, losses=losses, skipped_g=skipped)
        return outputs

    def _frozen_generator_step(self, opt_g: Any, batch: Batch, forward: Forward) -> dict[str, Any]:
        """The discriminator warm-up's generator step: its loss terms for the log, no backward, no update; the batch
        still counts one step."""
        with torch.no_grad(), parametrize.cached():
            terms, extra = self.generator_loss(batch, forward, True)
            stacked = torch.stack(list(terms.values()))
        optimizer_steps.count_without_stepping(opt_g)
        losses = {**dict(zip(terms, stacked.unbind())), "loss_g": stacked.sum()}
        not_skipped = torch.zeros((), dtype=torch.bool, device=self.device)
        nan = torch.full((), math.nan, device=self.device)
        return {**extra, "grad_norm_g": nan, "losses": losses, "skipped_g": not_skipped}

    def _backward_and_clip(
        self, loss: Tensor, optimizer: Any, network: nn.Module, clip: float | None
    ) -> tuple[Tensor, Tensor]:
        """Zero ``network``'s gradients, backpropagate ``loss`` and clip: ``(gradient norm, skip)``, on the device."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        return optimizer_steps.clip(self.trainer, optimizer, network, clip, self.device)

    # ------------------------------------------------------------- evaluation with the generator EMA
    @property
    def evaluated_weights(self) -> str:
        """``ema`` when validation, test and prediction use the generator's average (``ema_decay``), else ``raw``."""
        return "raw" if self.generator_ema is None else "ema"

    def use_generator_ema(self, on: bool) -> None:
        """Copy the generator EMA into the generator for an evaluation (``on``) or give it back its own weights."""
        if self.generator_ema is not None:
            (self.generator_ema.swap_in if on else self.generator_ema.swap_out)(self.generator)

    def on_validation_epoch_start(self) -> None:
        self.use_generator_ema(True)

    def on_validation_epoch_end(self) -> None:
        self.use_generator_ema(False)

    def on_test_epoch_start(self) -> None:
        self.use_generator_ema(True)

    def on_test_epoch_end(self) -> None:
        self.use_generator_ema(False)

    def on_predict_epoch_start(self) -> None:
        self.use_generator_ema(True)

    def on_predict_epoch_end(self) -> None:
        self.use_generator_ema(False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_guard.save(checkpoint)
        if self.generator_ema is not None and self.generator_ema.swapped_in:  # saved during an evaluation
            weights = self.generator_ema.generator_weights(self.generator)
            checkpoint["state_dict"].update({f"generator.{name}": value for name, value in weights.items()})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_guard.load(checkpoint)
        if "state_dict" in checkpoint:
            fitting = self._trainer is not None and self._trainer.state.fn == "fit"
            adapt_generator_ema_weights(checkpoint["state_dict"], self.generator_ema is not None, fitting)


def detached(tensor: Tensor) -> Tensor:
    """``tensor`` without its graph: ``tensor.detach()`` when it has one, else itself (a detach is an op dispatched)."""
    return tensor.detach() if tensor.requires_grad else tensor
