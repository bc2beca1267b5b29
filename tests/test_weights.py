"""The pretrained-weight resolver: explicit path, cache, verified download, offline errors.

The network is never used: `torch.hub.download_url_to_file` is replaced in every test.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError

REAL_DOWNLOAD = torch.hub.download_url_to_file  # before any test replaces it


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, online by default, and a download that fails loudly if not replaced."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GSAVL_CACHE", str(cache))
    monkeypatch.delenv("GSAVL_OFFLINE", raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return cache


def fake_download(content: bytes, calls: list[str]):
    """torch hub's contract: `dst` appears only if the sha256 starts with `hash_prefix`, else a RuntimeError."""

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append(url)
        digest = hashlib.sha256(content).hexdigest()
        if hash_prefix is not None and not digest.startswith(hash_prefix):
            raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest}")')
        Path(dst).write_bytes(content)

    return download


def test_table_matches_the_sources() -> None:
    from torchvggish.torchvggish import VGGISH_WEIGHTS
    from torchvision.models import ResNet18_Weights

    lists = {f"subset_{name}" for name in ("vggss_10k", "vggss_144k", "vggss_heard_test", "vggss_unheard_test")}
    backbones = {"resnet50_imagenet", "pvt_v2_b5_imagenet"}  # SSL2AVS image encoders
    sam2 = {f"sam2.1_hiera_{size}{role}" for size in ("t", "s", "b+", "l") for role in ("", ":config")}
    roles = ("", ":config", ":preprocessor", ":tokenizer", ":vocab", ":merges")  # the zero-shot models' hub files
    zeroshot = {f"{m}{r}" for m in ("clap-htsat-unfused", "larger_clap_general", "clipseg-rd64-refined") for r in roles}
    assert (
        set(weights.WEIGHTS)
        == {"sam_vit_h", "sam_vit_l", "sam_vit_b", "vggish", "resnet18_imagenet"} | backbones | lists | sam2 | zeroshot
    )
    clap = weights.WEIGHTS["clap-htsat-unfused"]
    assert clap.url == "https://huggingface.co/laion/clap-htsat-unfused/resolve/main/model.safetensors"
    assert weights.expected_sha256(clap) is None  # as SAM 2.1's: no checksum known offline
    large = weights.WEIGHTS["sam2.1_hiera_l"]
    assert large.url == "https://huggingface.co/facebook/sam2.1-hiera-large/resolve/main/model.safetensors"
    assert weights.expected_sha256(large) is None  # no checksum known offline (docs/architecture.md, "SAM 2")
    ten_k = weights.WEIGHTS["subset_vggss_10k"]
    assert ten_k.url.startswith("https://raw.githubusercontent.com/stoneMo/EZ-VSL/") and ten_k.url.endswith(
        "/metadata/vggss_10k.txt"
    )
    assert weights.expected_sha256(ten_k) is None  # no published checksum; the URL pins a commit
    sam_h = weights.WEIGHTS["sam_vit_h"]
    assert sam_h.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"
    assert sam_h.size == 2_564_550_879
    assert sam_h.sha256.startswith("a7bf3b02")
    assert weights.WEIGHTS["vggish"].url == VGGISH_WEIGHTS
    assert weights.WEIGHTS["vggish"].filename == "vggish-10086976.pth"
    assert weights.WEIGHTS["resnet18_imagenet"].url == ResNet18_Weights.IMAGENET1K_V1.url
    from torchvision.models import ResNet50_Weights

    assert weights.WEIGHTS["resnet50_imagenet"].url in (
        ResNet50_Weights.IMAGENET1K_V1.url,
        ResNet50_Weights.IMAGENET1K_V2.url,
    )
    assert weights.expected_sha256(weights.WEIGHTS["vggish"]) == "10086976"
    assert weights.expected_sha256(weights.WEIGHTS["resnet18_imagenet"]) == "f37072fd"
    assert weights.expected_sha256(sam_h) == sam_h.sha256


def test_cache_dir_follows_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSAVL_CACHE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert weights.cache_dir() == tmp_path / "th" / "hub" / "checkpoints"
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path / "mine"))
    assert weights.cache_dir() == tmp_path / "mine"


def test_explicit_path_wins_and_must_exist(tmp_path: Path, isolated_cache: Path) -> None:
    isolated_cache.mkdir()
    (isolated_cache / "vggish-10086976.pth").write_bytes(b"cached")
    mine = tmp_path / "my vggish.pth"
    mine.write_bytes(b"x")
    assert weights.resolve_weights("vggish", mine) == mine
    with pytest.raises(WeightsError, match="not found") as info:
        weights.resolve_weights("vggish", tmp_path / "nope.pth")
    assert "nope.pth" in str(info.value)


def test_cache_hit_does_not_download(isolated_cache: Path) -> None:
    isolated_cache.mkdir()
    cached = isolated_cache / "resnet18-f37072fd.pth"
    cached.write_bytes(b"weights")
    assert weights.resolve_weights("resnet18_imagenet") == cached


def test_offline_download_failure_names_file_and_url(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsError) as info:
        weights.resolve_weights("sam_vit_h", progress=False)
    assert "SAM vit_h weights not found: sam_vit_h_4b8939.pth" in str(info.value)
    hint = info.value.hint
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in hint
    assert str(isolated_cache) in hint and "--sam-checkpoint" in hint
    assert not any(isolated_cache.iterdir()), "a failed download left files behind"


@pytest.mark.parametrize("switch", ["env", "argument"])
def test_offline_never_downloads(switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if switch == "env":
        monkeypatch.setenv("GSAVL_OFFLINE", "1")
    with pytest.raises(WeightsError, match="vggish-10086976.pth") as info:
        weights.resolve_weights("vggish", download=switch != "argument")
    assert weights.WEIGHTS["vggish"].url in info.value.hint


def test_download_verifies_full_sha256(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = b"the right bytes"
    spec = replace(weights.WEIGHTS["vggish"], sha256=hashlib.sha256(good).hexdigest())
    monkeypatch.setitem(weights.WEIGHTS, "vggish", spec)
    calls: list[str] = []

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download(b"tampered", calls))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        weights.resolve_weights("vggish", progress=False)
    assert calls == [spec.url]
    assert list(isolated_cache.iterdir()) == [], "the bad download was not deleted"

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download(good, calls))
    path = weights.resolve_weights("vggish", progress=False)
    assert path == isolated_cache / "vggish-10086976.pth"
    assert path.read_bytes() == good
    assert list(isolated_cache.iterdir()) == [path], "temporary files were left behind"


def test_download_checks_hash_prefix_in_name(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a full sha256 the `-10086976` in the name is the sha256 prefix (torch hub's rule)."""
    content = b"not vggish"
    assert not hashlib.sha256(content).hexdigest().startswith("10086976")
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download(content, []))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        weights.resolve_weights("vggish", progress=False)
    assert list(isolated_cache.iterdir()) == []


def test_real_torch_hub_download_from_a_local_url(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch hub's own download (a file:// URL, no network): hash checked, nothing left behind."""
    source = tmp_path / "vggish.pth"
    source.write_bytes(b"served bytes")
    monkeypatch.setattr(torch.hub, "download_url_to_file", REAL_DOWNLOAD)
    bad = replace(weights.WEIGHTS["vggish"], url=source.as_uri(), sha256="0" * 64)
    monkeypatch.setitem(weights.WEIGHTS, "vggish", bad)
    with pytest.raises(WeightsError, match=r"checksum mismatch .*: sha256 [0-9a-f]{16}\.\.\., expected 0000"):
        weights.resolve_weights("vggish", progress=False)
    assert list(isolated_cache.iterdir()) == []
    good = replace(bad, sha256=hashlib.sha256(b"served bytes").hexdigest())
    monkeypatch.setitem(weights.WEIGHTS, "vggish", good)
    path = weights.resolve_weights("vggish", progress=False)
    assert path.read_bytes() == b"served bytes" and list(isolated_cache.iterdir()) == [path]


def test_cached_file_of_wrong_size_is_not_used(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_cache.mkdir()
    (isolated_cache / "sam_vit_b_01ec64.pth").write_bytes(b"partial")
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    with pytest.raises(WeightsError, match="incomplete: sam_vit_b_01ec64.pth has 7 bytes"):
        weights.resolve_weights("sam_vit_b")


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        weights.resolve_weights("sam_vit_xxl")
    assert not isinstance(info.value, WeightsError)
    assert "sam_vit_h" in info.value.hint and "vggish" in info.value.hint


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_load_state_dict_unwraps(tmp_path: Path, wrapper: str | None) -> None:
    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.ones(2)}
    path = tmp_path / "w.pth"
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, path)
    loaded = weights.load_state_dict(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_load_state_dict_rejects_bad_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a valid PyTorch checkpoint") as info:
        weights.load_state_dict(text)
    assert "notes.txt" in str(info.value) and info.value.hint
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(1000)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated.pth"):
        weights.load_state_dict(truncated)
    not_tensors = tmp_path / "dict.pth"
    torch.save({"lr": 0.1}, not_tensors)
    with pytest.raises(WeightsError, match="no state dict"):
        weights.load_state_dict(not_tensors)


def test_torch_load_accepts_numpy_scores_but_not_code(tmp_path: Path) -> None:
    """Original checkpoints keep numpy scalars (best_cIoU); arbitrary objects stay refused."""
    path = tmp_path / "ckpt.pth"
    torch.save({"best_cIoU": np.mean([0.25, 0.5]), "epoch": np.int64(4)}, path)
    loaded = weights.torch_load(path)
    assert loaded["best_cIoU"] == pytest.approx(0.375) and loaded["epoch"] == 4

    legacy = io.BytesIO()  # as written by NumPy 1 (`numpy.core...`), protocol-2 pickle
    torch.save({"best": np.float64(0.5)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.getvalue().replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    assert b"numpy.core.multiarray" in data
    (tmp_path / "legacy.pth").write_bytes(data)
    assert weights.torch_load(tmp_path / "legacy.pth")["best"] == 0.5

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"call": os.getcwd}, unsafe)
    with pytest.raises(WeightsError):
        weights.torch_load(unsafe)
