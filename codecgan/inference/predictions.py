"""What each family's ``predict_step`` returns for one ``PredictionFiles`` item (``codecgan predict``).

A prediction is the item's description (``path``, ``name``, ``index``, ``file_sample_rate``,
``file_frames``) with ``audio`` ``[channels, T]`` at ``sample_rate``; a codec's also holds its ``codes``
(a ``CodesFile``). An item that could not be read passes through with its ``error``. The windows are
the commands' defaults (``EnhanceSettings``, ``CodecChunking``), so a file of any length fits in memory.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from codecgan.inference.codec_chunks import decode_in_chunks, encode_in_chunks
from codecgan.inference.codes_file import CodesFile
from codecgan.inference.enhancement import enhance

Prediction = dict[str, Any]


def codec_prediction(generator: nn.Module, item: dict[str, Any], sample_rate: int) -> Prediction:
    """The item's codes (all codebooks) and their decoding."""
    if "error" in item:
        return item
    audio = item["audio"].unsqueeze(1)
    codes = encode_in_chunks(generator, audio, sample_rate)
    decoded = decode_in_chunks(generator, codes, audio.shape[-1], sample_rate)
    codes_file = CodesFile(
        codes,
        generator.codebook_size,
        generator.hop_length,
        sample_rate,
        audio.shape[-1],
        item["file_sample_rate"],
        item["file_frames"],
    )
    return {**_described(item), "audio": decoded[:, 0], "sample_rate": sample_rate, "codes": codes_file}


def enhancement_prediction(generator: nn.Module, item: dict[str, Any], sample_rate: int) -> Prediction:
    """The item enhanced, channel by channel."""
    if "error" in item:
        return item
    enhanced = enhance(generator, item["audio"].unsqueeze(1), sample_rate)
    return {**_described(item), "audio": enhanced[:, 0], "sample_rate": sample_rate}


def _described(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "audio"}
