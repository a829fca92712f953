"""`compile: reduce-overhead` is ready for CUDA graphs: generator and discriminator compile without a graph break,
and a compiled batch that does not log reads nothing back from the device. Checked on the CPU with the
`aot_eager` backend, which traces forward and backward exactly as inductor does but generates no kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from bench.host_overhead import count_one_batch
from codecgan import CodecGAN
from tests.conftest import EXPERIMENTS

COMPILED = ["--model.init_args.compile", "reduce-overhead", "--model.init_args.compile_backend", "aot_eager"]


MOST_GRAPHS = {"codec_tiny": 4, "enhance_tiny": 5}


@pytest.mark.parametrize("config", ["codec_tiny", "enhance_tiny"])
@pytest.mark.slow
def test_the_compiled_step_has_no_graph_break_and_no_host_read(config: str, tmp_path: Path) -> None:
    torch._dynamo.reset()
    counters.clear()
    try:
        counts = count_one_batch(EXPERIMENTS / f"{config}.yaml", tmp_path, COMPILED, keep_stacks=True)
        breaks, graphs = dict(counters["graph_break"]), counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    assert breaks == {}
    # The generator, and the discriminator at its two batch sizes (real and generated audio together in its own
    # step, one at a time in the generator's), each compiled once: the shapes are static. The enhancer's metric
    # discriminator runs once more in eval mode (the prediction MetricDiscriminatorMonitor correlates), a graph of its own.
    assert graphs <= MOST_GRAPHS[config], graphs
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)


def test_an_unknown_compile_mode_is_named() -> None:
    with pytest.raises(ValueError, match="compile must be true, false or one of"):
        CodecGAN(torch.nn.Identity(), torch.nn.Identity(), compile="fastest")
