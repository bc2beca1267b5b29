"""`gsavl doctor`: is this install one that works? Versions against the pins, and every compiled piece run once.

A wheel's compiled library can fail to load against a neighbour that pip still
accepts (torchaudio 2.11.1's against torch 2.11.0: an undefined symbol at import).
These checks turn such a drift into one line that names the packages, before any
command or test meets it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

TORCH_FAMILY = {"2.11.0": {"torchvision": "0.26.0", "torchaudio": "2.11.0"}}
"""torch release -> the torchvision and torchaudio releases built against it (tested together)."""
FAMILY = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class Check:
    """One install check's outcome: what was checked, whether it passed, and the detail to show."""

    name: str
    ok: bool
    detail: str


def release(version: str) -> str:
    """`2.11.0+cu130` -> `2.11.0`: the local build tag does not change the ABI family."""
    return version.split("+", 1)[0]


def pinned_versions(requirements: list[str] | None = None) -> dict[str, str]:
    """The exact (`==`) pins among gsavl's declared dependencies."""
    found = {}
    for line in requirements if requirements is not None else metadata.requires("gsavl") or []:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;,]+)\s*(;.*)?$", line)
        if m and not (m.group(3) or "").strip().startswith("; extra"):
            found[m.group(1).lower()] = m.group(2)
    return found


def family_problems(versions: dict[str, str], pins: dict[str, str]) -> list[str]:
    """What is wrong with a torch / torchvision / torchaudio set: unpinned, off-pin, or not built together."""
    problems = [f"{name} is not pinned exactly (==) in gsavl's dependencies" for name in FAMILY if name not in pins]
    torch_pin = pins.get("torch")
    if torch_pin is not None:
        partners = TORCH_FAMILY.get(torch_pin)
        if partners is None:
            problems.append(f"torch {torch_pin} is pinned, but no tested torchvision/torchaudio set is known for it")
        else:
            problems += [
                f"{name} is pinned to {pins.get(name)}, but torch {torch_pin} needs {want}"
                for name, want in partners.items()
                if name in pins and pins[name] != want
            ]
    for name in FAMILY:
        have, want = versions.get(name), pins.get(name)
        if have is None:
            problems.append(f"{name} is not installed")
        elif want is not None and release(have) != want:
            problems.append(f"{name} {have} is installed, gsavl is pinned to {want}: pip install '{name}=={want}'")
    return problems


def _versions() -> Check:
    versions = {}
    for name in FAMILY:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    problems = family_problems(versions, pinned_versions())
    shown = ", ".join(f"{k} {v}" for k, v in versions.items())
    return Check("torch family", not problems, "; ".join(problems) or shown)


def _torchaudio() -> str:
    import torch
    import torchaudio
    import torchaudio.functional as AF

    x = torch.linspace(-1, 1, 1600)
    out = AF.lfilter(x[None], torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.0]))  # the compiled core loop
    AF.resample(x, 16000, 8000)
    return f"torchaudio {torchaudio.__version__}: lfilter kernel and resample ran ({tuple(out.shape)})"


def _torchvision() -> str:
    import torch
    import torchvision
    from torchvision.ops import nms

    keep = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8]), 0.5)
    return f"torchvision {torchvision.__version__}: nms kernel ran (kept {keep.tolist()})"


def _h5py() -> str:
    import io

    import h5py
    import numpy as np

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("x", data=np.arange(4), compression="gzip")
    with h5py.File(buffer, "r") as f:
        assert f["x"][:].tolist() == [0, 1, 2, 3]
    return f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}): gzip write and read"


def _soundfile() -> str:
    import soundfile

    return f"soundfile {soundfile.__version__} ({soundfile.__libsndfile_version__ and 'libsndfile ' + soundfile.__libsndfile_version__})"


def _ffmpeg() -> str:
    from gsavl_cli.io.media import ffmpeg_binary

    binary = ffmpeg_binary()
    head = subprocess.run(
        [binary, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
    ).stdout.splitlines()
    return f"{binary}: {head[0] if head else '?'}"


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except Exception as exc:  # any failure here is the finding, reported in its own words
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def run_checks() -> list[Check]:
    """Every check, each isolated, in the order a failure is most telling."""
    return [_versions()] + [
        _run(n, p)
        for n, p in (
            ("torchaudio kernels", _torchaudio),
            ("torchvision kernels", _torchvision),
            ("h5py", _h5py),
            ("soundfile", _soundfile),
            ("ffmpeg", _ffmpeg),
        )
    ]
