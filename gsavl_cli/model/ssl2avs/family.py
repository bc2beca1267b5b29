"""The "ssl2avs" model family: supervised, localization-guided audio-visual segmentation (presets ssl2avs-*).

Training: clips with masks, AdamW, the model's own loss (`SSL2AVS.training_loss`); mask
M_J on the val (else test) split (`commands/train_segmentation.py`), AVSegFormer's
schedule (batch 4 clips; epochs by the store's layout). Inference: the localization
heatmap is the av map, the mask head's logits the "mask" output, so its default
segmenter is its own mask ("model") (docs/ssl2avs.md, docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gsavl_cli.errors import UsageError
from gsavl_cli.model.family import ModelFamily, Recipe, register_family
from gsavl_cli.model.ssl2avs.config import SSL2AVSConfig
from gsavl_cli.model.ssl2avs.model import SSL2AVS, build_ssl2avs

if TYPE_CHECKING:
    from gsavl_cli.commands.train import TrainConfig


@register_family
class SSL2AVSFamily(ModelFamily):
    """SSL2AVS on AVSegFormer: a localization heatmap and a mask head of its own."""

    name = "ssl2avs"
    config_class = SSL2AVSConfig
    outputs = ("av", "mask")
    default_segmenter = "model"

    def build(self, config: SSL2AVSConfig) -> nn.Module:
        """An untrained `SSL2AVS` of `config`."""
        return SSL2AVS(config)

    def recipe(self, cfg: TrainConfig, world: int) -> Recipe:
        """Supervised: clips with masks, AdamW, the family's loss; mask M_J on the val (else test) split."""
        from gsavl_cli.commands import train_segmentation as seg
        from gsavl_cli.commands.train import on_device, train_ids, trainable

        if cfg.identity_init or cfg.resnet_checkpoint:
            raise UsageError(
                "--identity-init and --resnet-checkpoint belong to the localizer",
                hint="for ssl2avs pass --backbone-checkpoint",
            )
        cfg.lr = seg.DEFAULT_LR if cfg.lr is None else cfg.lr
        dataset = seg.segmentation_dataset(
            cfg.data,
            train_ids(cfg.data, cfg.split, cfg.subset, cfg.exclude),
            cfg.model.image_size,
            cfg.frames,
            cfg.augment,
            seg.DEFAULT_NEGATIVE_AUDIO if cfg.negative_audio is None else cfg.negative_audio,
        )
        val_path = cfg.val or cfg.data
        val_ids = seg.segmentation_val_ids(
            val_path, cfg.val_split, required=cfg.val is not None or cfg.val_split is not None
        )
        model = on_device(
            build_ssl2avs(
                cfg.model,
                pretrained=cfg.pretrained,
                vggish_checkpoint=cfg.vggish_checkpoint,
                backbone_checkpoint=cfg.backbone_checkpoint,
            ),
            cfg.device,
        )
        optimizer = torch.optim.AdamW(trainable(model), lr=cfg.lr)
        image_size, device = cfg.model.image_size, cfg.device
        validate = (
            (lambda m: seg.segmentation_metrics(m, val_path, val_ids, device, image_size=image_size))
            if val_ids
            else None
        )
        return Recipe(
            dataset, None, model, optimizer, seg.segmentation_step, validate, "miou", {"find_unused_parameters": True}
        )

    def schedule(self, dataset: str, data: Path) -> tuple[int, int]:
        """AVSegFormer's: 4 clips a batch, the epochs of the store's layout (S4 30, MS3 60)."""
        from gsavl_cli.commands.train_segmentation import DEFAULT_BATCH, default_epochs

        return DEFAULT_BATCH, default_epochs(data)

    def describe_validation(self, val: dict[str, Any]) -> str:
        """SSL2AVS's validation on the progress line: mask mIoU and best-threshold F."""
        return f"val mIoU {val['miou']:.4f} best-threshold F {val['best_threshold_f'] or 0:.4f}"

    def predict(
        self, model: nn.Module, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The model's heatmap as `av` and its mask logits as `mask`."""
        out = model.predict(images, audio, lengths)  # type: ignore[operator]
        return {"av": out["heatmap"], "mask": out["mask_logits"]}

    def listening_score(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mask head's most confident pixel, sigmoid(max logit): ACT's heatmap is standardised
        per frame, so its peak says nothing about whether anything sounds."""
        return outputs["mask"].flatten(1).amax(dim=1).float().sigmoid()
