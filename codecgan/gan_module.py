"""The adversarial training loop shared by every model family.

`GANModule` alternates a discriminator step and a generator step on every batch with Lightning's
manual optimization. Subclasses say *what* the generator computes and *which* losses each network
minimises (`generator_forward`, `discriminator_loss`, `generator_loss`); this file says *how* the
two networks are stepped, and nothing else.

Conventions that matter for diagnosis, resume and speed:

- ``trainer.global_step`` counts **one per batch** (``codecgan.optimizer_steps``): the generator's
  optimizer step is counted, the discriminator's is not, so ``max_steps``, ``val_check_interval``
  and checkpoint intervals count batches.
- The torch RNG is reseeded from ``(seed, global_step, rank)`` at the start of every batch, so
  dropout and quantizer dropout draw the same numbers in a resumed run as in a straight one.
- A step whose gradient norm is not finite leaves its network's weights and optimizer state
  untouched. The decision stays on the device (fused optimizers skip inside their kernel), so a
  batch that does not log never waits for the device; the counters ``nonfinite_steps`` and
  ``nonfinite_in_a_row`` are buffers updated on the device and read at logging steps, where
  ``max_nonfinite_in_a_row`` such batches in a row stop the run with ``NonFiniteTrainingError``
  (the skipped steps changed nothing, so the weights are the last finite ones). The gradients are
  all-reduced before the norm is taken, so every rank decides the same. A non-finite generator
  output makes both networks skip; a non-finite loss skips its own network.
- A learning-rate scheduler steps once per step its optimizer took: the skipped steps read at a
  logging step make the scheduler wait that many batches.
- How far each discriminator step moves the weights, ‖Δθ_D‖² and ‖θ_D‖² per parameter tensor, is
  summed on the device (``_d_update_squares``) and read at logging steps as ``diag/d_update_ratio``,
  so a frozen discriminator is visible without a host read per step.
- Each network's gradients are zeroed immediately before its own backward, and the other
  network's parameters are frozen (``toggled_optimizer``) during it: a stale ``zero_grad`` lets
  generator-step gradients leak into the discriminator step, a known way to make a discriminator
  stop learning (NeMo #7266).
- Under DDP (``strategy: gan_ddp``, ``codecgan.ddp_strategy``) generator and discriminator have a
  DDP wrapper each. A step calls the network it trains through ``self.trained(network)``, so its
  backward all-reduces that network's gradients once; the frozen network is called directly.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.nn.utils import parametrize

from codecgan import (
    ddp_strategy,  # noqa: F401  (registers strategy: gan_ddp)
    optimizer_steps,
)
from codecgan.cadence import is_logging_step
from codecgan.config_error import ConfigError

Batch = dict[str, Tensor]


class NonFiniteTrainingError(RuntimeError):
    """Training produced non-finite gradients for too many batches in a row."""


Forward = dict[str, Any]


SCHEDULER_INTERVALS = ("step", "epoch")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
        discriminator_update_period: the discriminator steps on every ``period``-th batch. The
            schedule depends only on the step counter, so it is identical on every rank (a per-rank
            random skip desynchronises DDP, NeMo #7209).
        grad_clip_g, grad_clip_d: gradient-norm clipping values; ``None`` measures without clipping.
        discriminator_first: step order inside a batch. DAC steps the discriminator first; CMGAN steps
            the generator first and then trains its metric discriminator on the pre-update estimate.
        max_nonfinite_in_a_row: batches in a row with a skipped (non-finite) step before training stops.
        compile: ``torch.compile`` generator and discriminator in place (parameter names and
            checkpoints unchanged): ``true`` or a mode, ``default``, ``reduce-overhead`` (CUDA graphs:
            each network's forward and backward is captured once its shapes are known and replayed with
            one launch; needs fixed crop lengths and no host reads, which the loop guarantees),
            ``max-autotune`` or ``max-autotune-no-cudagraphs``.
        compile_backend: ``torch.compile`` backend; ``aot_eager`` traces forward and backward without
            generating kernels (a quick check for graph breaks).
        init_from: a ``codecgan fit`` checkpoint whose generator and discriminator weights a fresh run starts
            from; optimizers, schedulers and step counters start anew from this run's config, so a changed
            learning rate or loss weight applies (``codecgan confirm`` starts its arms this way). A run resumed
            with ``--ckpt_path`` restores its own checkpoint over these weights.
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
    ) -> None:
        super().__init__()
        if discriminator_start_step < 0:
            raise ValueError(f"discriminator_start_step must be >= 0, got {discriminator_start_step}.")
        if max_nonfinite_in_a_row < 1:
            raise ValueError(f"max_nonfinite_in_a_row must be >= 1, got {max_nonfinite_in_a_row}.")
        if discriminator_update_period < 1:
            raise ValueError(f"discriminator_update_period must be >= 1, got {discriminator_update_period}.")
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}.")
        compile_mode = "default" if compile is True else (compile or None)
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile must be true, false or one of {COMPILE_MODES}, got {compile!r}.")
        for name, value in (("grad_clip_g", grad_clip_g), ("grad_clip_d", grad_clip_d)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive number or null, got {value}.")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.scheduler_g = scheduler_g or _no_scheduler
        self.scheduler_d = scheduler_d or _no_scheduler
        self.scheduler_interval = scheduler_interval
        self.discriminator_start_step = discriminator_start_step
        self.discriminator_update_period = discriminator_update_period
        self.grad_clip_g = grad_clip_g
        self.grad_clip_d = grad_clip_d
        self.discriminator_first = discriminator_first
        self.max_nonfinite_in_a_row = max_nonfinite_in_a_row
        self.compile_mode, self.compile_backend = compile_mode, compile_backend
        self.init_from = init_from
        self.init_from = init_from
        # Buffers, so that they are checkpointed and a resumed run keeps counting; updated on the device.
        self.register_buffer("nonfinite_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("nonfinite_in_a_row", torch.zeros((), dtype=torch.long))
        # Skipped steps of [generator, discriminator] not yet read back; read at logging steps.
        self.register_buffer("unread_skipped_steps", torch.zeros(2, dtype=torch.long), persistent=False)
        # Per discriminator parameter tensor, Σ‖Δθ‖² then Σ‖θ‖² over the discriminator steps not yet read back
        # (diag/d_update_ratio): made at the first discriminator step on its device, read at logging steps.
        self._d_update_squares: list[Tensor] = []
        # Batches each scheduler still waits because its optimizer skipped steps (host ints, checkpointed).
        self.scheduler_waits = [0, 0]
        # Set by the GradientBalance callback: measure each generator loss term's gradient at the
        # generator output every N batches (0 = never).
        self.term_gradient_interval = 0
        # DDP wrappers by network, set by GANDDPStrategy; not submodules, so parameter names are unchanged.
        self._ddp_wrappers: dict[nn.Module, nn.Module] = {}
        self._fit_start_step = 0
        self._batches_this_fit = 0

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

    def gradient_probe(self, forward: Forward) -> tuple[Tensor, ...]:
        """The generator output tensors every loss term depends on (for ``term_grad_norms``)."""
        return (forward["estimate"],)

    # ---------------------------------------------------------------------------- optimization
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_from is not None:
            self.load_weights(self.init_from)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        crop = getattr(datamodule, "crop_samples", None)
        if stage == "fit" and crop is not None:
            self.check_crop_length(crop)

    def load_weights(self, checkpoint: str) -> None:
        """Load the generator's and discriminator's weights (``state_dict`` entries ``generator.*`` and
        ``discriminator.*``) of a ``codecgan fit`` checkpoint; a ``ConfigError`` names what is missing."""
        if not os.path.isfile(checkpoint):
            raise ConfigError(f"model.init_args.init_from: no checkpoint file {checkpoint}.")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True).get("state_dict", {})
        for name in ("generator", "discriminator"):
            weights = {key[len(name) + 1 :]: value for key, value in state.items() if key.startswith(name + ".")}
            if not weights:
                raise ConfigError(f"model.init_args.init_from: {checkpoint} holds no {name}.* weights.")
            try:
                getattr(self, name).load_state_dict(weights)
            except RuntimeError as error:
                raise ConfigError(
                    f"model.init_args.init_from: the {name} weights in {checkpoint} do not fit this run's {name} "
                    f"(a different architecture in the config?): {str(error).splitlines()[0]}"
                ) from None

    def check_crop_length(self, crop: int) -> None:
        """Fail at start, naming the key, when ``crop``-sample crops are too short for the discriminator."""
        try:
            with torch.no_grad():
                self.discriminator(torch.zeros(1, 1, crop, device=self.device))
        except RuntimeError as error:
            raise ConfigError(
                f"data.crop_seconds gives {crop}-sample crops, too short for the discriminator "
                f"({type(self.discriminator).__name__}) to process: {error}. Use longer crops or "
                "smaller discriminator windows/periods."
            ) from None

    def trained(self, network: nn.Module) -> nn.Module:
        """``network`` as the step that trains it must call it: through its own DDP wrapper under
        ``gan_ddp`` (so that this step's backward all-reduces its gradients, once), itself otherwise.
        The network a step keeps frozen is called directly; so is every network outside training."""
        return self._ddp_wrappers.get(network, network) if self.training else network

    def wrap_networks(self, wrap: Any) -> list[nn.Module]:
        """Give generator and discriminator a DDP wrapper each (``wrap(network) -> wrapper``) and return them;
        called by ``GANDDPStrategy``. The wrappers share the networks' parameters."""
        self._ddp_wrappers = {network: wrap(network) for network in (self.generator, self.discriminator)}
        return list(self._ddp_wrappers.values())

    def unwrap_networks(self) -> None:
        self._ddp_wrappers = {}

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Lightning's backward hook (``manual_backward`` calls it after the precision plugin has scaled ``loss``).

        On one device the gradients are taken with ``torch.autograd.grad`` and stored in each trainable
        parameter's ``.grad``. ``loss.backward()`` would give the same values, but autograd's per-parameter
        accumulation dispatches one op per parameter tensor (625 per batch at DAC size), and ``grad`` does
        not. Elsewhere (DDP, whose reducers all-reduce from those accumulation hooks) it is ``loss.backward()``.
        """
        if args or kwargs or not isinstance(self.trainer.strategy, SingleDeviceStrategy):
            loss.backward(*args, **kwargs)
            return
        parameters = [p for p in self.parameters() if p.requires_grad]
        gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
        for parameter, gradient in zip(parameters, gradients):
            if gradient is None:
                continue
            if gradient.stride() != parameter.stride():  # the layout autograd gives .grad: that of the parameter
                gradient = torch.empty_like(parameter).copy_(gradient)
            if parameter.grad is None:
                parameter.grad = gradient
            else:
                parameter.grad += gradient

    def configure_model(self) -> None:
        if self.compile_mode:
            # GradientBalance differentiates each loss term separately (retain_graph=True), which compiled
            # backwards with donated buffers refuse; donation saves little memory next to the activations.
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
            inductor = self.compile_backend == "inductor"
            options = {"mode": self.compile_mode} if inductor else {"backend": self.compile_backend}
            self.generator.compile(**options)
            self.discriminator.compile(**options)

    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_g(self.generator.parameters())
        opt_d = self.optimizer_d(self.discriminator.parameters())
        return [opt_g, opt_d], [self.scheduler_g(opt_g), self.scheduler_d(opt_d)]

    def discriminator_trains_at(self, step: int) -> bool:
        return step >= self.discriminator_start_step and step % self.discriminator_update_period == 0

    def on_fit_start(self) -> None:
        opt_g, opt_d = self.optimizers(use_pl_optimizer=False)
        optimizer_steps.require_device_skipping(self.trainer, {"optimizer_g": opt_g, "optimizer_d": opt_d})
        slow = [
            name
            for name, opt in (("optimizer_g", opt_g), ("optimizer_d", opt_d))
            if not optimizer_steps.skips_on_device(opt)
        ]
        if slow:
            rank_zero_warn(
                f"{' and '.join(slow)} cannot skip a non-finite step on the device, so each of its steps waits for the "
                "device once to read the decision. Fused optimizers skip on the device: set "
                f"model.init_args.{slow[0]}.init_args.fused: true (torch.optim.AdamW, Adam or SGD)."
            )
        if not optimizer_steps.lightning_is_tested():
            rank_zero_warn(
                f"codecgan's step counting was tested with Lightning {', '.join(optimizer_steps.TESTED_LIGHTNING)}.x; "
                "this run checks it at every logging step and stops if Lightning counts differently."
            )

    def on_train_start(self) -> None:
        self._fit_start_step, self._batches_this_fit = self.global_step, 0

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
            for scheduler in self.lr_schedulers():
                scheduler.step()

    def read_step_counters(self) -> None:
        """Read the device-side counters (a host sync; at logging steps only): stop after too many non-finite
        batches in a row, make each scheduler wait for the steps its optimizer skipped, and check the step count."""
        optimizer_steps.check_step_count(self.trainer, self._batches_this_fit, self._fit_start_step)
        in_a_row, skipped_g, skipped_d = torch.cat([self.nonfinite_in_a_row[None], self.unread_skipped_steps]).tolist()
        self.unread_skipped_steps.zero_()
        self.scheduler_waits = [self.scheduler_waits[0] + skipped_g, self.scheduler_waits[1] + skipped_d]
        if in_a_row >= self.max_nonfinite_in_a_row:
            raise NonFiniteTrainingError(
                f"Stopping: {in_a_row} batches in a row had non-finite gradients "
                f"(step {self.global_step}, {int(self.nonfinite_steps)} in total); their optimizer steps were "
                "skipped, so the weights are the last finite ones. Look at the first non-finite loss term in "
                "TensorBoard (train/*) and at diag/nonfinite_steps; lower the learning rate or clip harder."
            )

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        opt_g, opt_d = self.optimizers()
        step = self.global_step
        train_d = self.discriminator_trains_at(step)
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
            self._step_scheduler(scheduler_g, 0)
            if train_d:  # the discriminator's schedule counts its own updates
                self._step_scheduler(scheduler_d, 1)

        losses = {**outputs.pop("losses"), **outputs.pop("losses_d")}
        outputs["losses"] = losses
        skipped_g = outputs.pop("skipped_g")
        skipped = torch.stack([skipped_g, outputs.pop("skipped_d")])
        outputs["nonfinite"] = skipped.any()
        self._count_nonfinite(skipped, not_stepped=torch.stack([skipped_g, outputs.pop("not_stepped_d")]))
        if is_logging_step(self.trainer):  # Lightning writes step values on these batches only
            self._log_step(losses, outputs, train_d)
            self._log_discriminator_update(outputs)
        outputs.update(
            loss=losses["loss_g"],
            estimate=detached(forward["estimate"]),
            reference=detached(forward["reference"]),
            input=detached(forward["input"]),
            length=forward["length"],
            d_stepped=train_d,
        )
        return outputs

    def _log_step(self, losses: dict[str, Tensor], outputs: dict[str, Any], train_d: bool) -> None:
        self.log_dict({f"train/{name}": value for name, value in losses.items() if name not in ("loss_g", "loss_d")})
        self.log("train/loss_g", losses["loss_g"], prog_bar=True)
        if train_d:
            self.log("train/loss_d", losses["loss_d"], prog_bar=True)
            self.log("diag/d_loss_chance", outputs["d_loss_chance"])
            self.log_dict({"train/d_real": outputs["d_real"], "train/d_fake": outputs["d_fake"]})
        self.log("diag/nonfinite_steps", self.nonfinite_steps.float())
        # The learning rates the next step uses (host floats: no device read); LR_VANISHED reads them.
        opt_g, opt_d = self.optimizers(use_pl_optimizer=False)
        self.log_dict({"train/lr_g": opt_g.param_groups[0]["lr"], "train/lr_d": opt_d.param_groups[0]["lr"]})

    def _discriminator_step(self, opt_d: Any, batch: Batch, forward: Forward, train_d: bool) -> dict[str, Any]:
        if not train_d:
            nan = torch.full((), math.nan, device=self.device)
            skipped = torch.zeros((), dtype=torch.bool, device=self.device)
            return {
                "d_real": nan,
                "d_fake": nan,
                "grad_norm_d": nan,
                "losses_d": {},
                "skipped_d": skipped,
                "not_stepped_d": skipped,
            }
        with self.toggled_optimizer(opt_d), parametrize.cached():
            loss_d, extra = self.discriminator_loss(batch, forward)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            grad_norm, skipped = self._clip(opt_d, self.discriminator, self.grad_clip_d)
            asked = extra.pop("skip_update", None)
            not_stepped = skipped if asked is None else skipped | self._on_any_rank(asked)
            parameters = list(self.discriminator.parameters())
            with torch.no_grad():
                before = list(torch._foreach_neg(parameters))
            optimizer_steps.step(self.trainer, opt_d, not_stepped, counted=False)
            self._add_update_norms(parameters, before)
        extra = {key: detached(value) if isinstance(value, Tensor) else value for key, value in extra.items()}
        extra.update(grad_norm_d=grad_norm, losses_d={"loss_d": loss_d.detach()}, skipped_d=skipped)
        if asked is not None:
            extra["d_update_skipped"] = not_stepped
        extra["not_stepped_d"] = not_stepped
        return extra

    def _on_any_rank(self, flag: Tensor) -> Tensor:
        """``flag`` (a bool tensor) or-ed over the ranks, on the device (a collective under DDP, no host read)."""
        if self.trainer.world_size <= 1:
            return flag
        flag = flag.to(torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag.bool()

    @torch.no_grad()
    def _add_update_norms(self, parameters: list[Tensor], before: list[Tensor]) -> None:
        """Add this discriminator step's squared norms, ‖Δθ‖² and ‖θ‖² (after the step) of each parameter tensor, to
        ``_d_update_squares``: with the snapshot ``before`` (-θ from before the step), four foreach ops per step
        whatever the number of tensors. A skipped step adds a zero update. Catches a discriminator whose weights do
        not move (DISCRIMINATOR_FROZEN)."""
        torch._foreach_add_(before, parameters)
        norms = torch._foreach_norm([*before, *parameters])
        if len(self._d_update_squares) != len(norms) or self._d_update_squares[0].device != norms[0].device:
            self._d_update_squares = [torch.zeros_like(norm) for norm in norms]
        torch._foreach_addcmul_(self._d_update_squares, norms, norms)

    def _log_discriminator_update(self, outputs: dict[str, Any]) -> None:
        """Log ``diag/d_update_ratio`` and put it in ``outputs``: sqrt(Σ‖Δθ_D‖² / Σ‖θ_D‖²) over the discriminator steps
        since the last logging step, i.e. the root-mean-square update norm over the root-mean-square weight norm
        (‖Δθ_D‖ / ‖θ_D‖ for one step). Nothing when the discriminator did not step. A host read: at logging steps
        only."""
        if not self._d_update_squares:
            return
        squares = torch.stack(self._d_update_squares).view(2, -1).sum(dim=1)
        torch._foreach_zero_(self._d_update_squares)
        update, total = squares.tolist()
        if total > 0:
            outputs["d_update_ratio"] = math.sqrt(update / total)
            self.log("diag/d_update_ratio", outputs["d_update_ratio"])

    def _generator_step(self, opt_g: Any, batch: Batch, forward: Forward, step: int) -> dict[str, Any]:
        adversarial = step >= self.discriminator_start_step
        outputs: dict[str, Any] = {}
        # Weight-normed weights computed once per network in each step (the discriminator's may be called
        # several times): parametrize.cached.
        with self.toggled_optimizer(opt_g), parametrize.cached():
            terms, extra = self.generator_loss(batch, forward, adversarial)
            stacked = torch.stack(list(terms.values()))
            loss_g = stacked.sum()
            if self.term_gradient_interval and step % self.term_gradient_interval == 0:
                outputs["term_grad_norms"] = self._term_gradient_norms(terms, forward)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            grad_norm, skipped = self._clip(opt_g, self.generator, self.grad_clip_g)
            optimizer_steps.step(self.trainer, opt_g, skipped, counted=True)
        losses = dict(zip(terms, stacked.detach().unbind()))  # two ops, not one detach per term
        losses["loss_g"] = loss_g.detach()
        outputs.update(extra, grad_norm_g=grad_norm, losses=losses, skipped_g=skipped)
        return outputs

    def _term_gradient_norms(self, terms: dict[str, Tensor], forward: Forward) -> dict[str, Tensor]:
        probe = self.gradient_probe(forward)
        norms = {}
        for name, term in terms.items():
            if not term.requires_grad:
                continue
            grads = torch.autograd.grad(term, probe, retain_graph=True, allow_unused=True)
            squares = [g.float().pow(2).sum() for g in grads if g is not None]
            norms[name] = torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=self.device)
        return norms

    def _clip(self, optimizer: Any, network: nn.Module, value: float | None) -> tuple[Tensor, Tensor]:
        """Return the pre-clip gradient norm and whether the step must be skipped (a non-finite norm), both on
        the device; clip to ``value``. Under fp16 the gradients are unscaled first.

        The norm is computed once (foreach kernels) and reused for clipping. Clipping non-finite gradients
        makes them NaN, which does no harm: that step is skipped and the next backward starts from zero.
        """
        optimizer_steps.unscale(self.trainer, optimizer)
        parameters = [p for p in network.parameters() if p.grad is not None]
        if not parameters:
            return torch.zeros((), device=self.device), torch.zeros((), dtype=torch.bool, device=self.device)
        norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
        if value is not None:
            torch.nn.utils.clip_grads_with_norm_(parameters, value, norm)
        return detached(norm), ~torch.isfinite(norm)

    def _count_nonfinite(self, skipped: Tensor, not_stepped: Tensor) -> None:
        """Update the counters on the device: ``skipped`` (``[2]`` bool: generator, discriminator) marks non-finite
        steps, ``not_stepped`` every step an optimizer did not take (for its scheduler)."""
        batch_skipped = skipped.any().long()
        self.nonfinite_steps.add_(batch_skipped)
        self.nonfinite_in_a_row.mul_(batch_skipped).add_(batch_skipped)  # 0 after a finite batch
        self.unread_skipped_steps.add_(not_stepped.long())

    def _step_scheduler(self, scheduler: Any, index: int) -> None:
        """Step ``scheduler`` unless it still waits for steps its optimizer skipped."""
        if self.scheduler_waits[index] > 0:
            self.scheduler_waits[index] -= 1
        else:
            scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        skipped_g, skipped_d = self.unread_skipped_steps.tolist()  # a checkpoint is a host sync anyway
        checkpoint["scheduler_waits"] = [self.scheduler_waits[0] + skipped_g, self.scheduler_waits[1] + skipped_d]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.scheduler_waits = list(checkpoint.get("scheduler_waits", [0, 0]))


def detached(tensor: Tensor) -> Tensor:
    """``tensor`` without its graph: ``tensor.detach()`` when it has one, else itself (a detach is an op dispatched)."""
    return tensor.detach() if tensor.requires_grad else tensor
