"""SAM image embeddings cached in HDF5 (float16) across evaluation runs, keyed by clip key."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import hdf5_name
from gsavl_cli.segment import ImageEmbedding


class EmbeddingCache:
    """One file per SAM model (`key` names it); a crash leaves at most one entry without sizes, which is ignored."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.file = h5py.File(self.path, "a")
        stored = self.file.attrs.get("sam")
        if stored is not None and stored != key:
            self.file.close()
            raise UsageError(
                f"{path} caches embeddings of another SAM model ({stored})", hint="use another --embedding-cache file"
            )
        self.file.attrs["sam"] = key

    def get(self, clip_key: str) -> ImageEmbedding | None:
        """The cached embedding of `clip_key`, or None when absent or left incomplete by a crash."""
        name = hdf5_name(clip_key)
        if name not in self.file or "original_size" not in self.file[name].attrs:
            return None
        ds = self.file[name]
        return ImageEmbedding(
            torch.from_numpy(ds[()].astype(np.float32)), tuple(ds.attrs["input_size"]), tuple(ds.attrs["original_size"])
        )

    def put(self, clip_key: str, embedding: ImageEmbedding) -> None:
        """Stores `embedding` under `clip_key` (replacing any), as float16, flushed at once."""
        name = hdf5_name(clip_key)
        if name in self.file:
            del self.file[name]
        ds = self.file.create_dataset(name, data=embedding.features.cpu().numpy().astype(np.float16))
        ds.attrs["input_size"], ds.attrs["original_size"] = embedding.input_size, embedding.original_size
        self.file.flush()

    def close(self) -> None:
        """Closes the file; calling it again does nothing."""
        if self.file.id.valid:
            self.file.close()
