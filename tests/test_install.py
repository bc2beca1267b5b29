"""The install is the pinned, mutually compatible torch family, and every compiled piece loads."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.install_check import FAMILY, TORCH_FAMILY, family_problems, pinned_versions, release

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_pins_the_torch_family_to_a_set_built_together():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pins = pinned_versions(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    assert set(FAMILY) <= set(pins), "torch, torchvision and torchaudio must be pinned with =="
    assert {k: pins[k] for k in ("torchvision", "torchaudio")} == TORCH_FAMILY[pins["torch"]]


def test_the_installed_family_is_the_pinned_one():
    pins = pinned_versions()
    installed = {name: metadata.version(name) for name in FAMILY}
    assert {k: release(v) for k, v in installed.items()} == {k: pins[k] for k in FAMILY}
    assert family_problems(installed, pins) == []


def test_drift_is_named():
    pins = {"torch": "2.11.0", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
    drifted = family_problems({"torch": "2.11.0+cpu", "torchvision": "0.26.0", "torchaudio": "2.11.1"}, pins)
    assert drifted == ["torchaudio 2.11.1 is installed, gsavl is pinned to 2.11.0: pip install 'torchaudio==2.11.0'"]
    loose = family_problems(
        {"torch": "2.11.0", "torchvision": "0.26.0", "torchaudio": "2.11.0"},
        pinned_versions(["torch==2.11.0", "torchvision==0.26.0", "torchaudio>=2.11"]),
    )
    assert loose == ["torchaudio is not pinned exactly (==) in gsavl's dependencies"]
    mismatched = family_problems(
        {"torch": "2.11.0", "torchvision": "0.25.0", "torchaudio": "2.11.0"},
        {"torch": "2.11.0", "torchvision": "0.25.0", "torchaudio": "2.11.0"},
    )
    assert mismatched == ["torchvision is pinned to 0.25.0, but torch 2.11.0 needs 0.26.0"]


def test_doctor_runs_every_compiled_kernel():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"torch family", "torchaudio kernels", "torchvision kernels", "h5py", "soundfile", "ffmpeg"}
    assert all(c["ok"] for c in checks.values()), checks
