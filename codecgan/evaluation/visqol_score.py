"""ViSQOL v3 (MOS-LQO, 1 to 5) of a reconstruction, the codec measure of DAC's and EnCodec's papers.

Scored by ``visqol-python``, a pure-Python port of Google's C++ ViSQOL that ships its SVR model (its own
conformance tests match the C++ tool's audio-mode cases within 1.2e-4), so nothing is fetched at run time. As in
DAC's evaluation (audiotools' ``visqol``), the mono reference and estimate are resampled
(``torchaudio.functional.resample``) to the mode's rate: ``audio`` at 48 kHz (music and general audio, DAC's
choice), ``speech`` at 16 kHz (speech codecs). Speech mode maps similarity to MOS with the polynomial mapper (the
C++ tool's ``--use_lattice_model=false``), so a score does not depend on whether the optional TFLite runtime
(``visqol-python[lattice]``) is installed; the lattice mapper (the C++ default, audiotools' speech mode) gives
other numbers, by the package's account up to 1-2 points lower on degraded speech.

ViSQOL is slow next to the other codec measures: about 0.9 s of CPU per second of audio in audio mode, 0.4 s in
speech mode (one thread of a shared 2-core CPU): 5 to 10 times the rest of the tiny codec's ``codecgan test``.
"""

from __future__ import annotations

import logging
import math

import torch
import torchaudio
from torch import Tensor
from visqol import VisqolApi

__all__ = ["VISQOL_MODES", "VisqolScore"]

# The rate each mode scores at, as ViSQOL's models were fitted.
VISQOL_MODES = {"audio": 48000, "speech": 16000}

logger = logging.getLogger(__name__)


class VisqolScore:
    """``VisqolScore(mode)(reference, estimate, sample_rate)``: the MOS-LQO of ``estimate`` against ``reference``
    (``[T]`` each, mono, at ``sample_rate`` Hz).

    NaN where ViSQOL has no score: an all-zero reference (ViSQOL would rate any estimate of it near 5), an all-zero
    estimate (the package returns NaN), or an utterance too short for its patches (under about 0.96 s in audio
    mode, 0.64 s in speech mode: the package raises). The report lists such utterances instead of averaging them in.
    """

    def __init__(self, mode: str) -> None:
        if mode not in VISQOL_MODES:
            raise ValueError(f"ViSQOL mode must be one of {sorted(VISQOL_MODES)}, got {mode!r}.")
        self.mode = mode
        self.sample_rate = VISQOL_MODES[mode]
        self._api: VisqolApi | None = None

    def __getstate__(self) -> dict:
        # Audio mode's SVR model holds ctypes pointers, which cannot be pickled or copied: a copy (a module under
        # a spawned process, a deep-copied model) loads its own.
        return {**self.__dict__, "_api": None}

    @property
    def api(self) -> VisqolApi:
        if self._api is None:
            self._api = VisqolApi()
            self._api.create(mode=self.mode, use_lattice_model=False)
        return self._api

    @torch.no_grad()
    def __call__(self, reference: Tensor, estimate: Tensor, sample_rate: int) -> float:
        if reference.shape != estimate.shape or reference.dim() != 1:
            raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} must be [T].")
        if not bool(reference.any()):
            return math.nan
        pair = torch.stack([reference, estimate]).detach().float().cpu()
        pair = torchaudio.functional.resample(pair, sample_rate, self.sample_rate).double().numpy()
        try:
            return float(self.api.measure_from_arrays(pair[0], pair[1], self.sample_rate).moslqo)
        except (ValueError, IndexError) as error:  # too few patches: the clip is too short for this mode
            logger.info("ViSQOL (%s mode) has no score for a clip of %d samples: %s", self.mode, pair.shape[1], error)
            return math.nan
