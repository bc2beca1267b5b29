"""SSL2AVS configuration and its presets.

The defaults are the seed's best settings (docs/ssl2avs.md; built on AVSegFormer): 256-d
embedding, 300 queries with a learnable query embedding, 6 + 6 transformer layers with
FFN 2048, 8 heads, dropout 0.1, deformable attention over 3 levels with 4 points,
bidirectional audio<->visual fusion, the ACT heatmap activation, frozen VGGish (one
128-d embedding per second of audio), 224x224 frames, tau = 0.03 and the loss weights
of table 12: lambda1 = 0.01 (contrastive alignment), lambda2 = 0.10 (auxiliary
localization), lambda3 = 0.10 (each intermediate mask).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gsavl_cli.errors import UsageError
from gsavl_cli.model.config import check_choice, register_preset, strict_from_dict

BACKBONES = ("resnet50", "pvt_v2_b5", "tiny")
AUDIO_NETS = ("vggish", "tiny")
FUSIONS = ("bidirectional", "a2v", "v2a", "none")
ACTIVATIONS = ("act", "sigmoid", "none")
VGGISH_EXAMPLE_SECONDS = 0.96
"""One VGGish log-mel example: the audio that goes with one frame (AVSBench: second i -> frame i)."""


@dataclass
class SSL2AVSConfig:
    """Everything that shapes an SSL2AVS model; stored in every checkpoint.

    `backbone="tiny"` and `audio_net="tiny"` are small test networks (fast on a CPU, no
    pretrained weights). `remove_maxpool` is the paper's "+" variant (ResNet-50 without
    the stem max-pool: every feature map twice as large). `encoder_levels` of the four
    backbone levels (the deepest ones) go through the deformable encoder; the shallowest
    level feeds the mask feature, as in AVSegFormer.
    """

    backbone: str = "resnet50"
    remove_maxpool: bool = False
    audio_net: str = "vggish"
    freeze_audio: bool = True
    embed_dim: int = 256
    num_queries: int = 300
    learnable_queries: bool = True
    encoder_layers: int = 6
    decoder_layers: int = 6
    ffn_dim: int = 2048
    num_heads: int = 8
    dropout: float = 0.1
    deform_points: int = 4
    encoder_levels: int = 3
    fusion: str = "bidirectional"
    activation: str = "act"
    feature_enhancement: bool = True
    image_size: int = 224
    tau: float = 0.03
    lambda_contrastive: float = 0.01
    lambda_localization: float = 0.10
    lambda_intermediate: float = 0.10

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("audio network", self.audio_net, AUDIO_NETS)
        check_choice("fusion", self.fusion, FUSIONS)
        check_choice("activation", self.activation, ACTIVATIONS)
        counts = (
            self.embed_dim,
            self.num_queries,
            self.ffn_dim,
            self.num_heads,
            self.deform_points,
            self.encoder_levels,
            self.decoder_layers,
        )
        if min(counts) < 1 or self.encoder_layers < 0:
            raise UsageError("SSL2AVS sizes must be positive (layers, queries, dims, heads, points, levels)")
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 2:
            raise UsageError(f"embed_dim {self.embed_dim} must split into {self.num_heads} heads of even size")
        if not 1 <= self.encoder_levels <= 3:
            raise UsageError(f"encoder_levels must be 1, 2 or 3 (of the 4 backbone levels), got {self.encoder_levels}")
        if self.remove_maxpool and self.backbone == "pvt_v2_b5":
            raise UsageError("remove_maxpool is the ResNet variant ('+'); PVT-v2 has no stem max-pool")
        if self.image_size < 32 or self.image_size % 32:
            raise UsageError(
                f"image_size must be a multiple of 32, got {self.image_size}", hint="224 or 512 as in the paper"
            )
        if not 0.0 <= self.dropout < 1.0 or self.tau <= 0:
            raise UsageError(f"invalid dropout {self.dropout} or tau {self.tau}")
        if min(self.lambda_contrastive, self.lambda_localization, self.lambda_intermediate) < 0:
            raise UsageError("loss weights must be >= 0")

    @property
    def audio_encoder(self) -> str:
        """The audio front end the data pipeline must produce: VGGish log-mel examples."""
        return "vggish"

    @property
    def audio_window(self) -> float:
        """Seconds of audio per frame: one VGGish example."""
        return VGGISH_EXAMPLE_SECONDS

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict, as a checkpoint stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSL2AVSConfig:
        """The config from a checkpoint's dict; unknown keys are refused (`strict_from_dict`)."""
        return strict_from_dict(cls, data, "SSL2AVS")


@register_preset("ssl2avs-r50")
def ssl2avs_r50() -> SSL2AVSConfig:
    """SSL2AVS with an ImageNet ResNet-50 (paper: 136.45 M parameters, 96.39 FPS)."""
    return SSL2AVSConfig()


@register_preset("ssl2avs-r50-plus")
def ssl2avs_r50_plus() -> SSL2AVSConfig:
    """The "+" variant: ResNet-50 without its stem max-pool (better on MS3, table 3)."""
    return SSL2AVSConfig(remove_maxpool=True)


@register_preset("ssl2avs-pvt")
def ssl2avs_pvt() -> SSL2AVSConfig:
    """SSL2AVS with an ImageNet PVT-v2-b5 (paper: 179.72 M parameters, 80.06 FPS)."""
    return SSL2AVSConfig(backbone="pvt_v2_b5")


@register_preset("ssl2avs-tiny")
def ssl2avs_tiny() -> SSL2AVSConfig:
    """A small test configuration: tiny image and audio networks (trained from scratch), 128x128 frames."""
    return SSL2AVSConfig(
        backbone="tiny",
        audio_net="tiny",
        freeze_audio=False,
        embed_dim=64,
        num_queries=16,
        encoder_layers=2,
        decoder_layers=2,
        ffn_dim=128,
        num_heads=4,
        image_size=128,
    )
