"""Shared bits of the benchmark scripts: machine facts and the one JSON line they print."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return p


def setup(args: argparse.Namespace) -> None:
    """Fails early on a missing GPU; applies --threads."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "bf16", False) and not args.device.startswith("cuda"):
        sys.exit("--bf16 is for CUDA only: bf16 autocast is many times slower on the CPU (see docs/performance.md)")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor()
            )
    except OSError:
        return platform.processor()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine(device: str) -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes sharing the CPU
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def sync(device: str) -> None:
    """Waits for queued GPU work so that wall-clock timings are true."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


@contextmanager
def timer(device: str, into: dict[str, float], key: str) -> Iterator[None]:
    """Adds the seconds spent in the block to `into[key]` (GPU-synchronised)."""
    sync(device)
    start = time.perf_counter()
    yield
    sync(device)
    into[key] = into.get(key, 0.0) + time.perf_counter() - start


def timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of one call."""
    into: dict[str, float] = {}
    with timer(device, into, "s"):
        result = fn()
    return result, into["s"]


def emit(name: str, args: argparse.Namespace, settings: dict[str, Any], figures: dict[str, Any]) -> None:
    """Prints the benchmark's one JSON object on stdout."""
    report = {"benchmark": name, "machine": machine(args.device), "settings": settings, "figures": figures}
    print(json.dumps(report, indent=2, default=str))
