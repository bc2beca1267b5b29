"""The model module: loss, encoders, pretrained weights, heatmaps and checkpoints.

Pretrained weights are random state dicts saved where the resolver looks; nothing is
downloaded (GSAVL_OFFLINE=1 and a download that fails the test).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvggish.torchvggish import VGG, make_layers
from torchvision.models import resnet18

from gsavl_cli import model as M
from gsavl_cli.errors import UsageError, WeightsError


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path / "empty-cache"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture(scope="module")
def pretrained_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Random 'pretrained' VGGish and ResNet-18 files under the names the resolver expects."""
    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("cache")
    vggish = VGG(make_layers(), False).state_dict()
    resnet = resnet18().state_dict()  # torchvision's layout, fc included
    torch.save(vggish, cache / "vggish-10086976.pth")
    torch.save(resnet, cache / "resnet18-f37072fd.pth")
    return {"cache": cache, "vggish": vggish, "resnet": resnet}


@pytest.fixture
def use_cache(pretrained_files: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("GSAVL_CACHE", str(pretrained_files["cache"]))
    return pretrained_files


def meta_localizer(preset: str, **overrides: object) -> M.Localizer:
    """A localizer without real weights: enough for the similarity and the loss."""
    with torch.device("meta"):
        return M.Localizer(M.config_from_preset(preset, **overrides))


def tiny_localizer(preset: str = "ezvsl", **overrides: object) -> M.Localizer:
    torch.manual_seed(1)
    return M.Localizer(M.config_from_preset(preset, dim=8, **overrides))


def spectrograms(batch: int) -> torch.Tensor:
    return torch.randn(batch, 257, 40)


def ce(row: list[float], label: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[label]


def pair_loss(logits: list[list[float]]) -> float:
    """CE over rows + CE over columns, by hand."""
    columns = [list(col) for col in zip(*logits)]
    n = len(logits)
    return sum(ce(logits[i], i) for i in range(n)) / n + sum(ce(columns[i], i) for i in range(n)) / n


# Two images, dim 2, maps of 1x2 locations: v0 = [(1,0), (0,1)], v1 = [(0.6,0.8), (-1,0)].
IMG = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[0.6, -1.0]], [[0.8, 0.0]]]])
AUD = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_loss_matches_hand_computation() -> None:
    localizer = meta_localizer("gsavl", dim=2, tau=0.5)
    # S[a][v] = max over locations: a0: v0 1, v1 0.6; a1: v0 1, v1 0.8; divided by tau.
    expected = pair_loss([[2.0, 1.2], [2.0, 1.6]])
    loss, stats = localizer.loss(IMG, AUD)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats == {"loss_loc": pytest.approx(expected, rel=1e-6), "loss": pytest.approx(expected, rel=1e-6)}
    assert localizer.similarity(IMG, AUD).shape == (2, 2, 1, 2)
    assert torch.allclose(localizer.ssl_map(IMG, AUD), torch.tensor([[[1.0, 0.0]], [[0.8, 0.0]]]))


def test_cosine_ignores_scale_dot_does_not() -> None:
    halved = AUD * torch.tensor([[0.5], [1.0]])
    cosine = meta_localizer("gsavl", dim=2, tau=0.5)
    dot = meta_localizer("ezvsl", dim=2, tau=0.5)
    assert cosine.loss(IMG, halved)[0].item() == pytest.approx(pair_loss([[2.0, 1.2], [2.0, 1.6]]), rel=1e-6)
    # dot: a0 scaled by 0.5 -> max(0.5, 0) = 0.5 and max(0.3, -0.5) = 0.3
    assert dot.loss(IMG, halved)[0].item() == pytest.approx(pair_loss([[1.0, 0.6], [2.0, 1.6]]), rel=1e-6)


def test_global_alignment_term() -> None:
    localizer = meta_localizer("gsavl", dim=2, tau=0.5, beta=2.0)
    # global max pool: v0 -> (1,1) -> (1/sqrt2, 1/sqrt2); v1 -> (0.6, 0.8)
    root = math.sqrt(2.0)
    local = pair_loss([[2.0, 1.2], [2.0, 1.6]])
    global_ = pair_loss([[root, 1.2], [root, 1.6]])
    loss, stats = localizer.loss(IMG, AUD)
    assert loss.item() == pytest.approx(local + 2.0 * global_, rel=1e-6)
    assert stats["loss_global"] == pytest.approx(global_, rel=1e-6)
    assert stats["loss_loc"] == pytest.approx(local, rel=1e-6)


@pytest.mark.parametrize("preset", ["gsavl", "ezvsl"])
def test_shapes_at_224(preset: str) -> None:
    localizer = tiny_localizer(preset).eval()
    images = torch.randn(2, 3, 224, 224)
    audio = torch.randn(2, 5, 96, 64) if preset == "gsavl" else torch.randn(2, 1, 257, 200)
    with torch.no_grad():
        img, aud = localizer(images, audio)
    assert img.shape == (2, 8, 7, 7) and aud.shape == (2, 8)
    # gsavl: unit feature vectors; ezvsl's "dot" (the original's ablation): not normalised
    assert torch.allclose(img.norm(dim=1), torch.ones(2, 7, 7), atol=1e-5) == (preset == "gsavl")
    assert localizer.similarity(img, aud).shape == (2, 2, 7, 7)
    assert localizer.ssl_map(img, aud).shape == (2, 7, 7)


def test_vggish_padding_is_ignored() -> None:
    localizer = tiny_localizer("gsavl").eval()
    audio = torch.randn(2, 3, 96, 64)
    audio[1, 1:] = float("nan")  # padding: must never be read
    with torch.no_grad():
        aud = localizer.encode_audio(audio, torch.tensor([3, 1]))
        alone = localizer.encode_audio(audio[1:, :1])
        each = localizer.encode_audio(audio[0].unsqueeze(1))  # 3 items of one example each
    assert torch.isfinite(aud).all()
    assert torch.allclose(aud[1], alone[0], atol=1e-6)
    assert torch.allclose(each.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(aud[0], each.mean(0), atol=1e-6)


def test_resnet_audio_accepts_both_layouts_and_rejects_others() -> None:
    localizer = tiny_localizer("ezvsl").eval()
    spec = spectrograms(2)
    with torch.no_grad():
        assert torch.equal(localizer.encode_audio(spec), localizer.encode_audio(spec.unsqueeze(1)))
    with pytest.raises(UsageError, match="spectrograms"):
        localizer.encode_audio(torch.randn(2, 3, 257, 40))
    with pytest.raises(UsageError, match="VGGish examples"):
        meta_localizer("gsavl").encode_audio(torch.randn(2, 5, 64, 96))


def test_pretrained_weights_are_kept(use_cache: dict[str, object]) -> None:
    localizer = M.build_localizer(M.config_from_preset("gsavl", dim=8))
    vggish, resnet = use_cache["vggish"], use_cache["resnet"]
    mine = localizer.audio.trunk.state_dict()
    assert mine.keys() == vggish.keys()
    assert all(torch.equal(mine[k], vggish[k]) for k in vggish)
    trunk = localizer.image_trunk.state_dict()
    assert trunk.keys() == {k for k in resnet if not k.startswith("fc.")}
    assert all(torch.equal(trunk[k], resnet[k]) for k in trunk)
    prior = M.build_object_prior()
    assert all(torch.equal(v, resnet[k]) for k, v in prior.trunk.state_dict().items())
    assert not any(p.requires_grad for p in prior.parameters())
    assert not prior.train().training


def test_freeze_audio(use_cache: dict[str, object]) -> None:
    localizer = M.build_localizer(M.config_from_preset("gsavl", dim=8, freeze_audio=True)).train()
    assert not localizer.audio.trunk.training and localizer.image_trunk.training
    assert not any(p.requires_grad for p in localizer.audio.trunk.parameters())
    assert all(p.requires_grad for p in localizer.audio.proj.parameters())
    img, aud = localizer(torch.randn(2, 3, 64, 64), torch.randn(2, 1, 96, 64))
    localizer.loss(img, aud)[0].backward()
    assert all(p.grad is None for p in localizer.audio.trunk.parameters())
    assert localizer.audio.proj.weight.grad is not None
    assert localizer.image_proj.weight.grad is not None
    # EZ-VSL's spectrogram ResNet freezes the same way (the from-scratch recipe keeps it random and fixed)
    ez = M.build_localizer(M.config_from_preset("ezvsl", freeze_audio=True, image_size=64), pretrained=False)
    assert not any(p.requires_grad for p in ez.audio.trunk.parameters())
    assert all(p.requires_grad for p in ez.audio.proj.parameters())


def test_missing_or_wrong_pretrained_weights(
    use_cache: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = use_cache["cache"]
    with pytest.raises(WeightsError, match="does not fit the VGGish"):
        M.build_localizer(M.config_from_preset("gsavl"), vggish_checkpoint=cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):
        M.build_object_prior()
    random_prior = M.build_object_prior(pretrained=False)  # asked for: no resolver involved
    assert isinstance(random_prior, M.ObjectPrior)
    with pytest.raises(UsageError, match="switched off"):
        M.build_localizer(M.ModelConfig(), pretrained=False, vggish_checkpoint=cache / "x.pth")


def test_config_round_trip_and_validation() -> None:
    config = M.config_from_preset("ezvsl", dim=64, tau=0.07, beta=2.0)
    assert M.ModelConfig.from_dict(config.to_dict()) == config
    assert config.audio_encoder == "resnet18" and config.similarity == "dot"
    assert M.PRESETS["gsavl"]() == M.ModelConfig(audio_encoder="vggish", similarity="cosine", dim=512, tau=0.03)
    assert M.PRESETS["ezvsl"]().normalize_features is False  # the original's "dot": un-normalised features
    with pytest.raises(UsageError) as info:
        M.config_from_preset("avsbench")
    assert "gsavl" in info.value.hint and "ezvsl" in info.value.hint
    with pytest.raises(UsageError, match="similarity"):
        M.ModelConfig(similarity="l2")
    with pytest.raises(UsageError, match="tau"):
        M.ModelConfig(tau=0)
    with pytest.raises(UsageError, match="unknown model settings: heads"):
        M.ModelConfig.from_dict({**config.to_dict(), "heads": 4})


def test_normalise_map() -> None:
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])
    expected = torch.tensor([[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert torch.allclose(M.normalise_map(maps), expected)


def minmax(t: torch.Tensor) -> torch.Tensor:
    return (t - t.min()) / (t.max() - t.min())


def test_heatmaps_against_reference() -> None:
    localizer = tiny_localizer("ezvsl").train()
    prior = M.ObjectPrior()
    images, audio = torch.randn(3, 3, 64, 96), spectrograms(3)
    sizes = [(20, 30), (9, 7), (20, 30)]
    out = M.heatmaps(localizer, prior, images, audio, None, sizes, alpha=0.4)
    assert localizer.training, "heatmaps must restore the training mode"
    localizer.eval()
    with torch.no_grad():
        img, aud = localizer(images, audio)
        coarse_av = (img * aud[:, :, None, None]).sum(1)
        coarse_obj = prior.trunk(images).abs().mean(1)
    for i, size in enumerate(sizes):

        def up(t: torch.Tensor, i: int = i, size: tuple[int, int] = size) -> torch.Tensor:
            # the original's upsampling
            return F.interpolate(t[i][None, None], size=size, mode="bilinear", align_corners=True)[0, 0]

        av, obj = minmax(up(coarse_av)), minmax(up(coarse_obj))
        assert out["av"][i].shape == size
        assert torch.allclose(out["av"][i], av, atol=1e-5)
        assert torch.allclose(out["obj"][i], obj, atol=1e-5)
        assert torch.allclose(out["avobj"][i], minmax(0.4 * av + 0.6 * obj), atol=1e-5)
        for name in M.PAPER_MAPS:  # the lower-level heatmaps: the paper's maps (text is the Predictor's)
            assert out[name][i].min() == 0 and out[name][i].max() == 1


def test_heatmaps_alpha_extremes_and_subsets() -> None:
    localizer, prior = tiny_localizer("ezvsl"), M.ObjectPrior()
    images, audio = torch.randn(2, 3, 64, 64), spectrograms(2)
    sizes = [(16, 16), (16, 16)]
    only_av = M.heatmaps(localizer, None, images, audio, None, sizes, maps=("av",))
    assert list(only_av) == ["av"]
    both = M.heatmaps(localizer, prior, images, audio, None, sizes, alpha=1.0)
    assert all(torch.allclose(a, b) for a, b in zip(both["avobj"], only_av["av"]))
    none = M.heatmaps(localizer, prior, images, audio, None, sizes, alpha=0.0, maps=("obj", "avobj"))
    assert all(torch.allclose(a, b) for a, b in zip(none["avobj"], none["obj"]))
    with pytest.raises(UsageError, match="object prior"):
        M.heatmaps(localizer, None, images, audio, None, sizes, maps=("obj",))
    with pytest.raises(UsageError, match="heatmap"):
        M.heatmaps(localizer, prior, images, audio, None, sizes, maps=("sam",))


def outputs(localizer: M.Localizer, images: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        img, aud = localizer.eval()(images, audio)
    return img, aud, localizer.ssl_map(img, aud)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    localizer = tiny_localizer("ezvsl", tau=0.05, beta=1.5)
    images, audio = torch.randn(2, 3, 64, 64), spectrograms(2)
    localizer.train()(images, audio)  # moves the BatchNorm running statistics off their defaults
    optimizer = torch.optim.SGD(localizer.parameters(), lr=0.1)
    path = tmp_path / "run" / "best.pt"
    M.save_checkpoint(
        path, localizer, localizer.config, extra={"epoch": 3, "cIoU": 0.41}, optimizer_state=optimizer.state_dict()
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]
    loaded = M.load_checkpoint(path)
    assert loaded.config == localizer.config and loaded.model.config == localizer.config
    assert loaded.extra == {"epoch": 3, "cIoU": 0.41}
    assert loaded.raw["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert all(t.device.type == "cpu" for t in loaded.model.state_dict().values())
    for mine, theirs in zip(outputs(localizer, images, audio), outputs(loaded.model, images, audio)):
        assert torch.equal(mine, theirs)


OURS_TO_ORIGINAL = {
    "image_trunk.": "imgnet.",
    "image_proj.": "img_proj.",
    "audio.trunk.": "audnet.",
    "audio.proj.": "aud_proj.",
}


def original_layout(state: dict[str, torch.Tensor], wrapper: str) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        ours = next(prefix for prefix in OURS_TO_ORIGINAL if key.startswith(prefix))
        renamed[wrapper + OURS_TO_ORIGINAL[ours] + key[len(ours) :]] = value
    return renamed


@pytest.mark.parametrize(
    ("preset", "wrapper", "source"),
    [("gsavl", "module.backbone.", "original GSAVL"), ("ezvsl", "module.", "original EZ-VSL")],
)
def test_original_checkpoints_import(tmp_path: Path, preset: str, wrapper: str, source: str) -> None:
    localizer = tiny_localizer(preset)
    images = torch.randn(2, 3, 64, 64)
    audio = torch.randn(2, 2, 96, 64) if preset == "gsavl" else spectrograms(2)
    localizer.train()(images, audio)
    state = original_layout(localizer.state_dict(), wrapper)
    state[wrapper + "imgnet.fc.weight"] = torch.zeros(3, 512)  # an fc head, not used
    path = tmp_path / "best.pth"
    torch.save(
        {
            "model": state,
            "optimizer": {"state": {}, "param_groups": []},
            "epoch": 7,
            "best_cIoU": np.mean([0.3, 0.4]),
            "best_Auc": 0.2,
        },
        path,
    )
    loaded = M.load_checkpoint(path)
    assert loaded.config == M.config_from_preset(preset, dim=8)
    assert loaded.extra == {"source": source, "epoch": 7, "best_cIoU": pytest.approx(0.35), "best_Auc": 0.2}
    assert type(loaded.extra["best_cIoU"]) is float
    for mine, theirs in zip(outputs(localizer, images, audio), outputs(loaded.model, images, audio)):
        assert torch.equal(mine, theirs)


def test_bad_checkpoints_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="checkpoint not found"):
        M.load_checkpoint(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(UsageError, match="notes.pt"):
        M.load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"lr": 0.1}, other)
    with pytest.raises(UsageError, match="not a gsavl checkpoint"):
        M.load_checkpoint(other)
    torch.save({"model": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(UsageError, match="not a gsavl, GSAVL or EZ-VSL checkpoint"):
        M.load_checkpoint(other)

    localizer = tiny_localizer("ezvsl")
    mismatch = tmp_path / "mismatch.pt"
    M.save_checkpoint(mismatch, localizer, M.config_from_preset("ezvsl", dim=16))
    with pytest.raises(UsageError, match="does not fit the localizer"):
        M.load_checkpoint(mismatch)
    incomplete = tmp_path / "incomplete.pt"
    partial = M.Localizer.state_dict(localizer)
    partial.pop("image_proj.bias")
    torch.save(
        {"format": "gsavl", "version": 1, "config": localizer.config.to_dict(), "model": partial, "extra": {}},
        incomplete,
    )
    with pytest.raises(UsageError, match="missing image_proj.bias"):
        M.load_checkpoint(incomplete)
    future = tmp_path / "future.pt"
    torch.save({"format": "gsavl", "version": 99, "config": {}, "model": {}}, future)
    with pytest.raises(UsageError, match="version 99"):
        M.load_checkpoint(future)
    torch.save({"format": "gsavl", "version": 1, "model": partial}, future)
    with pytest.raises(UsageError, match="damaged"):
        M.load_checkpoint(future)


def test_identity_init_keeps_dark_colours_and_both_signs() -> None:
    from gsavl_cli.model.encoders import ResNetTrunk, identity_init

    trunk = ResNetTrunk()
    identity_init(trunk)
    trunk.eval()
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, :20] = torch.tensor([-0.7, -0.5, -0.3])[:, None, None]  # a dark grey (ImageNet-normalised)
    image[:, :, 20:] = torch.tensor([1.6, -1.3, 0.4])[:, None, None]  # a red (cell rows sample pixel rows 0 and 32)
    with torch.no_grad():
        cells = trunk(image)[0, :6, :, 0]  # [6 channels, 2 rows]
    scale = cells.abs().max()
    expected = torch.tensor([[0, 0, 0, 0.7, 0.5, 0.3], [1.6, 0, 0.4, 0, 1.3, 0]]).T
    torch.testing.assert_close(cells / scale * expected.abs().max(), expected, atol=1e-5, rtol=1e-5)
    assert not trunk(image)[0, 6:].any()  # the other channels stay empty


def test_freeze_image_trains_only_the_projection() -> None:
    localizer = M.build_localizer(M.config_from_preset("gsavl", dim=8, freeze_image=True), pretrained=False).train()
    assert not localizer.image_trunk.training and localizer.audio.trunk.training
    img, aud = localizer(torch.randn(2, 3, 64, 64), torch.randn(2, 1, 96, 64))
    localizer.loss(img, aud)[0].backward()
    assert all(p.grad is None and not p.requires_grad for p in localizer.image_trunk.parameters())
    assert localizer.image_proj.weight.grad is not None and localizer.audio.proj.weight.grad is not None


@pytest.mark.parametrize("preset", ["gsavl", "ezvsl"])
def test_standardize_audio_is_a_batchnorm_before_the_projection(preset) -> None:
    plain = M.build_localizer(M.config_from_preset(preset, dim=8), pretrained=False)
    assert not any("standardize" in k for k in plain.state_dict())  # old checkpoints keep their keys
    model = M.build_localizer(M.config_from_preset(preset, dim=8, standardize_audio=True), pretrained=False).eval()
    channels = model.audio.proj.in_features
    assert (
        isinstance(model.audio.standardize, torch.nn.BatchNorm1d) and model.audio.standardize.num_features == channels
    )
    with torch.no_grad():
        model.audio.standardize.running_mean.fill_(0.5)
        model.audio.standardize.running_var.fill_(4.0)
        audio = torch.randn(3, 2, 96, 64) if preset == "gsavl" else torch.randn(3, 257, 40)
        lengths = torch.tensor([2, 1, 2]) if preset == "gsavl" else None
        trunk = model.audio.trunk_features(audio, lengths)
        by_hand = model.audio.proj((trunk - 0.5) / torch.sqrt(torch.tensor(4.0 + 1e-5)))
        if model.config.normalize_features:  # ezvsl: the un-normalised dot product
            by_hand = torch.nn.functional.normalize(by_hand, dim=-1)
        if preset == "gsavl":  # mean over each clip's valid examples
            expected = torch.stack([by_hand[0].mean(0), by_hand[1, 0], by_hand[2].mean(0)])
        else:
            expected = by_hand[:, 0]
        torch.testing.assert_close(model.audio(audio, lengths), expected, rtol=1e-5, atol=1e-6)
