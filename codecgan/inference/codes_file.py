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

from codecgan.atomic_file import written_atomically
from codecgan.saved_file_damage import saved_file_damage

CODES_SUFFIX = ".pt"
FORMAT = "codecgan-codes/1"
ENCODE_AGAIN = "encode its audio again with codecgan encode"
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
        """Write to ``path``, whole or not at all (``codecgan.atomic_file``), creating its folders; codes are stored
        in the smallest integer type that holds them."""
        dtype = torch.int16 if self.codebook_size <= 2**15 else torch.int32
        fields = {name: int(getattr(self, name)) for name in _INTEGERS}
        with written_atomically(path) as temporary:
            torch.save({"format": FORMAT, "codes": self.codes.detach().cpu().to(dtype), **fields}, temporary)

    @classmethod
    def load(cls, path: str | Path) -> CodesFile:
        """Read a file ``save`` wrote; raises ``CodesFileError`` naming ``path`` and the fix, in one line, when it is
        not one (missing, cut short, another kind of file)."""
        if not Path(path).is_file():
            raise CodesFileError(path, "file does not exist")
        damage = saved_file_damage(Path(path))
        if damage is not None:
            raise CodesFileError(path, f"not a codes file: it is {damage}; {ENCODE_AGAIN}.")
        try:
            saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises pickle, zip and runtime errors, of several lines, for others
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise CodesFileError(
                path, f"not a codes file ({type(error).__name__}: {first_line}); {ENCODE_AGAIN}."
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise CodesFileError(
                path, f"not a codes file written by codecgan encode (no format {FORMAT!r}); {ENCODE_AGAIN}."
            )
        missing = [name for name in _INTEGERS if not isinstance(saved.get(name), int)]
        if missing:
            raise CodesFileError(path, f"the codes file lacks {', '.join(missing)}; {ENCODE_AGAIN}.")
        codes = saved.get("codes")
        if not isinstance(codes, Tensor) or codes.dim() != 3 or codes.shape[1] != saved.get("n_codebooks"):
            problem = "codes are not [channels, n_codebooks, frames] with n_codebooks codebooks"
            raise CodesFileError(path, f"{problem}; {ENCODE_AGAIN}.")
        return cls(codes.long(), **{name: int(saved[name]) for name in _INTEGERS if name != "n_codebooks"})
