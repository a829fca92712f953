"""``torch.compile`` for a GAN's two networks (``model.init_args.compile``, ``compile_backend``).

Each network is compiled in place (``nn.Module.compile``), so parameter names and checkpoints are unchanged.
``reduce-overhead`` uses CUDA graphs: each network's forward and backward is captured once its shapes are known
and replayed with one launch, which needs fixed crop lengths and a step without host reads (the loop keeps both).
"""

from __future__ import annotations

from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(compile: bool | str) -> str | None:
    """The ``torch.compile`` mode that the ``compile`` setting asks for (``true``: ``default``), or ``None``."""
    mode = "default" if compile is True else (compile or None)
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f"compile must be true, false or one of {COMPILE_MODES}, got {compile!r}.")
    return mode


def compile_networks(networks: list[nn.Module], mode: str, backend: str) -> None:
    """Compile each of ``networks`` in place with ``mode`` (inductor) or ``backend`` (any other, e.g. ``aot_eager``,
    which traces forward and backward without generating kernels: a quick check for graph breaks)."""
    # GradientBalance differentiates each loss term separately (retain_graph=True), which compiled backwards with
    # donated buffers refuse; donation saves little memory next to the activations.
    import torch._functorch.config as functorch_config

    functorch_config.donated_buffer = False
    options = {"mode": mode} if backend == "inductor" else {"backend": backend}
    for network in networks:
        network.compile(**options)
