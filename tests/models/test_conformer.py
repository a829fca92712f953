"""The conformer as CMGAN builds it: Shaw relative positions, dropout placement, BatchNorm whose running
statistics are the same on every DDP rank."""

import threading

import pytest
import torch
import torch.distributed as dist
from torch import nn

from codecgan.models.conformer import (
    ConformerBlock,
    ConvolutionModule,
    RankConsistentBatchNorm1d,
    RelativePositionSelfAttention,
)


def reference_attention(attention: RelativePositionSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Shaw et al.'s logits written out: ``(q_i . k_j + q_i . E[clamp(i - j)]) / sqrt(d)``, softmax, values."""
    heads, limit = attention.heads, attention.max_relative_position
    batch, length, channels = x.shape
    split = lambda t: t.view(batch, length, heads, channels // heads).transpose(1, 2)  # noqa: E731
    x = attention.norm(x)
    query = split(attention.query(x))
    key, value = map(split, attention.key_value(x).chunk(2, dim=-1))
    logits = torch.empty(batch, heads, length, length)
    for i in range(length):
        for j in range(length):
            embedding = attention.relative_position.weight[max(-limit, min(limit, i - j)) + limit]
            logits[:, :, i, j] = (query[:, :, i] * (key[:, :, j] + embedding)).sum(-1)
    attended = (logits / (channels // heads) ** 0.5).softmax(-1) @ value
    return attention.out(attended.transpose(1, 2).reshape(batch, length, channels))


@pytest.mark.parametrize("max_relative_position", [512, 2])
def test_attention_adds_shaws_relative_position_logits(max_relative_position):
    torch.manual_seed(0)
    attention = RelativePositionSelfAttention(8, heads=2, max_relative_position=max_relative_position).eval()
    nn.init.normal_(attention.relative_position.weight)
    x = torch.randn(3, 7, 8)
    assert torch.allclose(attention(x), reference_attention(attention, x), atol=1e-5)


@pytest.mark.parametrize("head_channels", [4, 8, 16])
def test_relative_position_logits_scale_the_queries_as_if_they_scaled_the_logits(head_channels):
    """The scale goes on the queries (cheaper); for a power-of-four head width the logits are bit-identical."""
    torch.manual_seed(0)
    attention = RelativePositionSelfAttention(2 * head_channels, heads=2)
    nn.init.normal_(attention.relative_position.weight)
    query = torch.randn(3, 2, 9, head_channels)
    positions = torch.arange(9)
    table = attention.relative_position((positions[:, None] - positions[None, :]) + attention.max_relative_position)
    scaled_logits = torch.einsum("nhid,ijd->nhij", query, table) * head_channels**-0.5
    logits = attention.relative_position_logits(query)
    if head_channels in (4, 16):
        assert torch.equal(logits, scaled_logits)
    assert torch.allclose(logits, scaled_logits, rtol=1e-6, atol=1e-6)


def test_relative_position_table_has_cmgans_shape_and_learns():
    attention = ConformerBlock(64).attention
    assert attention.relative_position.weight.shape == (2 * 512 + 1, 16)  # CMGAN: max_pos_emb 512, dim_head 64 / 4
    attention(torch.randn(2, 5, 64)).sum().backward()
    assert attention.relative_position.weight.grad.abs().sum() > 0


def test_attention_drops_its_output_only():
    torch.manual_seed(0)
    attention = RelativePositionSelfAttention(8, heads=2, dropout=0.2)
    assert [module for module in attention.modules() if isinstance(module, nn.Dropout)] == [attention.dropout]
    x = torch.randn(2, 6, 8)
    attention.dropout.p = 0.0  # with its one dropout off, training mode computes exactly what eval mode does
    assert torch.equal(attention.train()(x), attention.eval()(x))
    attention.dropout.p = 0.999
    assert (attention.train()(x) == 0).float().mean() > 0.9  # it sits after the output projection


def test_convolution_module_normalizes_with_batchnorm_and_has_no_dropout_by_default():
    module = ConvolutionModule(64)
    kinds = [type(layer) for layer in module.layers]
    assert kinds == [nn.Conv1d, nn.GLU, nn.Conv1d, RankConsistentBatchNorm1d, nn.SiLU, nn.Conv1d]
    depthwise, norm = module.layers[2], module.layers[3]
    assert depthwise.groups == 128 and depthwise.kernel_size == (31,) and depthwise.padding == (15,)
    assert isinstance(norm, nn.BatchNorm1d) and norm.num_features == 128
    assert module.dropout.p == 0.0
    assert not any(isinstance(layer, nn.LayerNorm) for layer in module.layers)
    assert module(torch.randn(2, 40, 64)).shape == (2, 40, 64)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_in_one_process_is_torchs(momentum):
    torch.manual_seed(0)
    ours, torchs = RankConsistentBatchNorm1d(6, momentum=momentum), nn.BatchNorm1d(6, momentum=momentum)
    for _ in range(3):
        x = torch.randn(4, 6, 9) * 3 + 1
        assert torch.equal(ours(x), torchs(x))
    assert torch.equal(ours.running_mean, torchs.running_mean) and torch.equal(ours.running_var, torchs.running_var)
    ours.eval(), torchs.eval()
    assert torch.equal(ours(x), torchs(x))


class ThreadRanks:
    """Two threads stand in for two DDP ranks: ``all_gather_into_tensor`` exchanges their tensors through a
    barrier."""

    def __init__(self, world_size: int = 2) -> None:
        self.world_size, self.slots, self.calls = world_size, [None] * world_size, 0
        self.barrier, self.local = threading.Barrier(world_size), threading.local()

    def all_gather_into_tensor(self, output: torch.Tensor, tensor: torch.Tensor) -> None:
        self.calls += 1
        self.slots[self.local.rank] = tensor.clone()
        self.barrier.wait()
        output.copy_(torch.cat(self.slots))
        self.barrier.wait()

    def run(self, work) -> list:
        results = [None] * self.world_size

        def rank_main(rank: int) -> None:
            self.local.rank = rank
            results[rank] = work(rank)

        threads = [threading.Thread(target=rank_main, args=(rank,)) for rank in range(self.world_size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        return results


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_stats_are_the_whole_batchs_on_every_rank(monkeypatch, momentum):
    ranks = ThreadRanks()
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: ranks.world_size)
    monkeypatch.setattr(dist, "all_gather_into_tensor", ranks.all_gather_into_tensor)
    torch.manual_seed(0)
    batches = [torch.randn(3, 4, 10) * 2 + 5, torch.randn(3, 4, 10) * 0.5 - 1]  # each rank's own batch
    layers = [RankConsistentBatchNorm1d(4, momentum=momentum) for _ in range(ranks.world_size)]
    outputs = ranks.run(lambda rank: layers[rank](batches[rank]))

    for rank, batch in enumerate(batches):  # each rank normalizes with its own batch, as CMGAN under DDP
        assert torch.allclose(outputs[rank], nn.BatchNorm1d(4)(batch), atol=1e-5)
    whole = nn.BatchNorm1d(4, momentum=momentum)
    whole(torch.cat(batches))
    for layer in layers:
        assert torch.equal(layer.running_mean, layers[0].running_mean)
        assert torch.equal(layer.running_var, layers[0].running_var)
        assert torch.allclose(layer.running_mean, whole.running_mean, atol=1e-6)
        assert torch.allclose(layer.running_var, whole.running_var, atol=1e-5)
        assert layer.num_batches_tracked == 1

    calls = ranks.calls
    for layer, batch in zip(layers, batches):  # evaluation (uneven batch counts per rank) never communicates
        layer.eval()(batch)
    assert ranks.calls == calls == ranks.world_size
