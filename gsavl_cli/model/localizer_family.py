"""The "localizer" model family: the self-supervised GSAVL / EZ-VSL localizer (presets gsavl, ezvsl).

Training: (frame, audio) pairs, Adam, the MIL contrastive loss; heatmap cIoU on --val
through the same Predictor as `eval` (`gsavl_cli.validation.heatmap_metrics`). Frozen
trunks whose outputs repeat every epoch run once per clip (`commands/frozen_trunks.py`).
Inference: the av map S_ii (`model.coarse_maps`). Original GSAVL (VGGish audio) and
EZ-VSL (ResNet-18 audio) `best.pth` files are recognised by their parameter names and
mapped onto ours (docs/architecture.md, "Adding a model family").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gsavl_cli.errors import UsageError
from gsavl_cli.model.config import ModelConfig, config_from_preset
from gsavl_cli.model.family import Imported, ModelFamily, Recipe, register_family
from gsavl_cli.model.heatmap import coarse_maps
from gsavl_cli.model.localizer import Localizer

if TYPE_CHECKING:
    from gsavl_cli.commands.train import TrainConfig

LOCALIZER_LR = 1e-4

# Original GSAVL / EZ-VSL parameter names -> ours (after removing `module.`/`backbone.`).
ORIGINAL_PREFIXES = {
    "imgnet.": "image_trunk.",
    "img_proj.": "image_proj.",
    "audnet.": "audio.trunk.",
    "aud_proj.": "audio.proj.",
}
# The originals replaced these heads by nn.Identity; a variant that kept them is fine too.
_ORIGINAL_IGNORED = ("imgnet.fc.", "audnet.fc.")
_ORIGINAL_FIELDS = ("epoch", "best_cIoU", "best_Auc", "best_Pr")
_ORIGINAL_HINT = "pass a checkpoint written by `gsavl train` (or an original GSAVL / EZ-VSL best.pth)"


def localizer_step(
    model: nn.Module, batch: dict[str, torch.Tensor], device: str, autocast: torch.autocast
) -> tuple[torch.Tensor, int]:
    """The localizer's MIL contrastive loss on one batch of (frame, audio) pairs."""
    module = model.module if isinstance(model, DistributedDataParallel) else model
    images = batch["images"].to(device, non_blocking=True)
    audio = batch["audio"].to(device, non_blocking=True)
    lengths = batch["lengths"].to(device, non_blocking=True)
    if device.startswith("cuda"):
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast:
        img_maps, aud = model(images, audio, lengths)
        loss, _ = module.loss(img_maps.float(), aud.float())
    return loss, len(images)


@register_family
class LocalizerFamily(ModelFamily):
    """The audio-visual localizer of the GSAVL paper (and EZ-VSL's, preset ezvsl)."""

    name = "localizer"
    config_class = ModelConfig
    outputs = ("av",)
    default_segmenter = "sam"
    foreign_formats = ("GSAVL", "EZ-VSL")

    def build(self, config: ModelConfig) -> nn.Module:
        """An untrained `Localizer` of `config`."""
        return Localizer(config)

    def recipe(self, cfg: TrainConfig, world: int) -> Recipe:
        """Self-supervised: (frame, audio) pairs, Adam, MIL contrastive loss; heatmap cIoU on --val."""
        from gsavl_cli import validation
        from gsavl_cli.commands import frozen_trunks
        from gsavl_cli.commands.train import on_device, train_ids, trainable, trained_audio_window
        from gsavl_cli.data.clips import AudioVisualClips, collate
        from gsavl_cli.datasets import store_dataset
        from gsavl_cli.model.localizer import build_localizer
        from gsavl_cli.training_health import tie_loss

        if cfg.negative_audio:
            raise UsageError(
                "negative-audio training is not available for the localizer yet (its contrastive loss already "
                "contrasts each frame with the other clips' audio)",
                hint="drop --negative-audio, or train ssl2avs",
            )
        layout = store_dataset(cfg.data)  # its protocol: augmentation or the plain test resize
        cfg.model = replace(
            cfg.model,
            audio_seconds=cfg.model.audio_seconds or trained_audio_window(cfg.data, cfg.model.audio_encoder),
            test_interpolation=layout.test_interpolation,
        )
        cfg.lr = LOCALIZER_LR if cfg.lr is None else cfg.lr
        dataset = AudioVisualClips(
            cfg.data,
            train_ids(cfg.data, cfg.split, cfg.subset, cfg.exclude),
            cfg.model.audio_encoder,
            layout.train_transform(cfg.model.image_size),
        )
        if len(dataset) < 2:
            raise UsageError(f"{cfg.data} has {len(dataset)} training clip(s); contrastive training needs at least 2")
        val_path = cfg.val
        val_ids = (
            [i for i in validation.validation_ids(val_path, cfg.val_split) if i not in cfg.exclude]
            if val_path is not None
            else []
        )
        model = on_device(
            build_localizer(
                cfg.model,
                pretrained=cfg.pretrained,
                vggish_checkpoint=cfg.vggish_checkpoint,
                resnet_checkpoint=cfg.resnet_checkpoint,
                identity_image_init=cfg.identity_init,
            ),
            cfg.device,
        )
        optimizer = torch.optim.Adam(trainable(model), lr=cfg.lr)
        device = cfg.device
        validate = (lambda m: validation.heatmap_metrics(m, val_path, val_ids, device)) if val_ids else None
        cache = frozen_trunks.trunk_cache_for(model, len(dataset), layout.augment, world)
        step = cache.step if cache is not None else localizer_step
        beta = cfg.model.beta
        return Recipe(
            dataset, collate, model, optimizer, step, validate, "ciou", chance_loss=lambda b: (1 + beta) * tie_loss(b)
        )

    def describe_validation(self, val: dict[str, Any]) -> str:
        """The localizer's validation on the progress line: heatmap cIoU and AUC."""
        return f"val cIoU {val['ciou']:.4f} AUC {val['auc']:.4f}"

    def predict(
        self, model: nn.Module, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The coarse av map of the batch (`coarse_maps` without the object prior)."""
        return coarse_maps(model, None, images, audio, lengths, ("av",))  # type: ignore[arg-type]

    def import_checkpoint(self, raw: Any, state: dict[str, torch.Tensor], path: Path) -> Imported | None:
        """An original GSAVL (VGGish audio) / EZ-VSL (ResNet-18 audio) state dict, mapped to ours."""
        if "audnet.features.0.weight" in state:
            preset, source = "gsavl", "original GSAVL"
        elif "audnet.conv1.weight" in state:
            preset, source = "ezvsl", "original EZ-VSL"
        else:
            return None
        if "img_proj.weight" not in state:
            raise UsageError(f"{path} has no img_proj.weight", hint=_ORIGINAL_HINT)
        config = config_from_preset(preset, dim=int(state["img_proj.weight"].shape[0]))
        if preset == "gsavl":
            config.audio_seconds = None
        mapped = {}
        for key, value in state.items():
            if key.startswith(_ORIGINAL_IGNORED):
                continue
            prefix = next((p for p in ORIGINAL_PREFIXES if key.startswith(p)), "")
            mapped[ORIGINAL_PREFIXES.get(prefix, "") + key[len(prefix) :]] = value
        extra: dict[str, Any] = {"source": source}
        if isinstance(raw, dict):
            extra.update({key: _plain(raw[key]) for key in _ORIGINAL_FIELDS if key in raw})
        return Imported(config, mapped, extra)


def _plain(value: Any) -> Any:
    """NumPy / tensor scalars as Python numbers, so `extra` stays plain data."""
    return value.item() if hasattr(value, "item") else value
