"""Still images (PNG masks, extracted frames), encoded and decoded with torchvision.io."""

from __future__ import annotations

import os

import numpy as np
import torch
import torchvision.io as tvio

from gsavl_cli.errors import MediaError
from gsavl_cli.io.files import write_atomic
from gsavl_cli.io.media.command import check_file


def encode_image(frame: np.ndarray) -> bytes:
    """PNG bytes of an [H,W,3] RGB or [H,W] grey/bool image (bool masks become 0/255)."""
    array = np.asarray(frame)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected an [H,W] or [H,W,C] uint8/bool image, not {array.dtype} {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tvio.encode_png(tensor).numpy().tobytes()


def decode_image(data: bytes, mode: str = "RGB") -> np.ndarray:
    """Decode PNG/JPEG bytes to [H,W,3] uint8 RGB (`mode="GRAY"`: [H,W] uint8)."""
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    image = tvio.decode_image(tensor, mode=tvio.ImageReadMode[mode])
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if mode == "GRAY" else array


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """An image file as [H,W,3] uint8 RGB (`mode="GRAY"`: [H,W] uint8)."""
    path = check_file(path)
    try:
        return decode_image(path.read_bytes(), mode)
    except RuntimeError as exc:
        raise MediaError(f"cannot decode image {path.name}: {exc}", hint="the image is corrupt") from exc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A binary mask PNG (0/255 grey, as in AVSBench) as [H,W] bool."""
    return read_image(path, mode="GRAY") > 127


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write an [H,W] bool/uint8 mask or an [H,W,3] uint8 image as PNG."""
    write_atomic(path, encode_image(array))
