"""The one path from a frame and its audio to heatmaps, prompts and a mask.

Modelled on Segment Anything's `SamPredictor`: `set_clip` once (the SAM image
embedding is computed there, once), then `heatmaps()` and `predict(...)` as often as
wanted. `localize`, `eval`, `demo` and the benchmarks all go through this class, so a
clip gives the same answer everywhere:

- the audio input is derived from the waveform with the window the checkpoint was
  trained with (`ModelConfig.audio_window`), centred on the frame's time
  (`data.audio_input`);
- random samplers draw from a generator seeded by (seed, clip key, map, sampler)
  (`prompt_generator`), so points depend neither on batching nor on the command;
- the cascade reports the prompts that produced the returned mask.

The batched form (`prepare` a list of clips, then `predict(..., clip=...)`) runs the
model and the SAM encoder on many frames at once; the arithmetic is the same.

The model may be of any registered family (`model.family`): its inference adapter
(`ModelFamily.predict`) gives the coarse outputs (the av map; a mask head's logits),
and the segmenter says what it reads from them (`Segmenter.needs`) and whether it
follows prompts (`Segmenter.prompted`), so nothing here asks which family it holds.

The zero-shot maps (`text`, `textobj`: CLAP hears the clip's audio window, CLIPSeg finds the heard
label; `model.zeroshot`) are computed here like the prior's obj map, their models loaded on first
use; each clip keeps the labels its audio was heard as (`PreparedClip.heard`, `Prediction.heard`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from gsavl_cli import samplers
from gsavl_cli.abstention import stored_threshold
from gsavl_cli.data import features
from gsavl_cli.data.audio_input import audio_input
from gsavl_cli.errors import GsavlError, UsageError, WeightsError
from gsavl_cli.model import (
    ALIGN_CORNERS,
    MAP_NAMES,
    PAPER_MAPS,
    TRAINING_FREE_MAPS,
    ModelConfig,
    build_object_prior,
    coarse_maps,
    family_for,
    full_maps,
    get_family,
    load_checkpoint,
)
from gsavl_cli.model.config import check_choice
from gsavl_cli.model.family import OUTPUT_NAMES
from gsavl_cli.model.heatmap import eval_mode
from gsavl_cli.model.prior import ObjectPrior
from gsavl_cli.model.zeroshot import TEXT_MAPS, Heard, ZeroShotSettings, ZeroShotSource, clap_window
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment import ImageEmbedding, Segmenter, make_segmenter, soft_iou

DEFAULT_ALPHA = 0.4


def prompt_generator(seed: int, key: str, map_name: str, sampler: str) -> torch.Generator:
    """THE seeding rule for random samplers: a generator that depends only on these names."""
    digest = hashlib.sha256("/".join((str(seed), key, map_name, sampler)).encode()).digest()
    return samplers.make_generator(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


@dataclass
class ClipInput:
    """One frame (RGB uint8 [H,W,3]) and its clip's mono 16 kHz waveform [N]."""

    frame: np.ndarray
    waveform: np.ndarray
    time: float | None = None
    key: str | None = None


@dataclass
class PreparedClip:
    """A clip after `prepare`: its audio input, SAM embedding and (lazily) its heatmaps.

    `coarse` holds the model's outputs (`ModelFamily.outputs`), the prior's obj map and the
    zero-shot text map at coarse resolution; `heat` the heatmaps at a size. `sound` is the 16 kHz
    window the zero-shot tagger hears, `heard` every label with its score once it has heard it.
    """

    key: str
    frame: np.ndarray
    audio: torch.Tensor
    embedding: ImageEmbedding
    coarse: dict[str, torch.Tensor] = field(default_factory=dict)
    heat: dict[tuple[str, tuple[int, int]], torch.Tensor] = field(default_factory=dict)
    sound: np.ndarray | None = None
    heard: Heard = ()

    @property
    def size(self) -> tuple[int, int]:
        """The frame's (height, width) in pixels."""
        return int(self.frame.shape[0]), int(self.frame.shape[1])


@dataclass
class Prediction:
    """Prompts (x, y pixels; label 1 positive, 0 negative) and the mask they produced.

    `sampler` names what chose the prompts: the sampler, or for a segmenter that takes
    none (the model's own mask: no points) the segmenter itself; `segmenter` its name.
    `abstained`: the listening score (`listening`) fell below the predictor's abstention
    threshold, so nothing in the frame was taken to make the sound (no prompts, empty mask).
    `heard`: for a zero-shot map, the labels the audio was heard as and their scores (the top-k
    that made the map), else empty.
    """

    points: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    score: float
    rounds: int
    map: str
    sampler: str
    segmenter: str
    agreement: float = float("nan")
    abstained: bool = False
    listening: float = float("nan")
    heard: Heard = ()

    @property
    def prompts(self) -> Prompts:
        """The points and labels as the segmenter's `Prompts`."""
        return Prompts(self.points, self.labels)


class EmbeddingStore(Protocol):
    """A cache of image embeddings keyed by clip key (see `gsavl_cli.io.embedding_cache`)."""

    def get(self, key: str) -> ImageEmbedding | None:
        """The cached embedding of `key`, or None."""
        ...

    def put(self, key: str, embedding: ImageEmbedding) -> None:
        """Caches `embedding` under `key`."""
        ...


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise UsageError(f"a frame must be an RGB uint8 array [H,W,3], got {getattr(frame, 'shape', type(frame))}")
    return frame


def _check_waveform(waveform: np.ndarray) -> np.ndarray:
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise UsageError(f"the waveform must be mono 16 kHz samples [N], got shape {wave.shape}")
    return wave


class Predictor:
    """Model (any registered family) + object prior + sampler registry + segmenter, behind one small API."""

    def __init__(
        self,
        model: nn.Module | None,
        segmenter: Segmenter,
        *,
        device: str = "cpu",
        alpha: float = DEFAULT_ALPHA,
        align_corners: bool = ALIGN_CORNERS,
        interpolation: str | None = None,
        prior: ObjectPrior | None = None,
        resnet_checkpoint: Path | None = None,
        pretrained_prior: bool = True,
        abstain_below: float | None = None,
        zeroshot: ZeroShotSettings | ZeroShotSource | None = None,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha must be in [0, 1], got {alpha}")
        self.model = model.to(device).eval() if model is not None else None  # None: the object prior alone
        self.family = family_for(model.config) if model is not None else None
        self.config: Any = model.config if model is not None else ModelConfig()
        missing = [n for n in segmenter.needs if self.family is None or n not in self.family.outputs]
        if missing:
            who = f"a {self.family.name} model" if self.family is not None else "the training-free predictor"
            raise UsageError(
                f"{who} has no {', '.join(OUTPUT_NAMES.get(n, n) for n in missing)} (the {segmenter.name} segmenter's input)",
                hint="use --segmenter sam or region",
            )
        if abstain_below is not None and self.family is None:
            raise UsageError("abstention needs a trained model: the object prior does not hear the audio")
        self.abstain_below = abstain_below
        """Listening score under which `predict` answers "nothing here makes the sound" (None: never)."""
        self.segmenter = segmenter
        self.device = device
        self.alpha = alpha
        self.align_corners = align_corners
        self.interpolation = interpolation or getattr(self.config, "test_interpolation", "bilinear")
        self._prior = prior
        self._prior_source = (resnet_checkpoint, pretrained_prior)
        self._zeroshot = zeroshot if zeroshot is not None else ZeroShotSettings()
        self.embedding_cache: EmbeddingStore | None = None
        self.clip: PreparedClip | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None,
        *,
        device: str = "cpu",
        segmenter: str | None = None,
        sam_model: str = "vit_h",
        sam_checkpoint: Path | None = None,
        resnet_checkpoint: Path | None = None,
        alpha: float = DEFAULT_ALPHA,
        align_corners: bool = ALIGN_CORNERS,
        interpolation: str | None = None,
        pretrained_prior: bool = True,
        abstain: bool | None = False,
        zeroshot: ZeroShotSettings | ZeroShotSource | None = None,
    ) -> Predictor:
        """A predictor for a trained checkpoint; SAM's weights come through the resolver.

        `path=None` gives the training-free predictor: no model, only the object
        prior's `obj` map (the original's training-free row). `segmenter=None` is the
        family's `default_segmenter`: a model's own mask head if it has one (SSL2AVS), else SAM.
        `interpolation` (bilinear / bicubic test resize) defaults to the checkpoint's
        training protocol; `eval` passes the evaluated dataset's. `abstain` uses the
        abstention threshold that `gsavl calibrate` stored in the checkpoint (`gsavl_cli.abstention`;
        None: when it has one). `zeroshot` chooses the text maps' models and labels (default:
        CLAP htsat-unfused and CLIPSeg rd64-refined on AVSBench S4's labels, loaded on first use).
        """
        model, natural, threshold = None, "sam", None
        if path is not None:
            loaded = load_checkpoint(Path(path), map_location="cpu")
            model, natural = loaded.model, get_family(loaded.family).default_segmenter
            if abstain or (abstain is None and "abstention" in loaded.extra):
                threshold = stored_threshold(loaded.extra, Path(path))
        elif abstain:
            raise UsageError("abstention needs a trained model", hint="pass --checkpoint, or drop --abstain")
        chosen = make_segmenter(segmenter or natural, device, sam_model=sam_model, sam_checkpoint=sam_checkpoint)
        return cls(
            model,
            chosen,
            device=device,
            alpha=alpha,
            align_corners=align_corners,
            interpolation=interpolation,
            resnet_checkpoint=resnet_checkpoint,
            pretrained_prior=pretrained_prior,
            abstain_below=threshold,
            zeroshot=zeroshot,
        )

    @property
    def default_map(self) -> str:
        """The map a command prompts from unless told: the paper's avobj, or the model's own av
        when the segmenter takes no prompts (then no object prior is needed)."""
        return "avobj" if self.segmenter.prompted else "av"

    @property
    def default_maps(self) -> tuple[str, ...]:
        """The maps `eval` scores unless told; with a segmenter that takes no prompts, av alone (no object prior)."""
        return PAPER_MAPS if self.segmenter.prompted else ("av",)

    def mask_runs(self, maps: Sequence[str], samplers: Sequence[SamplerChoice]) -> list[tuple[str, SamplerChoice]]:
        """The (map, sampler) pairs whose masks differ, in order: every pair for a segmenter that
        follows prompts; one (the first map, under the segmenter's name) for one that takes none."""
        if self.segmenter.prompted:
            return [(m, choice) for m in maps for choice in samplers]
        return [(maps[0], SamplerChoice(self.segmenter.name))] if maps else []

    def _prior_for(self, maps: tuple[str, ...]) -> ObjectPrior:
        try:
            return self.prior
        except WeightsError as exc:
            asked = ", ".join(m for m in maps if m in ("obj", "avobj", "textobj"))
            raise WeightsError(
                f"the {asked} map (--map {asked}) needs the object prior's weights: {exc}", hint=exc.hint
            ) from None

    @property
    def prior(self) -> ObjectPrior:
        """The frozen object prior, loaded on first use (only the obj/avobj maps need it)."""
        if self._prior is None:
            checkpoint, pretrained = self._prior_source
            self._prior = build_object_prior(pretrained=pretrained, checkpoint=checkpoint).to(self.device).eval()
        return self._prior

    @property
    def zeroshot(self) -> ZeroShotSource:
        """The zero-shot source (CLAP + CLIPSeg), loaded on first use (only the text/textobj maps need it)."""
        if not isinstance(self._zeroshot, ZeroShotSource):
            self._zeroshot = ZeroShotSource.load(self._zeroshot, self.device)
        return self._zeroshot

    # -- clips ---------------------------------------------------------------------------

    def set_clip(
        self, frame: np.ndarray, waveform: np.ndarray, *, time: float | None = None, key: str | None = None
    ) -> None:
        """Makes this frame and its audio the current clip; computes its image embedding once."""
        self.clip = self.prepare([ClipInput(frame, waveform, time, key)])[0]

    def prepare(
        self, clips: Sequence[ClipInput], maps: Sequence[str] = (), *, batch_size: int = 4
    ) -> list[PreparedClip]:
        """The batched form: audio inputs, image embeddings (and heatmaps `maps`) for many clips."""
        prepared = [
            PreparedClip(
                c.key if c.key is not None else "clip",
                _check_frame(c.frame),
                self._audio(c),
                None,  # type: ignore[arg-type]
                sound=clap_window(_check_waveform(c.waveform), c.time),
            )
            for c in clips
        ]
        for clip, embedding in zip(prepared, self._embed(prepared, batch_size)):
            clip.embedding = embedding
        if maps:
            self._compute_coarse(prepared, tuple(maps), self.segmenter.needs)
        return prepared

    def _audio(self, clip: ClipInput) -> torch.Tensor:
        """The model's audio input; nothing for the training-free predictor, which does not listen."""
        wave = _check_waveform(clip.waveform)
        return audio_input(wave, clip.time, self.config) if self.model is not None else torch.zeros(0)

    def _embed(self, clips: list[PreparedClip], batch_size: int) -> list[ImageEmbedding]:
        cache = self.embedding_cache
        found = [cache.get(c.key) if cache is not None else None for c in clips]
        todo = [i for i, e in enumerate(found) if e is None]
        fresh = self.segmenter.embed([clips[i].frame for i in todo], batch_size=batch_size) if todo else []
        for i, embedding in zip(todo, fresh):
            found[i] = embedding
            if cache is not None and embedding.features is not None:
                cache.put(clips[i].key, embedding)
        return found  # type: ignore[return-value]

    def _current(self, clip: PreparedClip | None) -> PreparedClip:
        chosen = clip if clip is not None else self.clip
        if chosen is None:
            raise GsavlError("no clip is set", hint="call set_clip(frame, waveform) first")
        return chosen

    # -- heatmaps ------------------------------------------------------------------------

    def _compute_coarse(self, clips: list[PreparedClip], maps: tuple[str, ...], outputs: tuple[str, ...] = ()) -> None:
        """The model and the prior on a batch of frames, for the heatmaps `maps` and the model
        `outputs` (a segmenter's `needs`) they still lack; the model's outputs come together."""
        for name in maps:
            check_choice("heatmap", name, MAP_NAMES)
        if self.model is None and set(maps) - set(TRAINING_FREE_MAPS):
            raise UsageError(
                f"the {', '.join(sorted(set(maps) - set(TRAINING_FREE_MAPS)))} map(s) need a trained model",
                hint="pass --checkpoint FILE (or train one with `gsavl train`), or use --map obj or --map text (zero-shot)",
            )
        run_model = self.family is not None and (bool(outputs) or any(m in ("av", "avobj") for m in maps))
        need = set(self.family.outputs) if run_model and self.family is not None else set()
        need |= {"obj"} if any(m in ("obj", "avobj", "textobj") for m in maps) else set()
        need |= {"text"} if any(m in TEXT_MAPS for m in maps) else set()
        todo = [c for c in clips if not need <= set(c.coarse)]
        if not todo:
            return
        transform = features.test_transform(self.config.image_size, interpolation=self.interpolation)
        images = torch.stack([transform(c.frame) for c in todo]).to(self.device)
        found: dict[str, torch.Tensor] = {}
        if run_model and self.family is not None and self.model is not None:
            lengths = torch.tensor([c.audio.shape[0] for c in todo], dtype=torch.long, device=self.device)
            audio = (
                torch.nn.utils.rnn.pad_sequence([c.audio for c in todo], batch_first=True)
                if todo[0].audio.dim() == 3
                else torch.stack([c.audio for c in todo])
            )
            with torch.no_grad(), eval_mode(self.model):
                found.update(self.family.predict(self.model, images, audio.to(self.device), lengths))
        if "obj" in need:
            found.update(coarse_maps(None, self._prior_for(maps), images, None, None, ("obj",)))
        if "text" in need:
            text, heard = self.zeroshot.coarse([c.frame for c in todo], [c.sound for c in todo])
            found["text"] = text.to(self.device)
            for clip, labels in zip(todo, heard):
                clip.heard = labels
        for k, clip in enumerate(todo):
            clip.coarse.update({name: maps_[k : k + 1] for name, maps_ in found.items()})

    def heatmap_tensor(
        self, map_name: str = "avobj", *, clip: PreparedClip | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """One heatmap [H,W] in [0,1] at the frame's size (or `size`), on the predictor's device."""
        current = self._current(clip)
        size = tuple(size or current.size)  # type: ignore[assignment]
        if (map_name, size) not in current.heat:
            self._compute_coarse([current], (map_name,))
            coarse = {k: v for k, v in current.coarse.items() if k in ("av", "obj", "text")}  # the maps' inputs
            full = full_maps(coarse, size, (map_name,), alpha=self.alpha, align_corners=self.align_corners)
            current.heat[(map_name, size)] = full[map_name][0]
        return current.heat[(map_name, size)]

    def heatmaps(self, maps: Sequence[str] = PAPER_MAPS, *, clip: PreparedClip | None = None) -> dict[str, np.ndarray]:
        """`av`, `obj`, `avobj` (or `maps`, e.g. the zero-shot `text`), each float32 [H,W] at the frame's size."""
        return {m: self.heatmap_tensor(m, clip=clip).float().cpu().numpy() for m in maps}

    def listening_score(self, *, clip: PreparedClip | None = None) -> float:
        """How strongly the frame matches its audio (the family's `listening_score`); NaN without a model."""
        return float(self._listening([self._current(clip)])[0])

    def listening_scores(self, clips: Sequence[ClipInput], *, batch_size: int = 8) -> np.ndarray:
        """Listening scores of many frames, without the segmenter's image encoder (abstention calibration)."""
        prepared = [
            PreparedClip(c.key or "clip", _check_frame(c.frame), self._audio(c), None)  # type: ignore[arg-type]
            for c in clips
        ]
        return np.concatenate(
            [self._listening(prepared[i : i + batch_size]) for i in range(0, len(prepared), batch_size)] or [[]]
        )

    def _listening(self, clips: list[PreparedClip]) -> np.ndarray:
        if self.family is None:
            return np.full(len(clips), np.nan)
        self._compute_coarse(clips, (), self.family.outputs)
        outputs = {name: torch.cat([c.coarse[name] for c in clips]) for name in self.family.outputs}
        return self.family.listening_score(outputs).float().cpu().numpy()

    # -- prompts and masks ---------------------------------------------------------------

    def _embedding(self, clip: PreparedClip) -> ImageEmbedding:
        """The clip's embedding with the model outputs the segmenter reads (`Segmenter.needs`)."""
        needs = self.segmenter.needs
        if not needs:
            return clip.embedding
        self._compute_coarse([clip], (), needs)
        return replace(clip.embedding, outputs={name: clip.coarse[name] for name in needs})

    def predict(
        self,
        map: str = "avobj",
        sampler: str = "prob",
        seed: int = 0,
        *,
        clip: PreparedClip | None = None,
        heatmap: np.ndarray | torch.Tensor | None = None,
        negatives: int = 0,
        mask_choice: str = "single",
        cascade_rounds: int = 1,
        cascade_threshold: float = 0.3,
        **sampler_params: Any,
    ) -> Prediction:
        """Prompts from `sampler` on heatmap `map` (or the given `heatmap`), then the mask.

        With `cascade_rounds > 1`, a mask whose agreement with the heatmap (soft IoU) is
        below `cascade_threshold` is rejected: its region is removed from the sampling map
        (renormalised to max 1) and the next round samples from what is left; negatives are
        drawn in every round. The best-agreeing round's mask and the prompts that produced
        it are returned (`rounds` = rounds run). A segmenter that takes no prompts (the
        model's own mask) is asked once, with none: no sampler, heatmap or cascade.
        With an abstention threshold, a frame whose listening score is below it gets no
        prompts and an empty mask (`abstained`).
        """
        current = self._current(clip)
        listening = float("nan")
        if self.abstain_below is not None:
            listening = self.listening_score(clip=current)
            if listening < self.abstain_below:
                return Prediction(
                    points=np.zeros((0, 2), np.float32),
                    labels=np.zeros(0, np.int64),
                    mask=np.zeros(current.size, bool),
                    score=float("nan"),
                    rounds=0,
                    map=map,
                    sampler=sampler if self.segmenter.prompted else self.segmenter.name,
                    segmenter=self.segmenter.name,
                    abstained=True,
                    listening=listening,
                )
        embedding = self._embedding(current)
        if not self.segmenter.prompted:
            none = Prompts(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
            own = self.segmenter.segment_many(embedding, [none], mask_choice=mask_choice)[0]
            name = self.segmenter.name
            return Prediction(
                points=none.points,
                labels=none.labels,
                mask=own.mask,
                score=float(own.score),
                rounds=1,
                map=map,
                sampler=name,
                segmenter=name,
                listening=listening,
            )
        if cascade_rounds < 1:
            raise UsageError(f"cascade rounds must be >= 1, got {cascade_rounds}")
        heat = (self.heatmap_tensor(map, clip=current) if heatmap is None else samplers.as_heatmap(heatmap)).to(
            self.device
        )
        if tuple(heat.shape) != current.size:
            raise UsageError(f"heatmap {tuple(heat.shape)} and frame {current.size} differ in size")
        generator = prompt_generator(seed, current.key, map, sampler)
        sampling, best, best_prompts, best_agreement, used = heat, None, None, -1.0, 0
        for used in range(1, cascade_rounds + 1):  # noqa: B007 (`used` is the rounds count after the loop)
            prompts = samplers.sample(sampler, sampling, generator=generator, negatives=negatives, **sampler_params)
            result = self.segmenter.segment_many(embedding, [prompts], mask_choice=mask_choice, heatmap=heat)[0]
            mask = torch.from_numpy(result.mask).to(heat.device)
            agreement = float(soft_iou(heat, mask))
            if agreement > best_agreement:
                best, best_prompts, best_agreement = result, prompts, agreement
            if cascade_rounds == 1 or agreement >= cascade_threshold:
                break
            sampling = sampling * ~mask
            peak = sampling.max()
            if not bool(peak > 0):
                break
            sampling = sampling / peak
        assert best is not None and best_prompts is not None
        heard = current.heard[: self.zeroshot.top_labels] if map in TEXT_MAPS and current.heard else ()
        return Prediction(
            points=best_prompts.points,
            labels=best_prompts.labels,
            mask=best.mask,
            score=float(best.score),
            rounds=used,
            map=map,
            sampler=sampler,
            segmenter=self.segmenter.name,
            agreement=best_agreement,
            listening=listening,
            heard=heard,
        )


@dataclass
class SamplerChoice:
    """A sampler by name with its options (`predict(sampler=name, **params)`)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
