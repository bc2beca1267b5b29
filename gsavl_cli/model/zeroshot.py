"""Zero-shot heatmaps with no training: what sounds (CLAP) -> where it is (CLIPSeg); `--map text` and `textobj`.

1. *What sounds*: a CLAP audio tagger (Wu et al., "Large-scale contrastive language-audio pretraining",
   ICASSP 2023) scores the clip's audio window against a label set, zero-shot: the softmax over labels of
   the scaled cosine similarity between the audio embedding and each label's text embedding (the text
   "This is a sound of LABEL.", the paper's zero-shot prompt). Scores sum to 1 over the label set.
2. *Where it is*: CLIPSeg (Lüddecke & Ecker, "Image segmentation using text and image prompts", CVPR 2022)
   turns the top label, or the score-weighted mix of the top-k labels' probability maps, into a coarse
   map, which `heatmap.full_maps` upsamples to the frame and min-max normalises like any other map;
   `textobj` mixes it with the object prior as `avobj` mixes av (docs/architecture.md, "Zero-shot heatmaps").

Each stage is a small registry of pretrained `transformers` models (the optional extra `gsavl[zeroshot]`),
one registered object per model; their files come through the one resolver (`weights.hub_folder`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from gsavl_cli import weights
from gsavl_cli.data import features
from gsavl_cli.data.audio_input import audio_window
from gsavl_cli.errors import UsageError
from gsavl_cli.model.vggsound_labels import VGGSOUND_LABELS

TEXT_MAPS = ("text", "textobj")
"""The heatmaps of the zero-shot source: text (CLIPSeg on the heard labels) and textobj (mixed with the prior)."""
CLAP_RATE = 48_000
"""CLAP's sampling rate: the project's 16 kHz waveform is resampled to it."""
WINDOW_SECONDS = 5.0
"""What CLAP hears around a frame: 5 s (an AVSBench clip); CLAP repeats a shorter input up to its 10 s."""
PROMPT = "This is a sound of {}."
INSTALL_HINT = "pip install 'gsavl[zeroshot]' (the zero-shot maps run on the transformers package)"

AVSBENCH_S4_LABELS = (
    "ambulance_siren",
    "baby_laughter",
    "cap_gun_shooting",
    "cat_meowing",
    "chainsawing_trees",
    "coyote_howling",
    "dog_barking",
    "driving_buses",
    "female_singing",
    "helicopter",
    "horse_clip-clop",
    "lawn_mowing",
    "lions_roaring",
    "male_speech",
    "mynah_bird_singing",
    "playing_acoustic_guitar",
    "playing_glockenspiel",
    "playing_piano",
    "playing_tabla",
    "playing_ukulele",
    "playing_violin",
    "race_car",
    "typing_on_computer_keyboard",
)
"""AVSBench-object S4's 23 categories (Zhou et al., ECCV 2022), as its folders name them (s4_data/*/CATEGORY/)."""
LABEL_SETS: dict[str, tuple[str, ...]] = {"avsbench-s4": AVSBENCH_S4_LABELS, "vggsound": VGGSOUND_LABELS}
"""The built-in label sets by `--labels` name: AVSBench S4's 23 categories, VGGSound's 309 classes."""


def read_labels(spec: str | Path) -> tuple[str, ...]:
    """A built-in label set by name, or a file of one label per line (blank lines and `#` comments ignored,
    repeats dropped); fewer than two distinct labels is a UsageError: a softmax over one label says nothing."""
    if str(spec) in LABEL_SETS:
        return LABEL_SETS[str(spec)]
    path = Path(spec).expanduser()
    hint = (
        f"pass {' or '.join(LABEL_SETS)}, or a text file of labels, one per line (# comments and blank lines ignored)"
    )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else type(exc).__name__
        raise UsageError(f"cannot read the label file {path} ({reason})", hint=hint) from None
    found = [line.split("#", 1)[0].strip() for line in lines]
    labels = tuple(dict.fromkeys(label for label in found if label))
    if len(labels) < 2:
        what = "no labels" if not labels else f"only one distinct label ({labels[0]!r})"
        raise UsageError(f"the label file {path} holds {what}; zero-shot tagging picks among at least 2", hint=hint)
    return labels


def prompt_text(label: str) -> str:
    """A label as words ('dog_barking' -> 'dog barking')."""
    return " ".join(label.replace("_", " ").split())


def clap_window(waveform: np.ndarray, time: float | None) -> np.ndarray:
    """The 16 kHz samples CLAP hears for a frame at `time` (None: the middle of the clip, as eval's clip-level audio)."""
    return audio_window(np.asarray(waveform, dtype=np.float32), time, WINDOW_SECONDS)


@dataclass(frozen=True)
class ZeroShotSettings:
    """The zero-shot source's options (`--clap-model`, `--labels`, `--top-labels`, the two checkpoints)."""

    clap_model: str = "clap-htsat-unfused"
    clap_checkpoint: Path | None = None
    grounder: str = "clipseg-rd64-refined"
    clipseg_checkpoint: Path | None = None
    labels: str = "avsbench-s4"  # a LABEL_SETS name or a file
    top_labels: int = 1

    def label_names(self) -> tuple[str, ...]:
        """The label set (read from the file when `labels` names one)."""
        return read_labels(self.labels)


# -- the two stages ----------------------------------------------------------------------


class AudioTagger(Protocol):
    """What sounds: label scores [B,L] (each row sums to 1) of 16 kHz audio windows."""

    def scores(self, sounds: Sequence[np.ndarray], labels: Sequence[str]) -> torch.Tensor: ...


class Grounder(Protocol):
    """Where it is: probability maps [B,h,w] in [0,1] of each frame's weighted text prompts."""

    def maps(self, frames: Sequence[np.ndarray], texts: Sequence[Sequence[str]], mix: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ZeroShotModel:
    """One registered pretrained model: its name (also its files' in the resolver, `weights.ZEROSHOT_HUB_REPOS`), a
    description, and how to load it from its folder."""

    name: str
    description: str
    load: Callable[[Path, str], Any]


AUDIO_TAGGERS: dict[str, ZeroShotModel] = {}
"""What-sounds models by name (`--clap-model`)."""
GROUNDERS: dict[str, ZeroShotModel] = {}
"""Where-it-is models by name."""


def register_audio_tagger(model: ZeroShotModel) -> ZeroShotModel:
    """Adds an audio tagger to the registry (its files need an entry in `weights.ZEROSHOT_HUB_REPOS`)."""
    AUDIO_TAGGERS[model.name] = model
    return model


def register_grounder(model: ZeroShotModel) -> ZeroShotModel:
    """Adds a text grounder to the registry (its files need an entry in `weights.ZEROSHOT_HUB_REPOS`)."""
    GROUNDERS[model.name] = model
    return model


def _folder(model: str, checkpoint: Path | None, what: str, saved_by: str) -> Path:
    weights.require_transformers("the zero-shot maps (--map text, textobj)", INSTALL_HINT)
    return weights.hub_folder(model, weights.ZEROSHOT_FILES, checkpoint, what=what, saved_by=saved_by)


class ClapTagger:
    """CLAP zero-shot tagging (module docstring); text embeddings are computed once per label set."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.processor = processor
        self._text: dict[tuple[str, ...], torch.Tensor] = {}

    def text_embeddings(self, labels: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings [L,D] of the labels' prompts."""
        key = tuple(labels)
        if key not in self._text:
            tokens = self.processor.tokenizer(
                [PROMPT.format(prompt_text(x)) for x in key], padding=True, return_tensors="pt"
            )
            with torch.inference_mode():
                out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            self._text[key] = torch.nn.functional.normalize(getattr(out, "pooler_output", out).float(), dim=-1)
        return self._text[key]

    def audio_embeddings(self, sounds: Sequence[np.ndarray]) -> torch.Tensor:
        """Unit-norm audio embeddings [B,D] of 16 kHz windows, resampled to CLAP's 48 kHz."""
        import torchaudio.functional as AF

        wave = [
            AF.resample(torch.from_numpy(np.asarray(s, np.float32)), features.SAMPLE_RATE, CLAP_RATE).numpy()
            for s in sounds
        ]
        fused = bool(self.model.config.audio_config.enable_fusion)
        inputs = self.processor.feature_extractor(
            wave, sampling_rate=CLAP_RATE, truncation="fusion" if fused else "rand_trunc", return_tensors="pt"
        )  # the windows are under CLAP's 10 s, so no random crop is drawn
        with torch.inference_mode():
            out = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        return torch.nn.functional.normalize(getattr(out, "pooler_output", out).float(), dim=-1)

    def scores(self, sounds: Sequence[np.ndarray], labels: Sequence[str]) -> torch.Tensor:
        """Softmax over `labels` of CLAP's scaled audio-text similarity (its own logit scale): [B,L], rows sum to 1."""
        logits = self.audio_embeddings(sounds) @ self.text_embeddings(labels).T
        return (logits * self.model.logit_scale_a.exp().float()).softmax(dim=-1).cpu()


class ClipSegGrounder:
    """CLIPSeg's map of each text prompt on a frame; text embeddings are computed once per text."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.processor = processor
        self._text: dict[str, torch.Tensor] = {}

    def _conditional(self, texts: Sequence[str]) -> torch.Tensor:
        todo = [t for t in dict.fromkeys(texts) if t not in self._text]
        if todo:
            tokens = self.processor.tokenizer([prompt_text(t) for t in todo], padding=True, return_tensors="pt")
            with torch.inference_mode():
                found = self.model.get_conditional_embeddings(
                    batch_size=len(todo), **{k: v.to(self.device) for k, v in tokens.items()}
                )
            self._text.update(zip(todo, found))
        return torch.stack([self._text[t] for t in texts])

    def maps(self, frames: Sequence[np.ndarray], texts: Sequence[Sequence[str]], mix: torch.Tensor) -> torch.Tensor:
        """sum_k mix[b,k] * sigmoid(CLIPSeg logits of texts[b][k]) [B,h,w]: the image encoder runs once per prompt."""
        pixels = self.processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"].to(
            self.device
        )
        total = None
        for k in range(len(texts[0])):
            with torch.inference_mode():
                logits = self.model(
                    pixel_values=pixels, conditional_embeddings=self._conditional([t[k] for t in texts])
                ).logits
            probability = logits.reshape(len(frames), *logits.shape[-2:]).float().sigmoid()
            part = mix[:, k, None, None].to(probability) * probability
            total = part if total is None else total + part
        return total.cpu()


def _load_clap(folder: Path, device: str) -> ClapTagger:
    from transformers import ClapModel, ClapProcessor

    model = weights.from_pretrained_folder(ClapModel, folder, "CLAP model")
    return ClapTagger(model, weights.from_pretrained_folder(ClapProcessor, folder, "CLAP processor"), device)


def _load_clipseg(folder: Path, device: str) -> ClipSegGrounder:
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    model = weights.from_pretrained_folder(CLIPSegForImageSegmentation, folder, "CLIPSeg model")
    return ClipSegGrounder(model, weights.from_pretrained_folder(CLIPSegProcessor, folder, "CLIPSeg processor"), device)


register_audio_tagger(ZeroShotModel("clap-htsat-unfused", "LAION CLAP, HTSAT audio encoder, unfused", _load_clap))
register_audio_tagger(ZeroShotModel("larger_clap_general", "LAION larger CLAP, general audio", _load_clap))
register_grounder(ZeroShotModel("clipseg-rd64-refined", "CLIPSeg ViT-B/16, 64-d decoder, refined", _load_clipseg))


def _registered(registry: dict[str, ZeroShotModel], name: str, what: str) -> ZeroShotModel:
    if name not in registry:
        raise UsageError(f"unknown {what} {name!r}", hint=f"choose from {', '.join(registry)}")
    return registry[name]


# -- the source the Predictor asks -----------------------------------------------------------


Heard = tuple[tuple[str, float], ...]
"""Labels with their scores, best first."""


class ZeroShotSource:
    """The text map's coarse maps and the labels each clip's audio was heard as."""

    def __init__(self, tagger: AudioTagger, grounder: Grounder, labels: Sequence[str], top_labels: int = 1) -> None:
        if len(labels) < 2:
            raise UsageError("zero-shot tagging needs at least 2 labels")
        if not 1 <= top_labels <= len(labels):
            raise UsageError(f"--top-labels must be in 1..{len(labels)} (the label set's size), got {top_labels}")
        self.tagger, self.grounder = tagger, grounder
        self.labels, self.top_labels = tuple(labels), top_labels

    @classmethod
    def load(cls, settings: ZeroShotSettings, device: str = "cpu") -> ZeroShotSource:
        """Both stages from their folders (explicit > cache > download, through the resolver)."""
        labels = settings.label_names()
        clap = _registered(AUDIO_TAGGERS, settings.clap_model, "CLAP model")
        grounder = _registered(GROUNDERS, settings.grounder, "grounding model")
        tagger = clap.load(_folder(clap.name, settings.clap_checkpoint, "CLAP", "ClapModel.save_pretrained"), device)
        where = grounder.load(
            _folder(
                grounder.name, settings.clipseg_checkpoint, "CLIPSeg", "CLIPSegForImageSegmentation.save_pretrained"
            ),
            device,
        )
        return cls(tagger, where, labels, settings.top_labels)

    def hear(self, sounds: Sequence[np.ndarray]) -> list[Heard]:
        """Every label with its score (summing to 1), best first, per 16 kHz window."""
        scores = self.tagger.scores(sounds, self.labels)
        order = scores.argsort(dim=1, descending=True, stable=True)
        return [tuple((self.labels[int(i)], float(row[i])) for i in o) for row, o in zip(scores, order)]

    def coarse(self, frames: Sequence[np.ndarray], sounds: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Heard]]:
        """The coarse text maps [B,h,w] (the top-k labels' maps, weighted by their renormalised scores) and what was heard."""
        heard = self.hear(sounds)
        top = [h[: self.top_labels] for h in heard]
        scores = torch.tensor([[s for _, s in t] for t in top], dtype=torch.float32)
        mix = scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return self.grounder.maps(frames, [[label for label, _ in t] for t in top], mix), heard
