"""Benchmarks cannot rot: every `benchmarks/*.py` runs at a tiny size on the CPU and prints its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = {
    "eval_throughput.py": [
        "--frames",
        "2",
        "--size",
        "64",
        "--sam-model",
        "tiny",
        "--samplers",
        "naive,prob",
        "--audio",
        "all",
    ],
    "localize_latency.py": [
        "--sam-model",
        "tiny",
        "--width",
        "160",
        "--height",
        "96",
        "--seconds",
        "2",
        "--repeats",
        "1",
    ],
    "preprocess_throughput.py": ["--clips", "2", "--seconds", "1", "--width", "96", "--height", "64", "--workers", "1"],
    "preprocess_shards.py": ["--clips", "2", "--seconds", "1", "--width", "96", "--height", "64", "--shards", "2"],
    "train_throughput.py": [
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--presets",
        "ezvsl",
        "--workers",
        "0",
        "--width",
        "96",
        "--height",
        "64",
    ],
    "sam_encoder.py": ["--arch", "tiny", "--repeats", "1"],
    "segmenter_cost.py": ["--models", "tiny,sam2_tiny", "--size", "320x180"],
    "zeroshot_cost.py": ["--tiny", "--repeats", "1", "--size", "160x90"],
    "sam2_video.py": ["--model", "sam2_tiny", "--frames", "3", "--size", "160x90"],
    "ssl2avs_fps.py": ["--backbone", "tiny", "--size", "64"],
    "listening.py": ["--train", "4", "--val", "2", "--test", "2", "--epochs", "1"],
    "localize_video.py": ["--seconds", "2", "--size", "160x90"],
    "video_smoothing.py": ["--seeds", "4", "--taus", "none", "0.5", "--seconds", "2"],
}
SCRIPTS = sorted(p.name for p in ROOT.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_has_a_tiny_setting():
    assert set(SCRIPTS) <= set(TINY), f"add a tiny setting for {sorted(set(SCRIPTS) - set(TINY))}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_tiny(script):
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *TINY[script], "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _json_objects(proc.stdout), proc.stdout[-2000:]


def _json_objects(text: str) -> list[dict]:
    """Every JSON object printed (indented or not), in order."""
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        obj, end = decoder.raw_decode(text, at)
        found.append(obj)
        at = text.find("{", end)
    return [o for o in found if isinstance(o, dict) and "figures" in o]
