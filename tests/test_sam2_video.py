"""`localize --propagate`: SAM 2's video predictor as a tracker (equal to the library's streaming loop, bounded
memory) and the re-prompting rule on a clip whose sounding object switches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gsavl_cli.samplers import Prompts

pytest.importorskip("transformers", reason="the sam2 extra: pip install -e '.[sam2]'")

from transformers import Sam2VideoModel

from gsavl_cli.commands.localize_video import VideoSettings, localize_video
from gsavl_cli.predictor import Predictor, SamplerChoice
from gsavl_cli.segment.base import ImageEmbedding, SegmentResult
from gsavl_cli.segment.sam2_video import Sam2VideoTracker, load_sam2_video, make_video_processor
from gsavl_cli.segment.tiny import build_tiny_sam2

runner = CliRunner()


@pytest.fixture(scope="module")
def video_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SAM 2 video predictor (memory of 3 frames, 4 object pointers), saved as save_pretrained writes it."""
    folder = tmp_path_factory.mktemp("sam2v") / "tiny-video"
    build_tiny_sam2(seed=1, image_size=256, hidden=128, video=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint

    config = config_from_preset("gsavl", image_size=64, dim=16)
    path = tmp_path_factory.mktemp("seg2v") / "random.pt"
    save_checkpoint(path, build_localizer(config, pretrained=False), config)
    return path


def test_tracked_masks_equal_the_librarys_video_predictor(video_model: Path) -> None:
    """Same random weights and prompts; the library's streaming loop keeps every frame, the tracker drops old ones."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(9)]
    prompts = Prompts(np.array([[80.0, 60.0], [20.0, 100.0]], np.float32), np.array([1, 0]))
    tracker = Sam2VideoTracker(load_sam2_video("sam2.1_hiera_t", video_model))
    ours = [tracker.step(frames[0], prompts)] + [tracker.step(f) for f in frames[1:]]
    assert len(tracker.session.processed_frames) == 1  # pixels of the current frame only
    kept = tracker.session.output_dict_per_obj[0]["non_cond_frame_outputs"]
    assert len(kept) <= tracker.window + 1 < len(frames) - 1  # a fixed memory window, shorter than the clip

    library = Sam2VideoModel.from_pretrained(video_model).eval()
    processor = make_video_processor(library)
    session = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    for index, frame in enumerate(frames):
        inputs = processor(images=frame, return_tensors="pt")
        if index == 0:
            processor.add_inputs_to_inference_session(
                session,
                frame_idx=0,
                obj_ids=1,
                input_points=[[prompts.points.tolist()]],
                input_labels=[[prompts.labels.tolist()]],
                original_size=inputs["original_sizes"][0],
            )
        with torch.no_grad():
            out = library(inference_session=session, frame=inputs["pixel_values"][0])
        want = processor.post_process_masks([out.pred_masks], original_sizes=inputs["original_sizes"], binarize=True)
        got = ours[index].mask
        assert got.shape == (120, 160) and int((got != want[0][0, 0].numpy()).sum()) == 0, index
    areas = [r.mask.mean() for r in ours]
    assert all(0 < a < 1 for a in areas)  # real masks, not empty ones

    again = tracker.prompt(Prompts(np.array([[10.0, 10.0]], np.float32), np.array([1])))
    assert again.mask.shape == (120, 160) and tracker.index == len(frames) - 1  # the same frame, prompted again


class VisualTracker:
    """A stand-in for an ideal tracker: a prompt picks the object under its first positive point, propagation
    follows that object (sounding or not) to the next frame. The test feeds it the scene's object masks."""

    name = "sam2"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.encoder_calls = 0
        self.objects: np.ndarray | None = None  # [K,H,W] the objects on the current frame
        self.reset()

    def reset(self) -> None:
        self.index, self.followed = -1, None

    def embed(self, images, batch_size=4):
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in images]

    def segment_many(self, *args, **kwargs):
        raise AssertionError("a tracker is stepped, not asked per frame")

    def step(self, frame: np.ndarray, prompts: Prompts | None = None) -> SegmentResult:
        self.index += 1
        if prompts is not None:
            return self.prompt(prompts)
        return SegmentResult(self.objects[self.followed], 1.0, 1, 0)

    def prompt(self, prompts: Prompts) -> SegmentResult:
        x, y = np.rint(prompts.points[prompts.labels == 1][0]).astype(int)
        self.followed = int(np.argmax(self.objects[:, y, x]))
        return SegmentResult(self.objects[self.followed], 1.0, 1, 0)


def test_propagate_reprompts_after_the_sounding_object_switches(checkpoint: Path, tmp_path: Path) -> None:
    """The heatmap is the truth (the sounding object); the mask after the switch must lie on the new object."""
    from gsavl_cli.data.synthetic.video import render_video

    clip = render_video(tmp_path / "switch.mp4", seconds=4.0, fps=8, seed=2)  # object 0, then object 1 from 2 s
    tracker = VisualTracker()
    predictor = Predictor.from_checkpoint(checkpoint, segmenter="region")
    predictor.segmenter = tracker

    def oracle(map_name: str, *, clip: object = None, size: object = None) -> torch.Tensor:
        at = float(clip.key.rsplit("@", 1)[1])  # type: ignore[attr-defined]
        tracker.objects = render.scene.object_masks(render.frame_times([at]))[0]
        return torch.from_numpy(render.truth([at])[0].astype(np.float32))

    render = clip
    predictor.heatmap_tensor = oracle  # type: ignore[method-assign]
    settings = VideoSettings(
        every=0.25,
        map_name="av",
        sampler=SamplerChoice("prob"),
        timeline=tmp_path / "t.json",
        masks=tmp_path / "m.npz",
        propagate=True,
        cascade_threshold=0.3,
        chunk_size=5,
    )
    summary = localize_video(clip.path, predictor, settings)
    entries = json.loads((tmp_path / "t.json").read_text())["timeline"]
    sources = [e["source"] for e in entries]
    times = np.array([e["time"] for e in entries])
    assert sources[0] == "prompted" and summary["sources"]["propagated"] > 0
    switch = int(np.argmax(times >= 2.0))
    assert set(sources[1:switch]) == {"propagated"}  # the same object sounds: carried, not re-prompted
    assert sources[switch] == "re-prompted" and entries[switch]["points"]  # the old object went silent: prompted
    assert set(sources[switch + 1 :]) == {"propagated"}  # and the new one carried on
    from gsavl_cli.io.masks import read_masks

    with read_masks(tmp_path / "m.npz") as archive:
        after = archive[switch]
    truth = clip.truth(times[switch : switch + 1])[0]
    assert (after & truth).sum() / (after | truth).sum() > 0.5  # the mask after the switch is the new object


def test_localize_propagate_from_the_cli(checkpoint: Path, video_model: Path, tmp_path: Path) -> None:
    from gsavl_cli.cli import app
    from gsavl_cli.data.synthetic.video import render_video

    clip = render_video(tmp_path / "c.mp4", seconds=2.0, fps=8, seed=3)
    args = ["-q", "localize", str(clip.path), "--checkpoint", str(checkpoint), "--map", "av", "--every", "0.25"]
    args += ["--segmenter", "sam2", "--sam-model", "sam2.1_hiera_t", "--sam-checkpoint", str(video_model)]
    done = runner.invoke(app, [*args, "--propagate", "--timeline", str(tmp_path / "t.json"), "--json"])
    assert done.exit_code == 0, done.output
    timeline = json.loads((tmp_path / "t.json").read_text())
    assert timeline["propagate"] is True and len(timeline["timeline"]) == 8
    assert timeline["timeline"][0]["source"] == "prompted"
    assert {e["source"] for e in timeline["timeline"]} <= {"prompted", "propagated", "re-prompted"}
    refused = runner.invoke(app, [*args[:9], "--segmenter", "sam", "--propagate", "--timeline", str(tmp_path / "u")])
    assert refused.exit_code == 2 and "--segmenter sam2" in " ".join(refused.output.split())
