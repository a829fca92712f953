"""DNSMOS P.835 (Reddy, Gopal & Cutler, ICASSP 2022): a non-intrusive estimate of the ITU-T P.835 listening test's
three MOS (1 to 5) of noisy or enhanced speech, needing no clean reference:

- SIG: the speech signal's quality (its distortion), as listeners rate it;
- BAK: how intrusive the background noise is (5: not noticeable);
- OVRL: the overall quality.

The network is the DNS Challenge's ``sig_bak_ovr.onnx``, as the ``speechmos`` package (0.0.1.1, the DNS Challenge
organisers' own release) ships it, so nothing is downloaded; it is run here with ``onnxruntime`` and the package's
wrapper is not imported (it imports ``librosa`` and ``requests`` for the P.808 model and file reading, which SIG,
BAK and OVRL do not use). The computation is ``speechmos.dnsmos.run(audio, 16000)``'s (model type ``dnsmos``, not
the personalized one): an utterance shorter than the network's 9.01 s input is repeated (doubled until long enough);
the network scores 9.01 s windows one second apart, its raw outputs are mapped by the DNS Challenge's cubic
polynomials (non-personalized), and the windows' MOS are averaged. ``tests/evaluation/test_dnsmos_score.py`` pins
the numbers to the package's.

Each window costs about 0.5 s of one CPU thread, and every utterance has at least one: on VoiceBank-DEMAND's 824 test
utterances, with the noisy baseline, about 14 CPU-minutes. ``DnsmosScore.submit`` scores in a background thread
(onnxruntime releases the GIL), so the next batches are enhanced meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import math
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor

from codecgan.config_error import ConfigError

__all__ = ["DNSMOS_MEASURES", "DnsmosRows", "DnsmosScore", "require_dnsmos"]

DNSMOS_MEASURES = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
SAMPLE_RATE = 16000
INPUT_SECONDS = 9.01  # the network's input: 144160 samples
# The DNS Challenge's mapping of the network's raw SIG, BAK and OVRL to P.835 MOS (non-personalized model).
MOS_POLYNOMIALS = {
    "dnsmos_sig": (-0.08397278, 1.22083953, 0.0052439),
    "dnsmos_bak": (-0.13166888, 1.60915514, -0.39604546),
    "dnsmos_ovrl": (-0.06766283, 1.11546468, 0.04602535),
}
PACKAGES = ("speechmos", "onnxruntime")
INSTALL = "pip install 'codecgan[dnsmos]'"


def require_dnsmos(key: str) -> None:
    """Raise a ``ConfigError`` naming ``key`` and the pip command when the optional packages are missing."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{key}: true scores DNSMOS, which needs the optional packages speechmos (it ships the DNSMOS ONNX "
            f"models) and onnxruntime; {', '.join(missing)} is not installed. Install them with `{INSTALL}`, "
            f"or set {key}: false."
        )


def window_slices(audio: np.ndarray) -> tuple[np.ndarray, list[slice]]:
    """The utterance (``[T]`` at 16 kHz) as the network reads it, doubled until it fills one input, and its windows
    (144160 samples, one second apart over the whole seconds), sliced as speechmos slices them."""
    window = int(INPUT_SECONDS * SAMPLE_RATE)
    while len(audio) < window:
        audio = np.append(audio, audio)
    count = int(np.floor(len(audio) / SAMPLE_RATE) - INPUT_SECONDS) + 1
    slices = [slice(int(hop * SAMPLE_RATE), int((hop + INPUT_SECONDS) * SAMPLE_RATE)) for hop in range(count)]
    return audio, [cut for cut in slices if cut.stop - cut.start == window]  # speechmos drops a short one


def model_windows(audio: np.ndarray) -> np.ndarray:
    """The network's inputs for one utterance (``[T]`` float32 at 16 kHz): ``[N, 144160]`` float32."""
    audio, slices = window_slices(audio)
    return np.stack([audio[cut] for cut in slices]).astype(np.float32)


class DnsmosScore:
    """``DnsmosScore()(audio)``: ``{"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}`` of ``audio`` (``[T]``, mono,
    16 kHz); NaN for an empty or non-finite utterance. Samples beyond [-1, 1] are scored as they are (speechmos
    refuses them; the DNS Challenge's own script scores them).

    The onnxruntime session, loaded on first use, runs on ``torch.get_num_threads()`` threads (``OMP_NUM_THREADS``).
    """

    def __init__(self) -> None:
        require_dnsmos("model.init_args.test_dnsmos")
        self._session: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict:
        # Neither the onnxruntime session nor the thread pickles: a copy loads its own.
        return {**self.__dict__, "_session": None, "_executor": None}

    @property
    def session(self) -> Any:
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = max(1, torch.get_num_threads())
            model = resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
            with resources.as_file(model) as path:
                self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self._session

    def __call__(self, audio: Tensor | np.ndarray) -> dict[str, float]:
        audio = audio.detach().float().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio, np.float32)
        if audio.ndim != 1:
            raise ValueError(f"DNSMOS scores one mono utterance [T], got shape {audio.shape}.")
        if audio.size == 0 or not np.isfinite(audio).all():
            return dict.fromkeys(DNSMOS_MEASURES, math.nan)
        session, (audio, slices) = self.session, window_slices(audio)
        # One window at a time: a recording of an hour has 3600.
        raw = np.stack([session.run(None, {"input_1": audio[None, cut]})[0][0] for cut in slices])
        return {
            measure: float(np.mean(np.polyval(MOS_POLYNOMIALS[measure], raw[:, column].astype(np.float64))))
            for column, measure in enumerate(DNSMOS_MEASURES)
        }

    def rows(self, systems: dict[str, Tensor], length: Tensor, utterance: Tensor) -> list[dict[str, float | int | str]]:
        """One row per utterance and system, ``{"utterance", "system", <DNSMOS_MEASURES>}``: each system's output
        ``[B, 1, T]`` at 16 kHz, utterance ``i`` its first ``length[i]`` samples; ``utterance`` (``[B]``) holds the
        utterances' indices in the test set."""
        return [
            {"utterance": int(utterance[row]), "system": name, **self(audio[row, 0, :samples])}
            for row, samples in enumerate(length.tolist())
            for name, audio in systems.items()
        ]

    def submit(self, systems: dict[str, Tensor], length: Tensor, utterance: Tensor) -> concurrent.futures.Future:
        """``rows(...)`` scored in a background thread; the ``Future`` gives them."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnsmos")
        copies = {name: audio.detach().float().cpu().clone() for name, audio in systems.items()}
        return self._executor.submit(self.rows, copies, length.cpu().clone(), utterance.cpu().clone())

    def close(self) -> None:
        """Stop the background thread once its work is done."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class DnsmosRows:
    """A batch's rows with their DNSMOS columns: ``result()`` is ``rows.result()`` (``PendingRows``, the intrusive
    measures; ``None`` when the test set has no references) with each row's ``dnsmos_*`` added, or the DNSMOS rows
    alone."""

    def __init__(self, rows: Any, dnsmos: concurrent.futures.Future) -> None:
        self._rows, self._dnsmos = rows, dnsmos
        self._result: list[dict[str, float | int | str]] | None = None

    def result(self) -> list[dict[str, float | int | str]]:
        if self._result is None:
            dnsmos = self._dnsmos.result()
            if self._rows is None:
                self._result = dnsmos
            else:
                by_key = {(row["utterance"], row["system"]): row for row in dnsmos}
                self._result = [
                    {**row, **{m: by_key[row["utterance"], row["system"]][m] for m in DNSMOS_MEASURES}}
                    for row in self._rows.result()
                ]
            self._rows = self._dnsmos = None
        return self._result
