"""The sam2 segmenter on tiny random SAM 2 models: equal to the library's own predictor, loading, the Predictor,
eval's embedding cache, the CLI, and the one-line errors without weights or without the extra."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.samplers import Prompts

pytest.importorskip("transformers", reason="the sam2 extra: pip install -e '.[sam2]'")

from transformers import Sam2Model, Sam2Processor

from gsavl_cli.segment import SAM2_MODELS, Sam2Segmenter, load_sam, load_sam2, make_segmenter
from gsavl_cli.segment.sam2 import make_processor
from gsavl_cli.segment.tiny import build_tiny_sam2

runner = CliRunner()


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SAM 2 at SAM 2's own 1024 x 1024 input, saved as save_pretrained writes it."""
    folder = tmp_path_factory.mktemp("sam2") / "tiny-1024"
    build_tiny_sam2(seed=1).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same architecture at a 256 x 256 input: for the tests that run whole commands."""
    folder = tmp_path_factory.mktemp("sam2") / "tiny-256"
    build_tiny_sam2(seed=2, image_size=256).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint

    config = config_from_preset("gsavl", image_size=64, dim=16)
    path = tmp_path_factory.mktemp("seg2") / "random.pt"
    save_checkpoint(path, build_localizer(config, pretrained=False), config)
    return path


def _frame(height: int = 720, width: int = 1280) -> np.ndarray:
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    frame[200:500, 300:700] = (240, 200, 40)
    return frame


def _library_masks(
    model: Sam2Model, processor: Sam2Processor, frame: np.ndarray, prompts: Prompts, *, multimask: bool, encode: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The library's documented path: processor -> model (from pixels, or from get_image_embeddings) -> post-processing."""
    inputs = processor(
        images=frame,
        input_points=[[prompts.points.tolist()]],
        input_labels=[[prompts.labels.tolist()]],
        return_tensors="pt",
    )
    with torch.no_grad():
        if encode:
            out = model(
                pixel_values=inputs["pixel_values"],
                input_points=inputs["input_points"],
                input_labels=inputs["input_labels"],
                multimask_output=multimask,
            )
        else:
            embeddings = model.get_image_embeddings(inputs["pixel_values"])
            out = model(
                image_embeddings=embeddings,
                input_points=inputs["input_points"],
                input_labels=inputs["input_labels"],
                multimask_output=multimask,
            )
    masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0][0]
    return masks.numpy(), out.iou_scores[0, 0].numpy()


PROMPT_SETS = [
    Prompts(np.array([[400.5, 300.25]], np.float32), np.array([1])),
    Prompts(np.array([[1100.0, 90.0]], np.float32), np.array([1])),
    Prompts(np.array([[450.0, 320.0], [1000.0, 600.0]], np.float32), np.array([1, 0])),
    Prompts(np.array([[500.0, 350.0], [10.0, 700.0]], np.float32), np.array([1, 1])),
]


def test_masks_equal_the_librarys_own_predictor_on_a_real_size_frame(full_size: Path) -> None:
    """Same random weights, loaded once by gsavl and once by Sam2Model.from_pretrained: 0 differing pixels."""
    frame = _frame()
    segmenter = make_segmenter("sam2", sam_model="sam2.1_hiera_t", sam_checkpoint=full_size)
    library = Sam2Model.from_pretrained(full_size).eval()
    processor = Sam2Processor(image_processor=make_processor(library).image_processor)
    embedding = segmenter.embed([frame])[0]
    assert segmenter.encoder_calls == 1 and embedding.original_size == (720, 1280)
    for mask_choice in ("single", "score"):
        multimask = mask_choice != "single"
        found = segmenter.segment_many(embedding, PROMPT_SETS, mask_choice=mask_choice)  # batched by point count
        for k, (prompts, result) in enumerate(zip(PROMPT_SETS, found)):
            masks, iou = _library_masks(library, processor, frame, prompts, multimask=multimask, encode=k == 0)
            pick = int(iou.argmax()) if multimask else 0
            assert result.mask.shape == (720, 1280)
            assert int((result.mask != masks[pick]).sum()) == 0, (mask_choice, k)
            assert result.choice_index == pick and result.score == pytest.approx(float(iou[pick]), abs=1e-6)
            assert 0 < result.mask.sum() < result.mask.size  # a real mask, not an empty or a full frame
        assert found[0].candidates == (3 if multimask else 1)
    assert segmenter.encoder_calls == 1  # every prompt set of both passes reused the one embedding


def test_heatmap_choice_picks_the_best_agreeing_of_three(full_size: Path) -> None:
    from gsavl_cli.segment import soft_iou

    frame = _frame()
    segmenter = make_segmenter("sam2", sam_model="sam2.1_hiera_t", sam_checkpoint=full_size)
    embedding = segmenter.embed([frame])[0]
    masks, _ = segmenter.logits(embedding, PROMPT_SETS[:1], multimask=True)
    heat = masks[0, 1].float() * 0.9  # agrees best with the second candidate
    chosen = segmenter.segment(embedding, PROMPT_SETS[0], mask_choice="heatmap", heatmap=heat)
    agreement = soft_iou(heat, masks[0])
    assert chosen.choice_index == int(agreement.argmax())
    assert np.array_equal(chosen.mask, masks[0, chosen.choice_index].numpy())


def test_the_three_feature_levels_fold_into_one_tensor_exactly(small: Path) -> None:
    segmenter = Sam2Segmenter(load_sam2("sam2.1_hiera_t", small))
    sizes = segmenter.sam2.config.vision_config.backbone_feature_sizes
    levels = [torch.randn(2, c, *s) for c, s in zip(segmenter._channels(), sizes)]
    packed = segmenter.pack(levels)
    assert packed.shape[-2:] == tuple(sizes[-1]) and packed.dim() == 4
    for got, want in zip(segmenter.unpack(packed), levels):
        assert torch.equal(got, want)


def test_loading_from_the_cache_and_the_one_line_errors(small: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GSAVL_CACHE", str(cache))
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    with pytest.raises(WeightsError) as offline:
        make_segmenter("sam2", sam_model="sam2.1_hiera_t")
    message, hint = str(offline.value), offline.value.hint
    assert "\n" not in message and "sam2.1-hiera-tiny/config.json" in message
    assert "https://huggingface.co/facebook/sam2.1-hiera-tiny/resolve/main/config.json" in hint
    assert str(cache / "sam2.1-hiera-tiny") in hint and "--sam-checkpoint" in hint

    target = cache / "sam2.1-hiera-tiny"
    target.mkdir(parents=True)
    (target / "config.json").write_bytes((small / "config.json").read_bytes())
    with pytest.raises(WeightsError, match="sam2.1-hiera-tiny/model.safetensors"):
        make_segmenter("sam2", sam_model="sam2.1_hiera_t")  # the config alone is not enough
    (target / "model.safetensors").write_bytes((small / "model.safetensors").read_bytes())
    loaded = make_segmenter("sam2", sam_model="sam2.1_hiera_t")
    reference = Sam2Model.from_pretrained(small).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.sam2.state_dict().items())

    other = tmp_path / "other"
    build_tiny_sam2(seed=3, image_size=256, hidden=16).save_pretrained(other)
    (other / "config.json").write_bytes((small / "config.json").read_bytes())  # weights of another width
    with pytest.raises(WeightsError, match="does not"):
        load_sam2("sam2.1_hiera_t", other)
    with pytest.raises(WeightsError, match="not found"):
        load_sam2("sam2.1_hiera_t", tmp_path / "nowhere")
    with pytest.raises(UsageError, match="takes a SAM 2.1 model"):
        make_segmenter("sam2", sam_model="vit_b")
    with pytest.raises(UsageError, match="is a SAM 2 model") as wrong_family:
        load_sam("sam2.1_hiera_l")
    assert "--segmenter sam2" in wrong_family.value.hint


def test_every_sam2_model_has_its_two_files_in_the_resolver() -> None:
    for model in SAM2_MODELS:
        config, files = weights.weight_spec(f"{model}:config"), weights.weight_spec(model)
        assert config.filename.rsplit("/", 1)[0] == files.filename.rsplit("/", 1)[0]  # one folder per model
        assert files.url.endswith("/model.safetensors") and config.url.endswith("/config.json")
    assert len({weights.weight_spec(m).filename for m in SAM2_MODELS}) == len(SAM2_MODELS)


def test_the_predictor_runs_the_cascade_with_sam2(checkpoint: Path, small: Path, tiny_clip) -> None:
    from gsavl_cli.predictor import Predictor

    clip = tiny_clip(seconds=1.0)
    predictor = Predictor.from_checkpoint(
        checkpoint, segmenter="sam2", sam_model="sam2.1_hiera_t", sam_checkpoint=small
    )
    predictor.set_clip(clip.frames[0], clip.waveform, key="c")
    found = predictor.predict("av", "prob", seed=0, mask_choice="heatmap", cascade_rounds=3, cascade_threshold=1.01)
    assert found.segmenter == "sam2" and found.mask.shape == clip.frames.shape[1:3]
    assert found.rounds >= 2  # an unreachable threshold: the cascade goes on past the first round
    assert predictor.segmenter.encoder_calls == 1  # every round decodes against the one embedding


def test_eval_caches_sam2_embeddings(checkpoint: Path, small: Path, s4_store: Path, tmp_path: Path) -> None:
    from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
    from gsavl_cli.console import progress
    from gsavl_cli.predictor import SamplerChoice

    def run(out: str) -> dict:
        settings = EvalSettings(
            data=s4_store,
            checkpoint=checkpoint,
            out=tmp_path / out,
            maps=("av",),
            samplers=[SamplerChoice("naive"), SamplerChoice("prob")],
            segmenter="sam2",
            sam_model="sam2.1_hiera_t",
            sam_checkpoint=small,
            pretrained_prior=False,
            embedding_cache=tmp_path / "emb.h5",
            batch_size=2,
        )
        return run_evaluation(settings, progress=progress)

    first, second = run("a"), run("b")
    frames = first["timings"]["image_encoder_calls"]
    assert frames > 0 and second["timings"]["image_encoder_calls"] == 0  # the second run reads the cache
    assert {r["segmenter"] for r in first["results"] if r["sampler"]} == {"sam2"}
    assert [r["miou"] for r in second["results"]] == pytest.approx([r["miou"] for r in first["results"]], abs=2e-2)


def test_localize_with_sam2_from_the_cli(checkpoint: Path, small: Path, tiny_clip, tmp_path: Path) -> None:
    from gsavl_cli.cli import app

    clip = tiny_clip(seconds=1.0)
    args = ["-q", "localize", str(clip.path), "--checkpoint", str(checkpoint), "--map", "av"]
    args += ["--segmenter", "sam2", "--sam-model", "sam2.1_hiera_t", "--sam-checkpoint", str(small)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "m.png"), "--json-file", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["segmenter"] == "sam2"


def test_without_the_extra_one_line_says_how_to_install_it(checkpoint: Path, tiny_clip, monkeypatch) -> None:
    from gsavl_cli.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a)
    )
    clip = tiny_clip(seconds=1.0)
    args = ["localize", str(clip.path), "--checkpoint", str(checkpoint), "--map", "av"]
    result = runner.invoke(app, [*args, "--segmenter", "sam2", "--sam-model", "sam2.1_hiera_s"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "needs the transformers package" in text and "pip install 'gsavl[sam2]'" in text
    assert "Traceback" not in result.output
