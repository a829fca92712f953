"""``AudioPredictionWriter``: the callback that turns ``codecgan predict`` outputs into files.

    codecgan predict --config experiments/codec_tiny.yaml --ckpt_path runs/codec_tiny/checkpoints/last.ckpt \
        --data.init_args.predict_paths '[recordings/]'

writes ``<trainer.default_root_dir>/predictions/<name>.wav`` per input (and ``<name>.pt`` codes from a codec),
named and laid out as ``codecgan enhance``/``encode`` name them (``codecgan.data.input_files``): the CLI
adds this callback when the config has none. Give it in ``trainer.callbacks`` to choose the folder or the rate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from codecgan.data.folder_scan import BadAudioError, BadAudioFile
from codecgan.inference.audio_writing import to_file_rate, write_wav
from codecgan.inference.codes_file import CODES_SUFFIX

log = logging.getLogger(__name__)


class AudioPredictionWriter(BasePredictionWriter):
    """Writes each prediction as it comes (``write_interval="batch"``), then raises ``BadAudioError`` listing the
    inputs that could not be read, if any (``codecgan predict`` then exits with status 2; the other files are
    written).

    Args:
        output_dir: folder of the outputs (created).
        keep_rate: write audio at each input's rate and exact length instead of the model's rate.
        write_codes: also write a codec's codes (``<name>.pt``, see ``codecgan.inference.codes_file``).
    """

    def __init__(self, output_dir: str, keep_rate: bool = False, write_codes: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.keep_rate = keep_rate
        self.write_codes = write_codes
        self.written: list[Path] = []
        self.failed: list[BadAudioFile] = []

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.written, self.failed = [], []
        # The files are the output: kept in memory as well, every file's audio would pile up until the end.
        trainer.predict_loop.return_predictions = False

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if "error" in prediction:
            self.failed.append(BadAudioFile(prediction["path"], prediction["error"]))
            log.warning("codecgan predict: %s: %s; skipped.", prediction["path"], prediction["error"])
            return
        audio, rate = prediction["audio"].float().cpu(), prediction["sample_rate"]
        if self.keep_rate:
            audio = to_file_rate(audio, rate, prediction["file_sample_rate"], prediction["file_frames"])
            rate = prediction["file_sample_rate"]
        output = self.output_dir / f"{prediction['name']}.wav"  # appended: a name may hold dots
        write_wav(output, audio, rate)
        if self.write_codes and "codes" in prediction:
            prediction["codes"].save(self.output_dir / f"{prediction['name']}{CODES_SUFFIX}")
        self.written.append(output)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        if self.failed:
            hint = f"The other {len(self.written)} file(s) were written to {self.output_dir}."
            raise BadAudioError(self.failed, hint=hint)
