"""Per-frame cost of the zero-shot text map (CLAP hears, CLIPSeg grounds) beside the trained localizer's av map.

Each model is built at its published architecture with random weights (timing only, nothing downloaded): CLAP
from `transformers.ClapConfig()`'s defaults (the HTSAT-unfused audio encoder and RoBERTa-base text encoder of
laion/clap-htsat-unfused), CLIPSeg from `CLIPSegConfig()`'s (ViT-B/16, 64-d decoder) with the refined model's
complex transposed convolution (CIDAS/clipseg-rd64-refined), and the localizer from the `gsavl` preset
(ResNet-18 + VGGish). The stages go through gsavl's own classes (`model.zeroshot.ClapTagger`,
`ClipSegGrounder`, the `Predictor`), on one random RGB frame of `--size` and a `--seconds` waveform at 16 kHz:

- `clap_audio_s`: resampling to 48 kHz, CLAP's log-mel features and its audio encoder: once per frame;
- `clap_text_s`: the text encoder on the label set (AVSBench S4's 23 labels): once per label set, cached after;
- `clipseg_s`: CLIPSeg on the frame for one label (its text embedding cached): once per frame and label (--top-labels);
- `localizer_s`: the trained localizer's av map through the Predictor (VGGish features + both encoders).

The tokenizers are byte-level stand-ins (the hub's are not downloaded), so `clap_text_s` tokenizes each character:
longer sequences than the real BPE, an upper bound. Figures are medians over `--repeats`; `--tiny` times toy models
(for the test that keeps this script running).

    python benchmarks/zeroshot_cost.py [--repeats 3] [--size 1280x720] [--seconds 5]
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import _common
import numpy as np
import torch

from gsavl_cli.model import build_localizer, config_from_preset
from gsavl_cli.model.zeroshot import AVSBENCH_S4_LABELS, ClapTagger, ClipSegGrounder
from gsavl_cli.model.zeroshot_tiny import build_tiny_clap, build_tiny_clipseg, clap_processor, clipseg_processor
from gsavl_cli.predictor import ClipInput, Predictor
from gsavl_cli.segment import RegionSegmenter


def build(tiny: bool, device: str) -> tuple[ClapTagger, ClipSegGrounder, Predictor]:
    """The three models (seeded random weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if tiny:
            clap, clap_proc = build_tiny_clap()
            clipseg, clipseg_proc = build_tiny_clipseg()
            config = config_from_preset("gsavl", image_size=64, dim=16)
        else:
            from transformers import ClapConfig, ClapModel, CLIPSegConfig, CLIPSegForImageSegmentation

            clap, clap_proc = ClapModel(ClapConfig()), clap_processor()
            clipseg = CLIPSegForImageSegmentation(CLIPSegConfig(use_complex_transposed_convolution=True))
            clipseg_proc = clipseg_processor()
            config = config_from_preset("gsavl")
        localizer = build_localizer(config, pretrained=False)
    predictor = Predictor(localizer, RegionSegmenter(), device=device)
    return ClapTagger(clap, clap_proc, device), ClipSegGrounder(clipseg, clipseg_proc, device), predictor


def _params(module: torch.nn.Module) -> float:
    return round(sum(t.numel() for t in module.parameters()) / 1e6, 1)


def main(argv: list[str] | None = None) -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed frames per stage")
    p.add_argument("--size", default="1280x720", help="frame WIDTHxHEIGHT")
    p.add_argument("--seconds", type=float, default=5.0, help="the clip's audio (CLAP hears 5 s of it)")
    p.add_argument("--tiny", action="store_true", help="toy models (for the test)")
    args = p.parse_args(argv)
    _common.setup(args)
    width, height = (int(v) for v in args.size.lower().split("x"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    wave = rng.uniform(-0.5, 0.5, int(args.seconds * 16000)).astype(np.float32)
    (tagger, grounder, predictor), build_s = _common.timed("cpu", lambda: build(args.tiny, args.device))
    labels = list(AVSBENCH_S4_LABELS)
    sound = wave[: 5 * 16000]
    one = torch.ones(1, 1)

    def text() -> Any:
        tagger._text.clear()  # the cache would make every repeat after the first free
        return tagger.text_embeddings(labels)

    grounder.maps([frame], [[labels[0]]], one)  # its text embedding, cached as in use
    stages = {
        "clap_audio_s": lambda: tagger.audio_embeddings([sound]),
        "clap_text_s": text,
        "clipseg_s": lambda: grounder.maps([frame], [[labels[0]]], one),
        "localizer_s": lambda: predictor.heatmaps(
            ("av",), clip=predictor.prepare([ClipInput(frame, wave, None, "c")])[0]
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.repeats):
        for name, stage in stages.items():  # alternating: a change in the machine's load hits all alike
            runs[name].append(_common.timed(args.device, stage)[1])
    figures: dict[str, Any] = {name: round(statistics.median(r), 4) for name, r in runs.items()}
    figures["runs_s"] = {name: [round(x, 4) for x in r] for name, r in runs.items()}
    figures["text_per_frame_s"] = round(figures["clap_audio_s"] + figures["clipseg_s"], 4)
    figures["text_to_localizer"] = (
        round(figures["text_per_frame_s"] / figures["localizer_s"], 2) if figures["localizer_s"] > 0 else None
    )
    figures["params_m"] = {
        "clap": _params(tagger.model),
        "clap_audio": _params(tagger.model.audio_model) + _params(tagger.model.audio_projection),
        "clipseg": _params(grounder.model),
        "localizer": _params(predictor.model),
    }
    figures["build_s"] = round(build_s, 2)
    figures["load_average_start"] = load_start
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    settings = {
        "repeats": args.repeats,
        "frame": f"{width}x{height} RGB",
        "audio": f"{args.seconds:g} s at 16 kHz (CLAP: 5 s at 48 kHz)",
        "labels": f"AVSBench S4, {len(labels)}",
        "models": "toy"
        if args.tiny
        else "clap-htsat-unfused, clipseg-rd64-refined, gsavl localizer (ResNet-18 + VGGish)",
        "weights": "random, published architectures (timing only)",
        "tokenizers": "byte-level stand-ins",
    }
    _common.emit("zeroshot_cost", args, settings, figures)


if __name__ == "__main__":
    main()
