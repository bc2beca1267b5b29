"""The one resolver for pretrained files: weights (SAM, SAM 2.1, VGGish, ImageNet ResNet-18/-50, PVT-v2-b5,
the zero-shot CLAP and CLIPSeg models) and the published clip lists of EZ-VSL (VGGSound-10K/144K, VGG-SS heard/unheard).

Order: an explicit path > the cache > a download that is checksummed before it is
renamed into the cache. The cache is `$GSAVL_CACHE`, else torch hub's own
`checkpoints` folder (`$TORCH_HOME/hub/checkpoints`), so files that torchvision or
torch hub already downloaded are found. Offline (`GSAVL_OFFLINE=1` or no network) a
missing file is a `WeightsError` that names the file, its URL and where to put it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import torch
from torchvggish.torchvggish import VGGISH_WEIGHTS
from torchvision.models import ResNet18_Weights, ResNet50_Weights

from gsavl_cli.errors import UsageError, WeightsError


@dataclass(frozen=True)
class WeightSpec:
    """Where one pretrained file comes from and how to check it."""

    name: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    description: str


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_RESNET18 = ResNet18_Weights.IMAGENET1K_V1.url
_RESNET50 = ResNet50_Weights.IMAGENET1K_V1.url
# The original PVT-v2 release, the file AVSegFormer (and so SSL2AVS) starts from; no published checksum.
_PVT_V2_B5 = "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth"


# EZ-VSL publishes no checksums for its lists; the URLs pin a commit, so the content is fixed.
_EZVSL_LISTS = "https://raw.githubusercontent.com/stoneMo/EZ-VSL/{commit}/metadata/{file}"
_SUBSET_LISTS = {
    "vggss_10k": ("24658cbb25889f873fd7707251cdcc70ef101bff", "vggss_10k.txt"),
    "vggss_144k": ("24658cbb25889f873fd7707251cdcc70ef101bff", "vggss_144k.txt"),
    "vggss_heard_test": ("8231b49c21454baed5c48c4cb9ad0c0812db8c4c", "vggss_heard_test.csv"),
    "vggss_unheard_test": ("8231b49c21454baed5c48c4cb9ad0c0812db8c4c", "vggss_unheard_test.csv"),
}
SUBSET_LISTS = tuple(_SUBSET_LISTS)


def _sam(variant: str, filename: str, size: int, sha256: str) -> WeightSpec:
    return WeightSpec(f"sam_{variant}", filename, _SAM_URL + filename, sha256, size, f"SAM {variant}")


# SAM 2.1 in the layout of `transformers` (`Sam2Model.from_pretrained`): the hub repos that Meta and Hugging Face
# publish hold a config.json and a model.safetensors each. Both files are cached in one folder per model, so the
# folder is what `from_pretrained` reads. No checksum is known offline: the hub publishes the sha256 of each file
# (its LFS object id) but it was not recorded here, so these downloads are not verified; `resolve/main` follows the
# repos' main branch. The original .pt checkpoints (dl.fbaipublicfiles.com/segment_anything_2/092824/) are in Meta's
# own layout, which `transformers` does not read.
_HUB = "https://huggingface.co/{repo}/resolve/main/{file}"
SAM2_HUB_REPOS = {
    "sam2.1_hiera_t": "tiny",
    "sam2.1_hiera_s": "small",
    "sam2.1_hiera_b+": "base-plus",
    "sam2.1_hiera_l": "large",
}
"""gsavl's SAM 2.1 names -> the `facebook/sam2.1-hiera-*` hub repo suffix."""
SAM2_FILES = {"weights": "model.safetensors", "config": "config.json"}
"""The files of one SAM 2.1 model, by role (the resolver's names are `MODEL` and `MODEL:config`)."""


def sam2_weight_name(model: str, role: str = "weights") -> str:
    """The resolver's name of one file of a hub model (SAM 2.1, the zero-shot models): the model's own name for the
    weights, MODEL:ROLE for the others (MODEL:config, ...)."""
    return model if role == "weights" else f"{model}:{role}"


def _hub_specs(
    repos: dict[str, str], files: dict[str, str], folder: dict[str, str], what: dict[str, str]
) -> list[WeightSpec]:
    """One unverified spec per (model, file role) of hub models in the layout of `transformers`: model -> hub repo
    `repos`, role -> file name `files`; each model's files share the cache folder `folder[model]`."""
    return [
        WeightSpec(
            sam2_weight_name(model, role),
            f"{folder[model]}/{file}",
            _HUB.format(repo=repo, file=file),
            None,
            None,
            f"{what[model]} {role}",
        )
        for model, repo in repos.items()
        for role, file in files.items()
    ]


# The zero-shot models (`--map text`, docs/architecture.md "Zero-shot heatmaps"), also hub repos in the layout of
# `transformers`: the model (config.json, model.safetensors) and what its processor reads (the feature extractor's or
# image processor's preprocessor_config.json, the tokenizer's tokenizer_config.json, vocab.json and merges.txt).
# Cached in one folder per model, as SAM 2.1's; not verified (no checksum known offline, as for SAM 2.1).
ZEROSHOT_HUB_REPOS = {
    "clap-htsat-unfused": "laion/clap-htsat-unfused",
    "larger_clap_general": "laion/larger_clap_general",
    "clipseg-rd64-refined": "CIDAS/clipseg-rd64-refined",
}
"""gsavl's names of the zero-shot models -> their hub repos (the CLAP audio taggers, the CLIPSeg grounder)."""
ZEROSHOT_FILES = {
    **SAM2_FILES,
    "preprocessor": "preprocessor_config.json",
    "tokenizer": "tokenizer_config.json",
    "vocab": "vocab.json",
    "merges": "merges.txt",
}
"""The files of one zero-shot model in its hub repo, by role (the resolver's names: MODEL, MODEL:ROLE)."""
_ZEROSHOT_OPTIONS = {"clap-htsat-unfused": "--clap-checkpoint", "larger_clap_general": "--clap-checkpoint"}


WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        _sam(
            "vit_h",
            "sam_vit_h_4b8939.pth",
            2_564_550_879,
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        ),
        _sam(
            "vit_l",
            "sam_vit_l_0b3195.pth",
            1_249_524_607,
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        _sam(
            "vit_b",
            "sam_vit_b_01ec64.pth",
            375_042_383,
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        ),
        *_hub_specs(
            {m: f"facebook/sam2.1-hiera-{r}" for m, r in SAM2_HUB_REPOS.items()},
            SAM2_FILES,
            {m: f"sam2.1-hiera-{r}" for m, r in SAM2_HUB_REPOS.items()},
            {m: f"SAM 2.1 hiera-{r}" for m, r in SAM2_HUB_REPOS.items()},
        ),
        *_hub_specs(ZEROSHOT_HUB_REPOS, ZEROSHOT_FILES, {m: m for m in ZEROSHOT_HUB_REPOS}, ZEROSHOT_HUB_REPOS),
        WeightSpec("vggish", VGGISH_WEIGHTS.rsplit("/", 1)[1], VGGISH_WEIGHTS, None, None, "VGGish"),
        WeightSpec(
            "resnet18_imagenet",
            _RESNET18.rsplit("/", 1)[1],
            _RESNET18,
            None,
            None,
            "ResNet-18 ImageNet",
        ),
        WeightSpec(
            "resnet50_imagenet",
            _RESNET50.rsplit("/", 1)[1],
            _RESNET50,
            None,
            None,
            "ResNet-50 ImageNet",
        ),
        WeightSpec("pvt_v2_b5_imagenet", "pvt_v2_b5.pth", _PVT_V2_B5, None, None, "PVT-v2-b5 ImageNet"),
        *(
            WeightSpec(
                f"subset_{name}",
                f"ezvsl_{file}",
                _EZVSL_LISTS.format(commit=commit, file=file),
                None,
                None,
                f"EZ-VSL list {name}",
            )
            for name, (commit, file) in _SUBSET_LISTS.items()
        ),
    )
}

# The CLI option that takes each file's path, for the hint of a missing file.
_OPTIONS = {
    "sam_vit_h": "--sam-checkpoint",
    "sam_vit_l": "--sam-checkpoint",
    "sam_vit_b": "--sam-checkpoint",
    **{sam2_weight_name(m, role): "--sam-checkpoint" for m in SAM2_HUB_REPOS for role in SAM2_FILES},
    **{
        sam2_weight_name(m, role): _ZEROSHOT_OPTIONS.get(m, "--clipseg-checkpoint")
        for m in ZEROSHOT_HUB_REPOS
        for role in ZEROSHOT_FILES
    },
    "vggish": "--vggish-checkpoint",
    "resnet18_imagenet": "--resnet-checkpoint",
    "resnet50_imagenet": "--backbone-checkpoint",
    "pvt_v2_b5_imagenet": "--backbone-checkpoint",
    **{f"subset_{name}": "--subset" for name in _SUBSET_LISTS},
}

# torch hub's convention: `name-<sha256 prefix>.ext`.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")
# The digest in the error torch hub raises when a download's sha256 does not match.
_HASH_GOT = re.compile(r'got "([a-f0-9]+)"')

# Original GSAVL / EZ-VSL checkpoints store validation scores as NumPy scalars; these
# are plain data, so they may be unpickled under `weights_only=True`. The reconstructor
# is named `numpy.core...` in files from NumPy 1 and `numpy._core...` from NumPy 2.
_SCALAR = np.float64(0).__reduce__()[0]
_NUMPY_SCALARS: list[Any] = [
    (_SCALAR, "numpy.core.multiarray.scalar"),
    (_SCALAR, "numpy._core.multiarray.scalar"),
    np.dtype,
    *(type(np.dtype(kind)) for kind in ("float64", "float32", "int64", "int32", "bool")),
]


def cache_dir() -> Path:
    """`$GSAVL_CACHE`, else torch hub's checkpoint folder (follows `$TORCH_HOME`)."""
    override = os.environ.get("GSAVL_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_spec(name: str) -> WeightSpec:
    """The spec registered as `name`; unknown names list the known ones."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise UsageError(
            f"unknown pretrained weights {name!r}",
            hint=f"known weights: {', '.join(WEIGHTS)}",
        ) from None


def expected_sha256(spec: WeightSpec) -> str | None:
    """The full sha256 when known, else the prefix in the file name (as torch hub checks)."""
    if spec.sha256:
        return spec.sha256
    match = _HASH_IN_NAME.search(spec.filename)
    return match.group(1) if match else None


def resolve_weights(
    name: str,
    explicit: Path | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Path of the weights `name`: explicit path > cache > verified download."""
    spec = weight_spec(name)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"{spec.description} weights not found: {path}",
                hint=f"check the path given with {_option(name)}, or leave it out to use {cache_dir() / spec.filename}",
            )
        return path
    target = cache_dir() / spec.filename
    if target.is_file() and _size_ok(spec, target):
        return target
    if not download or _offline():
        raise _missing(spec, target)
    _download(spec, target, progress)
    return target


def torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)` on CPU; a file torch cannot read is a WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"file not found: {path}", hint="check the path")
    try:
        with torch.serialization.safe_globals(_NUMPY_SCALARS), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # torch's note on foreign pickle protocols; the error below says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a file that is not its own
        raise WeightsError(
            f"not a valid PyTorch checkpoint: {path} ({type(exc).__name__})",
            hint="the file is truncated, corrupt or of another kind: delete it and download "
            "it again, or pass the right file",
        ) from exc


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from a `model`/`state_dict` entry if any."""
    obj = torch_load(path)
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(value, torch.Tensor) for value in obj.values()):
        raise WeightsError(
            f"no state dict of tensors in {path}",
            hint="pass a weights file (a saved state_dict), not another kind of object",
        )
    return obj


def _option(name: str) -> str:
    return _OPTIONS.get(name, "--checkpoint")


def _offline() -> bool:
    return os.environ.get("GSAVL_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _size_ok(spec: WeightSpec, path: Path) -> bool:
    return spec.size is None or path.stat().st_size == spec.size


def _missing(spec: WeightSpec, target: Path, reason: str | None = None) -> WeightsError:
    because = f" ({reason})" if reason else ""
    if target.is_file():
        what = f"{spec.description} weights incomplete: {spec.filename} has "
        what += f"{target.stat().st_size} bytes, expected {spec.size}{because}"
    else:
        what = f"{spec.description} weights not found: {spec.filename}{because}"
    return WeightsError(
        what,
        hint=f"download {spec.url} and put it in {target.parent}/ or pass {_option(spec.name)} PATH",
    )


def _download(spec: WeightSpec, target: Path, progress: bool) -> None:
    """torch hub's download: into a temporary file beside `target`, checked against the
    sha256 (full, or the prefix in the name) and only then moved to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = expected_sha256(spec)
    try:
        torch.hub.download_url_to_file(spec.url, str(target), hash_prefix=expected, progress=progress)
    except (URLError, OSError) as exc:  # HTTPError is a URLError
        raise _missing(spec, target, reason=f"download failed: {exc}") from exc
    except RuntimeError as exc:  # torch hub's 'invalid hash value (expected "...", got "<sha256>")'
        if expected is None or "hash" not in str(exc):
            raise
        got = _HASH_GOT.search(str(exc))
        found = f"sha256 {got.group(1)[:16]}..., " if got else ""
        raise WeightsError(
            f"checksum mismatch for downloaded {spec.filename}: {found}expected {expected[:16]}...; the file was deleted",
            hint=f"try again; if it persists download {spec.url} yourself and pass {_option(spec.name)} PATH",
        ) from exc


def hub_folder(
    model: str,
    files: dict[str, str],
    checkpoint: Path | str | None = None,
    *,
    what: str,
    saved_by: str,
    download: bool = True,
) -> Path:
    """The folder holding hub model `model` (`files` by role): explicit > cache > download, file by file.

    `checkpoint` may be a folder (what `save_pretrained` writes and the hub repo holds) or its weights file; it needs
    a config.json beside the weights (the processor's files are the library's to find). Without it every file of
    `files` comes through `resolve_weights`, so offline a missing one is the one-line error naming it and its URL.
    """
    config_file, weights_file = files["config"], files["weights"]
    saved = f"pass the folder that {saved_by} wrote (config.json and model.safetensors)"
    if checkpoint is not None:
        given = Path(checkpoint).expanduser()
        if given.is_file() and given.name != weights_file:
            raise WeightsError(f"{what} weights are a folder or its {weights_file}, got {given}", hint=saved)
        file = given if given.name == weights_file else given / weights_file
        path = resolve_weights(sam2_weight_name(model), file)
        if not (path.parent / config_file).is_file():
            raise WeightsError(f"no {config_file} beside the {what} weights {path}", hint=saved)
        return path.parent
    roles = ["config", *(r for r in files if r not in ("config", "weights")), "weights"]
    for role in roles:
        path = resolve_weights(sam2_weight_name(model, role), download=download)
    return path.parent


def from_pretrained_folder(cls: Any, folder: Path, what: str, **options: Any) -> Any:
    """`cls.from_pretrained(folder)` of `transformers`, offline and silent; a folder it cannot read, or weights that
    do not match their config.json, is one WeightsError (library code never prints)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    wants_info = hasattr(cls, "base_model_prefix")  # a model (not a processor) reports missing keys
    try:
        loaded = cls.from_pretrained(
            folder, local_files_only=True, **options, **({"output_loading_info": True} if wants_info else {})
        )
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WeightsError(
            f"{folder} does not hold a {what} ({first})",
            hint=f"delete the folder and let gsavl download it again, or pass a folder saved by {cls.__name__}.save_pretrained",
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if not wants_info:
        return loaded
    model, info = loaded
    incomplete = [k for k in ("missing_keys", "mismatched_keys") if info.get(k)]
    if incomplete:
        raise WeightsError(
            f"{folder / SAM2_FILES['weights']} does not match its config.json ({incomplete[0]}: "
            f"{', '.join(map(str, info[incomplete[0]]))[:160]})",
            hint="the files belong to different models: download both again or save them together",
        )
    return model


def require_transformers(who: str, hint: str) -> None:
    """Refuses, in one line, to go on without the optional `transformers` package (the sam2 / zeroshot extras)."""
    if importlib.util.find_spec("transformers") is None:
        raise UsageError(f"{who} needs the transformers package, which is not installed", hint=hint)
