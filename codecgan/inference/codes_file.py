"""A codes file: what ``codecgan encode`` writes for one input, and ``codecgan decode`` reads.

A ``.pt`` file (``torch.save`` of a dict of a tensor, ints and a format string, so ``torch.load(path,
weights_only=True)`` opens it) with:

    codes              [channels, n_codebooks, frames] int16 (int32 for codebooks over 32,768 codes)
    n_codebooks        codebooks used (codes.shape[1]); decoding with fewer is a lower bitrate
    codebook_size      codes per codebook
    hop_length         samples per frame at sample_rate
    sample_rate        Hz, the model's
    length             samples per channel at sample_rate (frames * hop_length, less the padding)
    input_sample_rate  Hz, the encoded file's
    input_length       frames per channel in the encoded file

The bitrate per channel is ``n_codebooks * log2(codebook_size) * sample_rate / hop_length`` bits/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

CODES_SUFFIX = ".pt"
FORMAT = "codecgan-codes/1"
_INTEGERS = ("n_codebooks", "codebook_size", "hop_length", "sample_rate", "length", "input_sample_rate", "input_length")


class CodesFileError(ValueError):
    """A codes file that cannot be read or does not fit the codec: ``path: problem``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def bitrate_kbps(n_codebooks: int, codebook_size: int, sample_rate: int, hop_length: int) -> float:
    """Kilobits per second per channel: ``n_codebooks * log2(codebook_size)`` bits per frame at
    ``sample_rate / hop_length`` frames per second."""
    return n_codebooks * math.log2(codebook_size) * sample_rate / hop_length / 1000


@dataclass(frozen=True)
class CodesFile:
    """One encoded file (see the module docstring for the fields)."""

    codes: Tensor
    codebook_size: int
    hop_length: int
    sample_rate: int
    length: int
    input_sample_rate: int
    input_length: int

    @property
    def n_codebooks(self) -> int:
        return self.codes.shape[1]

    @property
    def bitrate_kbps(self) -> float:
        return bitrate_kbps(self.n_codebooks, self.codebook_size, self.sample_rate, self.hop_length)

    def save(self, path: str | Path) -> None:
        """Write to ``path``, creating its folders; codes are stored in the smallest integer type that holds them."""
        dtype = torch.int16 if self.codebook_size <= 2**15 else torch.int32
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = {name: int(getattr(self, name)) for name in _INTEGERS}
        torch.save({"format": FORMAT, "codes": self.codes.detach().cpu().to(dtype), **fields}, path)

    @classmethod
    def load(cls, path: str | Path) -> CodesFile:
        """Read a file ``save`` wrote; raises ``CodesFileError`` naming ``path`` when it is not one."""
        try:
            saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CodesFileError(path, "file does not exist") from None
        except Exception as error:  # torch.load raises pickle, zip and runtime errors for non-codes files
            raise CodesFileError(path, f"not a codes file ({type(error).__name__}: {error})") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise CodesFileError(path, f"not a codes file written by codecgan encode (no format {FORMAT!r}).")
        missing = [name for name in _INTEGERS if not isinstance(saved.get(name), int)]
        if missing:
            raise CodesFileError(path, f"the codes file lacks {', '.join(missing)}.")
        codes = saved.get("codes")
        if not isinstance(codes, Tensor) or codes.dim() != 3 or codes.shape[1] != saved.get("n_codebooks"):
            raise CodesFileError(path, "codes are not [channels, n_codebooks, frames] with n_codebooks codebooks.")
        return cls(codes.long(), **{name: int(saved[name]) for name in _INTEGERS if name != "n_codebooks"})
