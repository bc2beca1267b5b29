"""Tiny random CLAP and CLIPSeg models with byte-level tokenizers, for tests and benchmarks (never on a real run's path).

`save_tiny_clap` / `save_tiny_clipseg` write a folder as `save_pretrained` does and add the files of the hub's layout
that the resolver fetches (`weights.ZEROSHOT_FILES`: preprocessor_config.json, vocab.json, merges.txt), so a test can
give it as the explicit checkpoint or copy those files where the resolver's cache looks. The tokenizers' vocabularies
hold every byte and no merges: each character is a token, so different labels get different text embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

_MERGES = "#version: 0.2\n"


def _bytes() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _roberta_vocab() -> dict[str, int]:
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in _bytes():
        vocab.setdefault(char, len(vocab))
    vocab["<mask>"] = len(vocab)
    return vocab


def _clip_vocab() -> dict[str, int]:
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for char in _bytes():
            vocab.setdefault(char + suffix, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def _write_hub_files(folder: Path, processor: Any, part: Any, vocab: dict[str, int]) -> None:
    processor.save_pretrained(folder)
    part.save_pretrained(folder)  # preprocessor_config.json, the hub's name for it
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text(_MERGES, encoding="utf-8")


def clap_processor() -> Any:
    """CLAP's processor: the library's feature extractor (48 kHz, 64 mel bins, 10 s) and a byte-level tokenizer."""
    from transformers import ClapFeatureExtractor, ClapProcessor, RobertaTokenizer

    tokenizer = RobertaTokenizer(vocab=_roberta_vocab(), merges=[])
    return ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tokenizer)


def clipseg_processor() -> Any:
    """CLIPSeg's processor: frames resized to its 352 x 352 input, ImageNet statistics, a byte-level tokenizer."""
    from transformers import CLIPSegProcessor, CLIPTokenizer, ViTImageProcessor

    images = ViTImageProcessor(
        size={"height": 352, "width": 352}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    )
    return CLIPSegProcessor(image_processor=images, tokenizer=CLIPTokenizer(vocab=_clip_vocab(), merges=[]))


def build_tiny_clap(seed: int = 0, hidden: int = 16) -> tuple[Any, Any]:
    """A random CLAP (HTSAT audio encoder of two stages, one-layer text encoder) and its processor."""
    from transformers import ClapConfig, ClapModel

    config = ClapConfig(
        text_config={
            "vocab_size": len(_roberta_vocab()),
            "hidden_size": hidden,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 80,
            "projection_dim": 8,
        },
        audio_config={
            "depths": [1, 1],
            "num_attention_heads": [1, 2],
            "patch_embeds_hidden_size": hidden // 2,
            "hidden_size": hidden,
            "projection_dim": 8,
        },
        projection_dim=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config).eval()
    return model, clap_processor()


def build_tiny_clipseg(seed: int = 0, hidden: int = 16) -> tuple[Any, Any]:
    """A random CLIPSeg (three-layer ViT at CLIPSeg's 352 input, 32-pixel patches) and its processor."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    vocab = _clip_vocab()
    layer = {"hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 2 * hidden}
    text = {"vocab_size": len(vocab), "num_hidden_layers": 1, "max_position_embeddings": 77}
    ids = {
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }
    config = CLIPSegConfig(
        text_config={**layer, **text, **ids},
        vision_config={**layer, "num_hidden_layers": 3, "image_size": 352, "patch_size": 32},
        projection_dim=8,
        extract_layers=[1, 2],
        reduce_dim=8,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPSegForImageSegmentation(config).eval()
    return model, clipseg_processor()


def save_tiny_clap(folder: Path, seed: int = 0) -> Path:
    """`build_tiny_clap` saved into `folder` (save_pretrained + the hub's file names)."""
    model, processor = build_tiny_clap(seed)
    model.save_pretrained(folder)
    _write_hub_files(Path(folder), processor, processor.feature_extractor, _roberta_vocab())
    return Path(folder)


def save_tiny_clipseg(folder: Path, seed: int = 0) -> Path:
    """`build_tiny_clipseg` saved into `folder` (save_pretrained + the hub's file names)."""
    model, processor = build_tiny_clipseg(seed)
    model.save_pretrained(folder)
    _write_hub_files(Path(folder), processor, processor.image_processor, _clip_vocab())
    return Path(folder)
