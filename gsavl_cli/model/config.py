"""Model configurations and the preset registry.

A configuration holds everything needed to rebuild a model; every checkpoint stores
it, together with the audio window the model was trained with, so that `localize`,
`eval` and `preprocess` give the model the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from gsavl_cli.errors import UsageError

AUDIO_ENCODERS = ("vggish", "resnet18")
SIMILARITIES = ("cosine", "dot")
T = TypeVar("T")
EZVSL_SECONDS = 3.0
"""EZ-VSL's audio window: 3 s centred on the frame (also VGGSound's for VGGish)."""


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    """UsageError naming the valid choices when `value` is not one of them."""
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}", hint=f"choose one of: {', '.join(choices)}")


def strict_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """A configuration dataclass from a checkpoint's dict; unknown keys mean a newer gsavl wrote it."""
    unknown = sorted(set(data) - {field.name for field in fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise UsageError(
            f"unknown {what} settings: {', '.join(unknown)}",
            hint="the checkpoint was written by a newer gsavl; upgrade gsavl",
        )
    return cls(**data)


@dataclass
class ModelConfig:
    """The localizer's settings.

    `similarity="dot"` with `normalize_features=False` is the original's "dot" ablation
    (the product of features that are not L2-normalised); `cosine` normalises whatever
    the encoders give. `audio_seconds` is the audio window per frame the model was
    trained with (None: the clip's whole audio, as preprocess stores it);
    `test_interpolation` the test-time resize of its training dataset's protocol
    (AVSBench bilinear, VGG-SS bicubic), which `localize` uses.

    `freeze_image` keeps the image trunk fixed (only the 1x1 projection trains) and
    `standardize_audio` puts a BatchNorm1d between the audio trunk and its projection:
    neither is in the original; with randomly initialised stand-in encoders (offline,
    the demo) they turn training into learning the two projections on fixed features,
    which random VGGish outputs only allow once standardised (docs/results.md).
    """

    audio_encoder: str = "vggish"
    similarity: str = "cosine"
    dim: int = 512
    tau: float = 0.03
    beta: float = 0.0
    freeze_audio: bool = False
    image_size: int = 224
    normalize_features: bool = True
    audio_seconds: float | None = None
    test_interpolation: str = "bicubic"
    freeze_image: bool = False
    standardize_audio: bool = False

    def __post_init__(self) -> None:
        check_choice("audio encoder", self.audio_encoder, AUDIO_ENCODERS)
        check_choice("similarity", self.similarity, SIMILARITIES)
        check_choice("test interpolation", self.test_interpolation, ("bilinear", "bicubic"))
        if self.dim < 1 or self.tau <= 0 or self.beta < 0 or self.image_size < 32:
            raise UsageError(
                f"invalid model settings: dim={self.dim}, tau={self.tau}, beta={self.beta}, "
                f"image_size={self.image_size}",
                hint="dim >= 1, tau > 0, beta >= 0, image_size >= 32",
            )
        if self.audio_seconds is not None and self.audio_seconds <= 0:
            raise UsageError(f"audio window must be > 0 s, got {self.audio_seconds}")

    @property
    def audio_window(self) -> float | None:
        """Seconds of audio per frame: EZ-VSL always 3 s; VGGish what it was trained on."""
        if self.audio_encoder == "resnet18":
            return self.audio_seconds or EZVSL_SECONDS
        return self.audio_seconds

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict, as a checkpoint stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The config from a checkpoint's dict; unknown keys are refused (`strict_from_dict`)."""
        return strict_from_dict(cls, data, "model")


PRESETS: dict[str, Callable[[], Any]] = {}


def register_preset(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator registering a zero-argument function that returns a model configuration."""

    def decorate(fn: Callable[[], Any]) -> Callable[[], Any]:
        if name in PRESETS and PRESETS[name] is not fn:
            raise ValueError(f"a model preset named {name!r} is already registered")
        PRESETS[name] = fn
        return fn

    return decorate


@register_preset("gsavl")
def gsavl_preset() -> ModelConfig:
    """GSAVL: pretrained VGGish audio, cosine similarity."""
    return ModelConfig()


@register_preset("ezvsl")
def ezvsl_preset() -> ModelConfig:
    """EZ-VSL: ResNet-18 spectrogram audio, dot product of un-normalised features."""
    return ModelConfig(audio_encoder="resnet18", similarity="dot", normalize_features=False)


def list_presets() -> list[str]:
    """The registered model preset names, sorted."""
    return sorted(PRESETS)


def config_from_preset(name: str, **overrides: Any) -> Any:
    """A fresh configuration of preset `name` with `overrides` applied (validated again)."""
    check_choice("model preset", name, list_presets())
    return replace(PRESETS[name](), **overrides)
