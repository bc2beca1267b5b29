"""SAM image encoder: segment-anything's own attention against SDPA (`gsavl_cli.segment.sdpa`).

Builds one random-weight SAM (`sam_model_registry[arch](checkpoint=None)`, or the toy
`build_tiny_sam()` for `--arch tiny`; the zero-initialised relative-position tables are
filled with small random values so the bias is not trivially zero), and times its
image encoder on a random batch at the encoder's input size with each attention mode.
The modes alternate within every repeat, so a change in the load of a shared machine
hits both alike; the figures are medians. Also reports each mode's peak memory (CUDA:
`max_memory_allocated`; CPU: the process's peak RSS, reset before each mode where Linux
allows, else `getrusage` maxrss, which never goes down) and the largest difference
between the modes' outputs.

    python benchmarks/sam_encoder.py [--arch vit_b|vit_l|vit_h|tiny] [--device cpu|cuda] [--repeats 1] [--batch 1] [--bf16]
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
from pathlib import Path
from typing import Any

import _common
import torch
from segment_anything import sam_model_registry

from gsavl_cli.segment import SAM_ARCHS
from gsavl_cli.segment.sdpa import use_original, use_sdpa
from gsavl_cli.segment.tiny import build_tiny_sam

MODES = ("original", "sdpa")
_STATUS = Path("/proc/self/status")


def build(arch: str) -> torch.nn.Module:
    """The random-weight SAM (seeded), relative-position tables randomised."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = build_tiny_sam() if arch == "tiny" else sam_model_registry[arch](checkpoint=None)
        for name, param in sam.image_encoder.named_parameters():
            if "rel_pos" in name:
                torch.nn.init.normal_(param, std=0.1)
    return sam.eval().requires_grad_(False)


def _rss_mib(field: str) -> float | None:
    try:
        line = next(row for row in _STATUS.read_text().splitlines() if row.startswith(field + ":"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return None


def reset_peak(device: str) -> float:
    """Starts a fresh peak-memory window; returns the memory in use now (MiB).

    CPU: trims freed heap back to the OS, then resets the RSS high-water mark (Linux).
    """
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        return torch.cuda.memory_allocated(torch.device(device)) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    except (OSError, AttributeError):
        pass
    return _rss_mib("VmRSS") or 0.0


def peak_mib(device: str) -> float:
    """Peak memory since `reset_peak` (CPU: VmHWM, else the process's maxrss)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    hwm = _rss_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--arch", default="vit_b", choices=(*SAM_ARCHS, "tiny"))
    p.add_argument("--modes", default=",".join(MODES), help="attention modes to time, in order: original,sdpa")
    p.add_argument("--repeats", type=int, default=1, help="timed encoder passes per mode")
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed passes per mode first (default: 1, 0 for vit_* on the CPU)"
    )
    p.add_argument("--batch", type=int, default=1, help="images per encoder pass")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    args = p.parse_args(argv)
    _common.setup(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    warmup = args.warmup if args.warmup is not None else int(args.arch == "tiny" or args.device.startswith("cuda"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    sam = build(args.arch)
    encoder = sam.image_encoder.to(args.device)
    size = encoder.img_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        pixels = torch.randn(args.batch, 3, size, size).to(args.device)
    switch = {"original": use_original, "sdpa": use_sdpa}

    def run(mode: str) -> torch.Tensor:
        modules = switch[mode](sam)
        with torch.inference_mode(), torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
            out = encoder(pixels)
        assert modules > 0
        return out.float()

    for _ in range(warmup):
        for mode in modes:
            run(mode)
    runs: dict[str, list[float]] = {m: [] for m in modes}
    peaks: dict[str, float] = {m: 0.0 for m in modes}
    before: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for mode in modes:
            outputs.pop(mode, None)
            before[mode] = reset_peak(args.device)
            out, seconds = _common.timed(args.device, lambda: run(mode))
            peaks[mode] = max(peaks[mode], peak_mib(args.device))
            runs[mode].append(seconds)
            outputs[mode] = out.cpu()
    figures: dict[str, Any] = {
        mode: {
            "median_s": round(statistics.median(runs[mode]), 4),
            "runs_s": [round(s, 4) for s in runs[mode]],
            "per_image_s": round(statistics.median(runs[mode]) / args.batch, 4),
            "peak_memory_mib": round(peaks[mode], 1),
            "memory_before_mib": round(before[mode], 1),  # weights, input, runtime: the peak's floor
        }
        for mode in modes
    }
    if set(MODES) <= set(modes):
        diff = (outputs["sdpa"] - outputs["original"]).abs().max().item()
        figures["speedup_sdpa_over_original"] = round(figures["original"]["median_s"] / figures["sdpa"]["median_s"], 3)
        figures["max_abs_diff"] = diff
        figures["max_abs_output"] = outputs["original"].abs().max().item()
    figures["load_average_start"] = load_start
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]  # 1, 5, 15 min; 2 cores here = busy at 2
    settings = {
        "arch": args.arch,
        "modes": modes,
        "repeats": args.repeats,
        "warmup": warmup,
        "batch": args.batch,
        "input": f"{args.batch}x3x{size}x{size}",
        "bf16": args.bf16,
        "weights": "random (timing only)",
        "peak_memory": "cuda max_memory_allocated"
        if args.device.startswith("cuda")
        else "cpu peak RSS (VmHWM, reset per mode)",
    }
    _common.emit("sam_encoder", args, settings, figures)


if __name__ == "__main__":
    main()
