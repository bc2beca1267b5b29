"""torch Datasets over the HDF5 store: one frame + its audio features per clip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

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
