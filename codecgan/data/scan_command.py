"""`codecgan scan DIR [DIR ...]`: decode every audio file under the folders and list the broken ones.

Training starts on headers only (``soundfile.info``), so a file whose samples are corrupt, NaN or
infinite is found only when an item first reads it, then skipped and counted. This command decodes
every sample of every .wav/.flac file up front, with a progress bar on a terminal, and prints one line
per broken file. Exit status: 0 when every file is usable, 2 when any is broken or a folder is
missing or holds no audio. It imports neither torch nor Lightning, so it starts at once.
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from codecgan.data.folder_scan import BadAudioFile, check_audio_file, list_audio_files

EXIT_BAD_FILES = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan scan",
        description="Decode every .wav/.flac file under the folders (recursively) and list the broken ones.",
    )
    parser.add_argument("folders", nargs="+", help="folders of audio, e.g. data/train or a VoiceBank-DEMAND split")
    parser.add_argument(
        "--expect-channels", type=int, default=None, help="also report files with another channel count"
    )
    return parser


def scan_main(argv: list[str]) -> int:
    """Scan the folders; prints the broken files and a summary, returns 0 or ``EXIT_BAD_FILES``."""
    args = build_parser().parse_args(argv)
    files = []
    for folder in args.folders:
        try:
            files += list_audio_files(folder)
        except (FileNotFoundError, ValueError) as error:
            print(f"codecgan scan: error: {error}", file=sys.stderr)
            return EXIT_BAD_FILES
    started = time.perf_counter()
    bad_files = []
    # disable=None: a progress bar on a terminal only, nothing in logs.
    for path in tqdm(files, desc="codecgan scan", unit="file", disable=None, file=sys.stderr):
        problem = check_audio_file(path, args.expect_channels)
        if problem is not None:
            bad_files.append(BadAudioFile(str(path), problem))
    seconds = time.perf_counter() - started
    for bad in bad_files:
        print(f"{bad.path}: {bad.problem}")
    print(
        f"Decoded {len(files)} audio file(s) in {seconds:.1f} s: {len(bad_files)} bad"
        + (", listed above." if bad_files else ".")
    )
    return EXIT_BAD_FILES if bad_files else 0


if __name__ == "__main__":
    raise SystemExit(scan_main(sys.argv[1:]))
