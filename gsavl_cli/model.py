"""The model: encoders, the localizer and its loss, heatmaps, the object prior, checkpoints.

Localizer (METHOD.md §2): an ImageNet ResNet-18 trunk (7x7x512 for 224x224) and a 1x1
conv give L2-normalised visual maps f_v [B,dim,h,w]; the audio encoder gives f_a
[B,dim], either

- ``vggish`` (GSAVL): VGGish (AudioSet, the ReLU'd 128-d output, no PCA) per 0.96 s
  example -> Linear 128->dim -> L2-normalise, averaged over the valid examples; or
- ``resnet18`` (EZ-VSL): a randomly initialised 1-channel ResNet-18 on the log
  spectrogram, global max pool -> Linear 512->dim -> L2-normalise.

Similarity S_ij(x,y) between audio i and image j:

- ``cosine`` normalises both features again, so it is the cosine whatever the inputs;
- ``dot`` is the plain dot product of the features as produced. The visual features
  are unit vectors and so is the single EZ-VSL audio vector, so there both agree; the
  VGGish audio vector is a MEAN of unit vectors (norm <= 1), so ``dot`` scales each
  clip's similarities by that norm (this is what the original GSAVL code computed).
  A per-clip positive scale leaves the min-max normalised heatmaps unchanged; it only
  changes the logits of the loss.

Unlike the original implementation, the pretrained VGGish weights are kept (no
re-initialisation pass over them) and can be frozen with ``freeze_audio``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvggish.torchvggish import VGG, make_layers
from torchvision.models.resnet import BasicBlock, ResNet

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError

AUDIO_ENCODERS = ("vggish", "resnet18")
SIMILARITIES = ("cosine", "dot")
MAP_NAMES = ("av", "obj", "avobj")

VGGISH_EXAMPLE_SHAPE = (96, 64)
VGGISH_EMBEDDING = 128
RESNET_CHANNELS = 512

CHECKPOINT_FORMAT = "gsavl"
CHECKPOINT_VERSION = 1
_CHECKPOINT_HINT = (
    "pass a checkpoint written by `gsavl train` (or an original GSAVL / EZ-VSL best.pth)"
)

# Original GSAVL / EZ-VSL parameter names -> ours (after removing `module.`/`backbone.`).
ORIGINAL_PREFIXES = {
    "imgnet.": "image_trunk.",
    "img_proj.": "image_proj.",
    "audnet.": "audio.trunk.",
    "aud_proj.": "audio.proj.",
}
# The originals replaced these heads by nn.Identity; a variant that kept them is fine too.
_ORIGINAL_IGNORED = ("imgnet.fc.", "audnet.fc.")
_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
_ORIGINAL_FIELDS = ("epoch", "best_cIoU", "best_Auc", "best_Pr")


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}", hint=f"choose one of: {', '.join(choices)}")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a localizer; stored in every checkpoint."""

    audio_encoder: str = "vggish"
    similarity: str = "cosine"
    dim: int = 512
    tau: float = 0.03
    beta: float = 0.0
    freeze_audio: bool = False
    image_size: int = 224

    def __post_init__(self) -> None:
        _check_choice("audio encoder", self.audio_encoder, AUDIO_ENCODERS)
        _check_choice("similarity", self.similarity, SIMILARITIES)
        if self.dim < 1 or self.tau <= 0 or self.beta < 0 or self.image_size < 32:
            raise UsageError(
                f"invalid model settings: dim={self.dim}, tau={self.tau}, beta={self.beta}, "
                f"image_size={self.image_size}",
                hint="dim >= 1, tau > 0, beta >= 0, image_size >= 32",
            )
        if self.freeze_audio and self.audio_encoder != "vggish":
            raise UsageError(
                "freezing the audio encoder only makes sense for the pretrained VGGish",
                hint="drop the freeze option or use the vggish audio encoder",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise UsageError(
                f"unknown model settings: {', '.join(unknown)}",
                hint="the checkpoint was written by a newer gsavl; upgrade gsavl",
            )
        return cls(**data)


PRESETS = {
    "gsavl": ModelConfig(),
    "ezvsl": ModelConfig(audio_encoder="resnet18", similarity="dot"),
}


def config_from_preset(name: str, **overrides: Any) -> ModelConfig:
    """A copy of preset `name` with `overrides` applied (validated again)."""
    _check_choice("model preset", name, tuple(PRESETS))
    return replace(PRESETS[name], **overrides)


class ResNetTrunk(ResNet):
    """torchvision's ResNet-18 up to layer4 (no avgpool/fc), with its parameter names.

    Keeping torchvision's names lets the ImageNet state dict load as it is (minus fc).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class VGGishAudio(nn.Module):
    """GSAVL audio: VGGish per example -> Linear -> L2-normalise -> mean over valid examples."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trunk = VGG(make_layers(), False)  # built here; weights come from the resolver
        self.proj = nn.Linear(VGGISH_EMBEDDING, dim)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio [B,T,96,64] log-mel examples; lengths [B] valid examples (padding ignored)."""
        if audio.dim() != 4 or tuple(audio.shape[-2:]) != VGGISH_EXAMPLE_SHAPE:
            raise UsageError(
                f"expected VGGish examples [B,T,96,64], got {tuple(audio.shape)}",
                hint="use features.vggish_examples for the vggish audio encoder",
            )
        batch, steps = audio.shape[:2]
        valid = torch.ones(batch, steps, dtype=torch.bool, device=audio.device)
        if lengths is not None:
            valid = torch.arange(steps, device=audio.device) < lengths.to(audio.device)[:, None]
        embedded = F.normalize(self.proj(self.trunk(audio[valid].unsqueeze(1))), dim=1)
        per_example = embedded.new_zeros(batch, steps, embedded.shape[1])
        per_example[valid] = embedded
        return per_example.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)


class SpectrogramResNetAudio(nn.Module):
    """EZ-VSL audio: 1-channel ResNet-18 -> global max pool -> Linear -> L2-normalise."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(in_channels=1)
        self.proj = nn.Linear(RESNET_CHANNELS, dim)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio [B,257,F] or [B,1,257,F] log spectrograms; `lengths` is not used."""
        if audio.dim() == 3:
            audio = audio.unsqueeze(1)
        if audio.dim() != 4 or audio.shape[1] != 1:
            raise UsageError(
                f"expected spectrograms [B,257,F] or [B,1,257,F], got {tuple(audio.shape)}",
                hint="use features.ezvsl_spectrogram for the resnet18 audio encoder",
            )
        return F.normalize(self.proj(self.trunk(audio).amax(dim=(2, 3))), dim=1)


def _init_fresh(*modules: nn.Module) -> None:
    """EZ-VSL's initialisation, for the parts that start from scratch (never pretrained ones)."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01)
            elif isinstance(layer, nn.BatchNorm2d):
                nn.init.normal_(layer.weight, mean=1.0, std=0.02)
                nn.init.zeros_(layer.bias)


class Localizer(nn.Module):
    """Audio-visual localizer: visual maps, audio vectors, their similarity and the loss."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.image_trunk = ResNetTrunk()
        self.image_proj = nn.Conv2d(RESNET_CHANNELS, config.dim, kernel_size=1)
        if config.audio_encoder == "vggish":
            self.audio: VGGishAudio | SpectrogramResNetAudio = VGGishAudio(config.dim)
            _init_fresh(self.image_proj, self.audio.proj)
        else:
            self.audio = SpectrogramResNetAudio(config.dim)
            _init_fresh(self.image_proj, self.audio)
        if config.freeze_audio:
            self.audio.trunk.requires_grad_(False)
            self.audio.trunk.eval()

    def train(self, mode: bool = True) -> Localizer:
        """Like nn.Module.train, but a frozen audio trunk stays in eval mode."""
        super().train(mode)
        if self.config.freeze_audio:
            self.audio.trunk.eval()
        return self

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] (ImageNet-normalised) -> unit feature maps [B,dim,H/32,W/32]."""
        return F.normalize(self.image_proj(self.image_trunk(images)), dim=1)

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio features (see the encoders) -> [B,dim]."""
        return self.audio(audio, lengths)

    def forward(
        self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_audio(audio, lengths)

    def _for_similarity(
        self, img: torch.Tensor, aud: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.similarity == "cosine":
            return F.normalize(img, dim=1), F.normalize(aud, dim=1)
        return img, aud

    def similarity(self, img_maps: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """S [B_a,B_v,h,w]: every audio against every image, at every location."""
        img, aud = self._for_similarity(img_maps, aud)
        return torch.einsum("vchw,ac->avhw", img, aud)

    def ssl_map(self, img_maps: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """S_ii [B,h,w]: each image against its own audio."""
        img, aud = self._for_similarity(img_maps, aud)
        return torch.einsum("bchw,bc->bhw", img, aud)

    def loss(self, img_maps: torch.Tensor, aud: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Multiple-instance contrastive loss (+ beta x global-alignment InfoNCE)."""
        tau = self.config.tau
        logits = self.similarity(img_maps, aud).flatten(2).amax(dim=2) / tau
        local = _symmetric_cross_entropy(logits)
        stats = {"loss_loc": local.item()}
        total = local
        if self.config.beta > 0:
            img, aud_g = self._for_similarity(img_maps.amax(dim=(2, 3)), aud)
            global_loss = _symmetric_cross_entropy(aud_g @ img.T / tau)
            total = local + self.config.beta * global_loss
            stats["loss_global"] = global_loss.item()
        stats["loss"] = total.item()
        return total, stats


def _symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """CE over rows + CE over columns, the matching pairs on the diagonal."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


class ObjectPrior(nn.Module):
    """A second, frozen ImageNet ResNet-18: mean |activation| of layer4 marks salient objects."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ResNetTrunk()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ObjectPrior:
        """Always stays in eval mode: the prior is never trained."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] -> [B,H/32,W/32]."""
        return self.trunk(images).abs().mean(dim=1)


def normalise_map(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise over the last two dims to [0,1]; a constant map becomes zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    spread = maps.amax(dim=(-2, -1), keepdim=True) - low
    return (maps - low) / torch.where(spread > 0, spread, torch.ones_like(spread))


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]


def _group_by_size(sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes):
        groups.setdefault((int(height), int(width)), []).append(index)
    return groups


@torch.no_grad()
def heatmaps(
    localizer: Localizer,
    prior: ObjectPrior | None,
    images: torch.Tensor,
    audio: torch.Tensor,
    lengths: torch.Tensor | None,
    sizes: Sequence[tuple[int, int]],
    alpha: float = 0.4,
    maps: Sequence[str] = MAP_NAMES,
) -> dict[str, list[torch.Tensor]]:
    """Heatmaps in [0,1] at each frame's (H,W): av = S_ssl, obj = S_obj, avobj = their mix.

    The coarse maps are upsampled bilinearly and min-max normalised per map;
    avobj = normalise(alpha * av + (1 - alpha) * obj) (METHOD.md §3). Frames of the
    same size are processed together. Results stay on the input device.
    """
    wanted = tuple(maps)
    for name in wanted:
        _check_choice("heatmap", name, MAP_NAMES)
    if len(sizes) != images.shape[0]:
        raise UsageError(f"{len(sizes)} frame sizes for {images.shape[0]} images")
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be in [0, 1], got {alpha}")
    need_av = "av" in wanted or "avobj" in wanted
    need_obj = "obj" in wanted or "avobj" in wanted
    if need_obj and prior is None:
        raise UsageError("the obj and avobj heatmaps need the object prior")
    coarse: dict[str, torch.Tensor] = {}
    if need_av:
        with _eval_mode(localizer):
            coarse["av"] = localizer.ssl_map(*localizer(images, audio, lengths))
    if need_obj:
        coarse["obj"] = prior(images)
    result: dict[str, list[torch.Tensor]] = {name: [None] * len(sizes) for name in wanted}
    for size, indices in _group_by_size(sizes).items():
        index = torch.tensor(indices, device=images.device)
        full = {name: normalise_map(_upsample(c[index], size)) for name, c in coarse.items()}
        if "avobj" in wanted:
            full["avobj"] = normalise_map(alpha * full["av"] + (1 - alpha) * full["obj"])
        for name in wanted:
            for position, item in enumerate(indices):
                result[name][item] = full[name][position]
    return result


def _load_exact(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: Path,
    what: str,
    error: type[UsageError],
    hint: str,
    assign: bool = False,
) -> None:
    """Load `state` into `module` with every key matched, or raise `error` saying what differs."""
    own = module.state_dict().keys()
    missing, unexpected = sorted(own - state.keys()), sorted(state.keys() - own)
    if missing or unexpected:
        raise error(
            f"{source} does not fit the {what}: missing {_few(missing)}, "
            f"unexpected {_few(unexpected)}",
            hint=hint,
        )
    try:
        module.load_state_dict(state, assign=assign)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip()
        raise error(f"{source} does not fit the {what}: {detail}", hint=hint) from exc


def _few(keys: Sequence[str], limit: int = 3) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _load_pretrained(module: nn.Module, name: str, explicit: Path | None) -> None:
    path = weights.resolve_weights(name, explicit)
    state = {k: v for k, v in weights.load_state_dict(path).items() if not k.startswith("fc.")}
    _load_exact(
        module,
        state,
        source=path,
        what=f"{weights.WEIGHTS[name].description} network",
        error=WeightsError,
        hint=f"pass the {weights.WEIGHTS[name].description} weights file "
        f"({weights.WEIGHTS[name].filename})",
    )


def identity_init(trunk: ResNetTrunk) -> None:
    """Identity (Dirac) convolutions and neutral BatchNorm: each map cell sees its own patch.

    A randomly initialised ResNet mixes the whole frame into every cell, so contrastive
    training from scratch learns global shortcuts instead of locations. Offline, with no
    ImageNet weights, this locality-preserving start stands in for them (demo, tests).
    """
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.dirac_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.reset_running_stats()


def build_localizer(
    config: ModelConfig,
    *,
    pretrained: bool = True,
    vggish_checkpoint: Path | None = None,
    resnet_checkpoint: Path | None = None,
    identity_image_init: bool = False,
) -> Localizer:
    """A new localizer; with `pretrained`, ImageNet ResNet-18 and (for vggish) VGGish weights.

    `pretrained=False` gives random weights everywhere (the image trunk identity-initialised
    with `identity_image_init`): only when the caller asks for it.
    """
    if identity_image_init and pretrained:
        raise UsageError("identity initialisation replaces pretrained weights", hint="use it together with --no-pretrained")
    if not pretrained and (vggish_checkpoint or resnet_checkpoint):
        raise UsageError(
            "pretrained weight files were given but pretrained weights are switched off",
            hint="drop the checkpoint paths or turn pretrained weights on",
        )
    localizer = Localizer(config)
    if identity_image_init:
        identity_init(localizer.image_trunk)
    if pretrained:
        _load_pretrained(localizer.image_trunk, "resnet18_imagenet", resnet_checkpoint)
        if config.audio_encoder == "vggish":
            _load_pretrained(localizer.audio.trunk, "vggish", vggish_checkpoint)
    return localizer


def build_object_prior(*, pretrained: bool = True, checkpoint: Path | None = None) -> ObjectPrior:
    """The frozen ImageNet ResNet-18 object prior (random only when `pretrained=False`)."""
    if not pretrained and checkpoint:
        raise UsageError(
            "a ResNet-18 weights file was given but pretrained weights are switched off",
            hint="drop the checkpoint path or turn pretrained weights on",
        )
    prior = ObjectPrior()
    if pretrained:
        _load_pretrained(prior.trunk, "resnet18_imagenet", checkpoint)
    return prior


class LoadedCheckpoint(NamedTuple):
    localizer: Localizer
    config: ModelConfig
    extra: dict[str, Any]
    raw: Any


def save_checkpoint(
    path: Path,
    localizer: nn.Module,
    config: ModelConfig,
    *,
    extra: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> None:
    """Write config + weights (+ extra, optimizer) atomically: a crash never leaves half a file.

    `extra` should hold plain Python values so that it loads with `weights_only=True`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "model": localizer.state_dict(),
        "extra": dict(extra or {}),
    }
    if optimizer_state is not None:
        payload["optimizer"] = optimizer_state
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, name)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the localizer from a gsavl checkpoint or an original GSAVL / EZ-VSL one.

    Never falls back to random weights: every parameter must come from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}", hint=_CHECKPOINT_HINT)
    try:
        raw = weights.torch_load(path)
    except WeightsError as exc:
        raise UsageError(str(exc), hint=_CHECKPOINT_HINT) from exc
    config, state, extra = _parse_checkpoint(raw, path)
    with torch.device("meta"):
        localizer = Localizer(config)
    _load_exact(
        localizer, state, source=path, what="localizer", error=UsageError,
        hint=_CHECKPOINT_HINT, assign=True,
    )
    return LoadedCheckpoint(localizer.to(map_location), config, extra, raw)


def _parse_checkpoint(
    raw: Any, path: Path
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        if raw.get("version") != CHECKPOINT_VERSION:
            raise UsageError(
                f"{path}: checkpoint version {raw.get('version')} is not supported "
                f"(this gsavl reads version {CHECKPOINT_VERSION})",
                hint="use the gsavl version that wrote it, or upgrade gsavl",
            )
        if not isinstance(raw.get("config"), dict) or not isinstance(raw.get("model"), dict):
            raise UsageError(f"damaged gsavl checkpoint (no config or weights): {path}",
                             hint=_CHECKPOINT_HINT)
        config = ModelConfig.from_dict(raw["config"])
        return config, _strip_wrappers(raw["model"]), dict(raw.get("extra") or {})
    state = raw.get("model") if isinstance(raw, dict) and isinstance(raw.get("model"), dict) else raw
    if not isinstance(state, dict) or not state or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise UsageError(f"not a gsavl checkpoint: {path}", hint=_CHECKPOINT_HINT)
    config, mapped, source = _import_original(_strip_wrappers(state), path)
    extra: dict[str, Any] = {"source": source}
    if isinstance(raw, dict):
        extra.update({key: _plain(raw[key]) for key in _ORIGINAL_FIELDS if key in raw})
    return config, mapped, extra


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP (`module.`), GSAVL (`backbone.`) and torch.compile prefixes from keys."""
    stripped = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def _import_original(
    state: dict[str, torch.Tensor], path: Path
) -> tuple[ModelConfig, dict[str, torch.Tensor], str]:
    """Map an original GSAVL (VGGish audio) / EZ-VSL (ResNet-18 audio) state dict to ours."""
    if "audnet.features.0.weight" in state:
        preset, source = "gsavl", "original GSAVL"
    elif "audnet.conv1.weight" in state:
        preset, source = "ezvsl", "original EZ-VSL"
    else:
        raise UsageError(f"not a gsavl, GSAVL or EZ-VSL checkpoint: {path}", hint=_CHECKPOINT_HINT)
    if "img_proj.weight" not in state:
        raise UsageError(f"{path} has no img_proj.weight", hint=_CHECKPOINT_HINT)
    config = config_from_preset(preset, dim=int(state["img_proj.weight"].shape[0]))
    mapped = {}
    for key, value in state.items():
        if key.startswith(_ORIGINAL_IGNORED):
            continue
        prefix = next((p for p in ORIGINAL_PREFIXES if key.startswith(p)), "")
        mapped[ORIGINAL_PREFIXES.get(prefix, "") + key[len(prefix):]] = value
    return config, mapped, source


def _plain(value: Any) -> Any:
    """NumPy / tensor scalars as Python numbers, so `extra` stays plain data."""
    return value.item() if hasattr(value, "item") else value
