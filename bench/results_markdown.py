"""The benchmark results file `bench/results/<device>.md`: one section per benchmark, rewritten in place.

Each script owns a section delimited by HTML comments, so running one benchmark again replaces its own
table and leaves the others (measured earlier, perhaps at another commit) untouched.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def device_name() -> str:
    """The accelerator's name (``NVIDIA H100 80GB HBM3``), or the CPU's core count when there is none."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({len(os.sched_getaffinity(0))} cores, {platform.machine()})"


def device_slug(name: str | None = None) -> str:
    """File-name form of the device name: ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", (name or device_name()).lower()).strip("-")


def commit() -> str:
    """The commit the code was measured at, with ``+dirty`` when the working tree had changes.

    ``CODECGAN_COMMIT`` overrides (a copy of the tree without ``.git``, e.g. on a remote GPU machine).
    """
    if os.environ.get("CODECGAN_COMMIT"):
        return os.environ["CODECGAN_COMMIT"]
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def environment_line() -> str:
    """Device, commit and library versions, for the top of every section."""
    import lightning

    return (
        f"device: {device_name()}; commit {commit()}; torch {torch.__version__}, lightning {lightning.__version__}, "
        f"CUDA {torch.version.cuda}"
    )


def write_section(name: str, markdown: str, results_dir: Path | None = None) -> Path:
    """Replace (or append) section `name` of this device's results file; returns the file's path."""
    directory = Path(results_dir) if results_dir else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{device_slug()}.md"
    text = path.read_text() if path.exists() else f"# Benchmarks on {device_name()}\n\n"
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return path
