"""Window plans: every sample is covered, cross-fade weights sum to one, each window holds its context."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from codecgan.inference.chunking import chunk_windows, process_in_chunks

SETTINGS = [
    (length, chunk, overlap, context)
    for length, chunk, overlap, context in itertools.product(range(1, 48, 3), range(3, 20, 2), range(0, 5), range(0, 4))
    if 2 * overlap + 2 * context < chunk
]


@pytest.mark.parametrize("align", [1, 4])
def test_an_identity_process_reproduces_its_input_under_every_plan(align):
    for length, chunk, overlap, context in SETTINGS:
        audio = torch.rand(2, 1, length * align)
        output = process_in_chunks(lambda piece: piece, audio, chunk * align, overlap * align, context * align, align)
        torch.testing.assert_close(output, audio, msg=lambda message: f"{(length, chunk, overlap, context)}: {message}")


def test_windows_have_the_chunk_length_and_hold_their_context():
    for length, chunk, overlap, context in SETTINGS:
        windows = chunk_windows(length, chunk, overlap, context)
        assert windows[0].keep_start == 0 and windows[-1].keep_stop == length
        for window, following in zip(windows, windows[1:]):
            assert following.keep_start == window.keep_stop - overlap  # consecutive stretches share the fade
        for window in windows:
            assert window.stop - window.start == min(chunk, length)
            assert window.start == 0 or window.start <= window.keep_start - context
            assert window.stop == length or window.stop >= window.keep_stop + context


def test_a_convolution_is_reproduced_exactly_once_the_context_covers_it():
    torch.manual_seed(0)
    convolution = nn.Conv1d(1, 1, kernel_size=9, padding=4, bias=False)  # 4 samples of context each side
    audio = torch.randn(1, 1, 1000)
    with torch.no_grad():
        whole = convolution(audio)
        covered = process_in_chunks(convolution, audio, 100, 10, context=4)
        uncovered = process_in_chunks(convolution, audio, 100, 10, context=0)
    torch.testing.assert_close(covered, whole, rtol=0, atol=1e-6)
    assert (uncovered - whole).abs().max() > 1e-3  # the windows' zero padding shows within the fades


@pytest.mark.parametrize(("chunk", "overlap", "context"), [(10, 5, 0), (10, 2, 3), (0, 0, 0), (10, -1, 0)])
def test_plans_that_leave_no_room_are_refused_with_the_numbers(chunk, overlap, context):
    with pytest.raises(ValueError, match=f"got chunk {chunk}, overlap {overlap} and context {context}"):
        chunk_windows(100, chunk, overlap, context)
