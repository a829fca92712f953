"""EnCodec's gradient loss balancer: each term's gradient at the generator output normalised to a fixed share.

Definition (Défossez et al., "High Fidelity Neural Audio Compression", §3.4; audiocraft 1.3.0
``audiocraft/losses/balancer.py``, which ``tests/fixtures/balancer/`` runs). For the generator output ``x``
([B, ...]) and loss terms ℓ_i with weights w_i ≥ 0:

- g_i = ∂ℓ_i/∂x, one ``autograd.grad`` per term through the loss alone (the graph is kept for the backward);
- n_i = mean over the batch of the per-item norms ‖g_i[b]‖₂ (under DDP the batch-size-weighted mean over all ranks,
  one ``all_reduce`` of the stacked norms, so every rank holds the same statistics);
- a_i = the debiased exponential moving average of n_i with decay β: a_i = S_i / C_i, S_i ← β S_i + n_i,
  C_i ← β C_i + 1 (``S``, ``C``: the buffers ``ema_norm_sum`` and ``ema_weight_sum``, saved in the checkpoint, so a
  resumed run continues exactly);
- G = Σ_i (w_i / Σ_j w_j) · R · g_i / (ε + a_i), with R the total norm, and the model is trained with
  ``x.backward(G)``.

So, on average, term i makes up the fraction w_i/Σw of the gradient that reaches the generator, whatever its own
scale: the weights read as shares. Σ_j runs over the terms present in the step (the adversarial terms are absent
during the generator-only warm-up). A term of weight 0 is not differentiated and takes no part (audiocraft logs
such terms only). A step with a non-finite norm leaves the moving average untouched (its update is skipped
anyway), decided on the device from the all-reduced norms, so every rank decides the same.

Under DDP audiocraft keeps a per-rank average and averages the averages; averaging the norms first and keeping one
rank-identical average is the same number when every rank has the same batch size (the average is linear).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from codecgan.config_error import ConfigError

EPSILON = 1e-12  # audiocraft's


class LossBalancer(nn.Module):
    """Turns loss terms on the generator output into the balanced gradient ``G`` at that output.

    Args:
        weights: each balanced term's weight (≥ 0, at least one > 0), keyed by the term's name.
        ema_decay: β of the moving average of the gradient norms, in (0, 1]; 1 is a plain running mean.
        total_norm: R, the norm the balanced gradient has on average when the terms' gradients are aligned.
        config_key: where the options sit in the config, for error messages.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        ema_decay: float = 0.999,
        total_norm: float = 1.0,
        config_key: str = "loss_balancer",
    ) -> None:
        super().__init__()
        for name, weight in weights.items():
            if not weight >= 0:
                raise ConfigError(f"{config_key}.weights.{name} must be ≥ 0, got {weight}.")
        if not any(weight > 0 for weight in weights.values()):
            raise ConfigError(f"{config_key}.weights needs a weight above 0, got {dict(weights)}.")
        if not 0 < ema_decay <= 1:
            raise ConfigError(f"{config_key}.ema_decay must lie in (0, 1] (EnCodec: 0.999), got {ema_decay}.")
        if not total_norm > 0:
            raise ConfigError(f"{config_key}.total_norm must be > 0 (EnCodec: 1), got {total_norm}.")
        self.weights = {name: float(weight) for name, weight in weights.items()}
        self.ema_decay, self.total_norm = float(ema_decay), float(total_norm)
        self._index = {name: i for i, name in enumerate(self.weights)}
        self._device_constants: dict[tuple[tuple[str, ...], torch.device], tuple[Tensor, Tensor]] = {}
        # float64, as audiocraft's Python-float average: a 0.999 average of 10^4 steps in float32 drifts.
        self.register_buffer("ema_norm_sum", torch.zeros(len(self.weights), dtype=torch.float64))
        self.register_buffer("ema_weight_sum", torch.zeros(len(self.weights), dtype=torch.float64))

    def forward(self, terms: Mapping[str, Tensor], output: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The balanced gradient at ``output`` (its shape and dtype) of ``terms`` (scalars depending on ``output``,
        each named in ``weights``), and per term ``weight_<name>`` (the factor its own gradient got this step,
        w_i R / (Σw (ε + a_i))) and ``share_<name>`` (its fraction of Σ_i factor_i · n_i this step), 0-dim tensors."""
        unknown = set(terms) - set(self.weights)
        if unknown:
            raise KeyError(f"LossBalancer has no weight for {sorted(unknown)}; it balances {sorted(self.weights)}.")
        active = [name for name in terms if self.weights[name] > 0]
        zero = torch.zeros((), dtype=torch.float32, device=output.device)
        stats = {f"{kind}_{name}": zero for name in terms for kind in ("weight", "share")}
        if not active:  # e.g. only weight-0 terms during the generator-only warm-up: no balanced gradient
            return torch.zeros_like(output), stats
        gradients = [torch.autograd.grad(terms[name], output, retain_graph=True)[0] for name in active]
        dims = tuple(range(1, output.dim()))
        norms = torch.stack([torch.linalg.vector_norm(g, dim=dims).mean() for g in gradients]).double()
        norms = self._average_over_ranks(norms, output.shape[0])
        index, weights = self._constants(tuple(active), norms.device)
        norm_sum = self.ema_norm_sum[index] * self.ema_decay + norms
        weight_sum = self.ema_weight_sum[index] * self.ema_decay + 1.0
        finite = torch.isfinite(norms).all()
        self.ema_norm_sum[index] = torch.where(finite, norm_sum, self.ema_norm_sum[index])
        self.ema_weight_sum[index] = torch.where(finite, weight_sum, self.ema_weight_sum[index])
        averages = norm_sum / weight_sum
        factors = weights / weights.sum() * self.total_norm / (EPSILON + averages)
        balanced = torch.zeros_like(output)
        for gradient, factor in zip(gradients, factors.to(output.dtype).unbind()):
            balanced.addcmul_(gradient, factor)
        pulls = factors * norms
        shares = pulls / pulls.sum()
        for name, factor, share in zip(active, factors.float().unbind(), shares.float().unbind()):
            stats[f"weight_{name}"], stats[f"share_{name}"] = factor, share
        return balanced, stats

    def _constants(self, active: tuple[str, ...], device: torch.device) -> tuple[Tensor, Tensor]:
        """The buffer indices and the weights of the ``active`` terms on ``device``, made once per set of terms: a
        tensor built from host values every step would be a copy that waits for the device."""
        key = (active, device)
        if key not in self._device_constants:
            index = torch.tensor([self._index[name] for name in active], device=device)
            weights = torch.tensor([self.weights[name] for name in active], dtype=torch.float64, device=device)
            self._device_constants[key] = (index, weights)
        return self._device_constants[key]

    @staticmethod
    def _average_over_ranks(norms: Tensor, batch_size: int) -> Tensor:
        """The batch-size-weighted mean of ``norms`` over the DDP ranks (one all_reduce); ``norms`` on one process."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return norms
        weighted = torch.cat([norms * batch_size, norms.new_full((1,), float(batch_size))])
        dist.all_reduce(weighted)
        return weighted[:-1] / weighted[-1]


def balancer_from_options(
    options: Mapping[str, object] | None, term_names: Mapping[str, str], config_key: str
) -> LossBalancer | None:
    """The ``LossBalancer`` a config asks for (``None``: none): ``options`` holds ``weights`` (by config name, each a
    key of ``term_names``, which maps it to the loss term's name; a missing one weighs 0), ``ema_decay`` and
    ``total_norm``. A ``ConfigError`` names an unknown key."""
    if options is None:
        return None
    unknown = set(options) - {"weights", "ema_decay", "total_norm"}
    if unknown:
        raise ConfigError(
            f"{config_key} has unknown keys {sorted(unknown)}; allowed: ['ema_decay', 'total_norm', 'weights']."
        )
    weights = dict(options.get("weights") or {})
    unknown = set(weights) - set(term_names)
    if unknown:
        raise ConfigError(f"{config_key}.weights has unknown keys {sorted(unknown)}; allowed: {sorted(term_names)}.")
    named = {term_names[key]: float(weights.get(key, 0.0)) for key in term_names}
    for key, term in term_names.items():  # errors name the config key, not the term
        if not named[term] >= 0:
            raise ConfigError(f"{config_key}.weights.{key} must be ≥ 0, got {named[term]}.")
    return LossBalancer(
        named, float(options.get("ema_decay", 0.999)), float(options.get("total_norm", 1.0)), config_key
    )
