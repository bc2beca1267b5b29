"""torch Datasets over the HDF5 store: one frame + its audio features per clip (self-supervised
localizer), or a clip's frames + audio + masks (supervised segmentation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from gsavl_cli.data.features import SAMPLE_RATE, test_transform, vggish_examples
from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import Store, open_store

AUDIO_ARRAY = {"vggish": "vggish", "resnet18": "spectrogram"}


def audio_array_name(audio_encoder: str) -> str:
    """Which stored array feeds an audio encoder."""
    return AUDIO_ARRAY[audio_encoder]


def require_arrays(store: Store, ids: list[str], names: tuple[str, ...]) -> None:
    """Fails early, with the fix, when a data file lacks what the model needs."""
    if not ids:
        return
    arrays = store.arrays(ids[0])
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UsageError(
            f"{store.path} has no {', '.join(missing)} arrays",
            hint="re-create it with `gsavl preprocess` from this version of gsavl",
        )


class AudioVisualClips(Dataset):
    """(image, audio, index) items for training and heatmap evaluation.

    The store is opened lazily by each DataLoader worker (see `Store`).
    """

    def __init__(self, path: Path, ids: list[str], audio_encoder: str, transform: Callable) -> None:
        self.store = open_store(path)
        self.ids = ids
        self.audio_name = audio_array_name(audio_encoder)
        self.transform = transform
        require_arrays(self.store, ids, (self.audio_name, "frames"))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        item = self.store.read(self.ids[index], ("first_frame", self.audio_name))
        image = self.transform(item["first_frame"])
        audio = torch.from_numpy(np.ascontiguousarray(item[self.audio_name], dtype=np.float32))
        return image, audio, index


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Stacks images; pads log-mel example sequences (VGGish) to the longest, with lengths."""
    images = torch.stack([b[0] for b in batch])
    audios = [b[1] for b in batch]
    lengths = torch.tensor([a.shape[0] for a in audios], dtype=torch.long)
    if audios[0].dim() == 3:  # [T,96,64] log-mel examples of varying T
        audio = torch.nn.utils.rnn.pad_sequence(audios, batch_first=True)
    else:
        audio = torch.stack(audios)
    return {"images": images, "audio": audio, "lengths": lengths, "index": torch.tensor([b[2] for b in batch])}


FRAME_CHOICES = ("all", "annotated")


def require_masks(store: Store, ids: list[str]) -> None:
    """Supervised training needs a ground-truth mask for every clip: one clear error otherwise."""
    lacking = [i for i in ids if "mask_frames" not in store.read(i, ("mask_frames",))]
    if lacking:
        raise UsageError(
            f"{store.path} has no ground-truth masks for {len(lacking)} of {len(ids)} clips (e.g. {lacking[0]}); "
            "ssl2avs trains on masks",
            hint="preprocess an AVSBench S4/MS3 layout (masks come from gt_masks/), or train the self-supervised localizer",
        )


class SegmentationClips(Dataset):
    """Supervised audio-visual segmentation items (SSL2AVS / AVSegFormer), one clip each.

    A clip's frames (`frames="all"`, as AVSegFormer feeds all 5 of an S4 clip although only
    the first has a mask; or only the `"annotated"` ones), each with its own second of audio
    (the i-th VGGish example for frame i) and its mask resized to `image_size` (zeros where
    the frame has none, `labelled` says which). `audio_from` maps a clip to the clip whose
    audio it gets (the shuffled-audio control). `augment` (not AVSegFormer's protocol; for
    small data sets and models trained from scratch) flips the whole clip horizontally with
    probability 1/2 and crops it to a random square of 70-100 % of the side, resized back.

    `negatives` is the share of items that hear *negative* audio instead of their own
    (AVSBench-Robust's balanced training, Li et al. 2025): digital silence, white noise, or
    the audio of a clip of another category (off-screen sound), one of the three at random;
    their target is the empty mask and `heard` is False. Draws use torch's global RNG
    (seeded per item by the training loader).
    """

    def __init__(
        self,
        path: Path,
        ids: list[str],
        image_size: int,
        frames: str = "all",
        audio_from: dict[str, str] | None = None,
        augment: bool = False,
        negatives: float = 0.0,
    ) -> None:
        if frames not in FRAME_CHOICES:
            raise UsageError(f"unknown frame choice {frames!r}", hint=f"choose from {', '.join(FRAME_CHOICES)}")
        self.store = open_store(path)
        self.ids = ids
        self.size = image_size
        self.frames = frames
        self.audio_from = audio_from or {}
        self.augment = augment
        if not 0.0 <= negatives < 1.0:
            raise UsageError(f"the share of negative-audio items must be in [0, 1), got {negatives}")
        self.negatives = negatives
        self.transform = test_transform(image_size, "bilinear")  # AVSegFormer: a plain bilinear resize, no augmentation
        require_arrays(self.store, ids, ("vggish", "frames"))
        require_masks(self.store, ids)
        categories = {i: str(self.store.meta(i).get("category", "")) for i in ids} if negatives else {}
        self._elsewhere = {i: [j for j in ids if categories[j] != categories[i]] for i in categories}

    def __len__(self) -> int:
        return len(self.ids)

    def _masks(self, masks: np.ndarray, annotated: list[int], chosen: list[int]) -> torch.Tensor:
        full = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
        resized = (
            torch.nn.functional.interpolate(full, size=(self.size, self.size), mode="bilinear", antialias=True)[:, 0]
            >= 0.5
        )
        out = torch.zeros(len(chosen), self.size, self.size)
        for row, frame in enumerate(chosen):
            if frame in annotated:
                out[row] = resized[annotated.index(frame)].float()
        return out

    def _augmented(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same flip and crop for the frames [F,3,S,S] and their masks [F,S,S].

        torchvision's functional ops with our own draws (v2's random transforms draw
        differently); the masks are resized bilinearly and rounded like the frames, not
        as `tv_tensors.Mask`, which v2 resizes with nearest neighbours.
        """
        if torch.rand(()) < 0.5:
            images, masks = TF.horizontal_flip(images), TF.horizontal_flip(masks)
        side = int(self.size * (0.7 + 0.3 * float(torch.rand(()))))
        top, left = (int(torch.randint(0, self.size - side + 1, ())) for _ in range(2))
        crop = dict(top=top, left=left, height=side, width=side, size=[self.size, self.size])
        images = TF.resized_crop(images, **crop, interpolation=InterpolationMode.BILINEAR, antialias=False)
        masks = TF.resized_crop(masks[:, None], **crop, interpolation=InterpolationMode.BILINEAR, antialias=False)
        return images, masks[:, 0].round()

    def _negative_audio(self, clip: str, examples: np.ndarray) -> np.ndarray:
        """VGGish examples of silence, white noise (-40 to 0 dBFS RMS) or another category's clip."""
        elsewhere = self._elsewhere.get(clip, [])
        kind = int(torch.randint(0, 3 if elsewhere else 2, ()))
        if kind == 2:
            other = elsewhere[int(torch.randint(0, len(elsewhere), ()))]
            return self.store.read(other, ("vggish",))["vggish"]
        samples = len(examples) * SAMPLE_RATE  # a second per example: enough for as many
        if kind == 0:
            waveform = torch.zeros(samples)
        else:
            rms = 10 ** (-40 * float(torch.rand(())) / 20)
            waveform = (torch.randn(samples) * rms).clamp(-1, 1)
        return vggish_examples(waveform, min_examples=len(examples))[: len(examples)].numpy()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.ids[index]
        item = self.store.read(clip, ("frames", "vggish", "masks", "mask_frames"))
        if clip in self.audio_from:
            item["vggish"] = self.store.read(self.audio_from[clip], ("vggish",))["vggish"]
        annotated = [int(f) for f in item["mask_frames"]]
        chosen = list(range(len(item["frames"]))) if self.frames == "all" else annotated
        heard = not (self.negatives and float(torch.rand(())) < self.negatives)
        examples = item["vggish"] if heard else self._negative_audio(clip, item["vggish"])
        images = torch.stack([self.transform(item["frames"][f]) for f in chosen])
        masks = self._masks(item["masks"], annotated, chosen)
        if self.augment:
            images, masks = self._augmented(images, masks)
        if not heard:
            masks = torch.zeros_like(masks)  # nothing in the frame makes this sound
        return {
            "images": images,
            "audio": torch.from_numpy(
                np.stack([examples[min(f, len(examples) - 1)] for f in chosen]).astype(np.float32)
            ),
            "masks": masks,
            "labelled": torch.tensor([f in annotated for f in chosen]),
            "heard": torch.tensor(heard),
            "index": torch.tensor(index),
        }
