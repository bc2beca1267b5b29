"""The `gsavl` command end to end on the synthetic world: preprocess, inspect, train, eval, localize."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gsavl_cli import metrics
from gsavl_cli.cli import app
from gsavl_cli.io.media import read_image
from gsavl_cli.io.store import open_store
from gsavl_cli.segment.tiny import build_tiny_sam
from gsavl_cli.validation import ground_truth

runner = CliRunner()


def gsavl(*args: str, code: int = 0):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def world_h5(synthetic_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h5") / "world.h5"
    result = gsavl("preprocess", synthetic_world.root, "-o", out, "--workers", "1", "--json")
    summary = json.loads(result.stdout)
    n = len(synthetic_world.clips)
    assert summary == {"output": str(out), "written": n, "skipped": 0, "failed": [], "ignored": []}
    return out


@pytest.fixture(scope="module")
def checkpoint(world_h5, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    gsavl(
        "train",
        "--dataset",
        world_h5,
        "--out",
        run,
        "--no-pretrained",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--workers",
        "0",
        "--val",
        world_h5,
    )
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.json"):
        assert (run / name).exists(), name
    return run / "best.pt"


@pytest.fixture(scope="module")
def tiny_sam_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), path)
    return path


@pytest.fixture()
def prior_weights(tmp_path, monkeypatch):
    """A random ResNet-18 saved where the resolver looks for the ImageNet file."""
    import torchvision

    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path))
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18-f37072fd.pth")


def test_preprocess_lists_the_files_it_ignores(tmp_path):
    from gsavl_cli.data.synthetic import write_video

    write_video(tmp_path / "in" / "clip.mp4", np.full((4, 16, 16, 3), 90, np.uint8), 4, np.zeros(16000, np.float32))
    (tmp_path / "in" / "notes.txt").write_text("not a clip")
    (tmp_path / "in" / ".hidden.mp4").write_bytes(b"")
    shown = runner.invoke(app, ["preprocess", str(tmp_path / "in"), "-o", str(tmp_path / "a.h5"), "--workers", "1"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())  # rich wraps long lines
    assert "ignored 2 file(s)" in text and "not a video (.txt)" in text and "hidden file" in text
    summary = json.loads(
        gsavl("preprocess", tmp_path / "in", "-o", tmp_path / "b.h5", "--workers", "1", "--json").stdout
    )
    assert summary["written"] == 1
    assert summary["ignored"] == [
        {"source": str(tmp_path / "in" / ".hidden.mp4"), "reason": "hidden file"},
        {"source": str(tmp_path / "in" / "notes.txt"), "reason": "not a video (.txt)"},
    ]
    (tmp_path / "in" / "clip.mp4").unlink()
    empty = gsavl("preprocess", tmp_path / "in", "-o", tmp_path / "c.h5", code=2)
    text = " ".join(empty.output.split())
    assert "no clips found" in text and "ignored 2 file(s)" in text and "notes.txt: not a video (.txt)" in text


def test_preprocess_is_resumable_and_inspect_lists_arrays(world_h5, synthetic_world, tmp_path):
    again = json.loads(gsavl("preprocess", synthetic_world.root, "-o", world_h5, "--workers", "1", "--json").stdout)
    assert again["written"] == 0 and again["skipped"] == len(synthetic_world.clips)
    info = json.loads(gsavl("inspect", world_h5, "--json", "--clips", "-1").stdout)
    assert info["clips"] == len(synthetic_world.clips) and info["settings"]["layout"] == "avsbench-s4"
    test_clip = next(d for d in info["details"] if d["meta"]["split"] == "test")
    assert test_clip["arrays"]["masks"]["shape"] == [5, 120, 160]
    assert test_clip["arrays"]["vggish"]["shape"] == [5, 96, 64]
    assert test_clip["arrays"]["frames"]["shape"] == [5, 120, 160, 3]


def test_preprocess_reports_failures(tmp_path, tiny_clip):
    tiny_clip("good clip.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"\x00garbage" * 100)
    result = runner.invoke(
        app, ["-q", "preprocess", str(tmp_path), "-o", str(tmp_path / "o.h5"), "--workers", "2", "--json"]
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["written"] == 1 and len(summary["failed"]) == 1
    assert summary["failed"][0]["source"].endswith("broken.mp4") and summary["failed"][0]["reason"]
    assert open_store(tmp_path / "o.h5").ids == ["good clip"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["preprocess", "/nonexistent/dir"], "no such file"),
        (["train", "--dataset", "/nonexistent.h5", "--no-pretrained"], "no such data file"),
        (["train", "--dataset", "imagenet"], "unknown dataset"),
        (["localize", "/nonexistent.mp4", "--checkpoint", "x.pt"], "no such file"),
        (["samplers", "--json", "--bogus"], None),
    ],
)
def test_user_errors_are_one_line_with_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    if message:
        assert message in result.output


def test_train_rejects_wrong_features_and_unwritable_out(world_h5, tmp_path):
    result = runner.invoke(app, ["train", "--dataset", str(world_h5), "--out", "/proc/nope", "--no-pretrained"])
    assert result.exit_code == 2 and "cannot write" in result.output
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = runner.invoke(
        app, ["eval", "--dataset", str(world_h5), "--checkpoint", str(bogus), "--segmenter", "region", "--map", "av"]
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit) and "bogus.pt" in result.output


def _assert_report_header_is_metrics_json(page: Path, summary: dict, map_name: str, sampler: str) -> None:
    """Every number in the report's header table is metrics.json's value under the same name, for the rows shown."""
    import re

    header = re.search(r'<table id="summary">(.*?)</table>', page.read_text(), re.S).group(1)
    shown = [
        dict(re.findall(r'<td data-key="(\w+)" data-v="([^"]*)">', row))
        for row in re.findall(r"<tr>(.*?)</tr>", header.split("</thead>")[1])
    ]
    expected = [r for r in summary["results"] if r["map"] == map_name and r["sampler"] in (None, sampler)]
    assert [row["sampler"] for row in shown] == ["", sampler] and len(expected) == 2
    for row, entry in zip(shown, expected):
        for key, text in row.items():
            value = entry[key]
            assert text == ("" if value is None else str(value) if not isinstance(value, float) else repr(value)), key
            if isinstance(value, float):
                assert float(text) == value


def test_eval_region_matches_direct_computation(world_h5, checkpoint, tmp_path):
    out = tmp_path / "eval"
    result = gsavl(
        "eval",
        "--dataset",
        world_h5,
        "--checkpoint",
        checkpoint,
        "--out",
        out,
        "--segmenter",
        "region",
        "--map",
        "av",
        "--sampler",
        "naive,prob",
        "--json",
        "--report",
    )
    summary = json.loads(result.stdout)
    assert json.loads((out / "metrics.json").read_text()) == summary
    _assert_report_header_is_metrics_json(out / "report.html", summary, "av", "prob")
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    heat_rows = [r for r in rows if r["sampler"] == ""]
    assert len(heat_rows) == summary["settings"]["n_clips"] == 4
    heat = next(r for r in summary["results"] if r["sampler"] is None)
    assert heat["miou"] == pytest.approx(np.mean([float(r["iou"]) for r in heat_rows]), abs=1e-9)
    region = [r for r in rows if r["sampler"] == "prob"]
    assert all(
        r["segmenter"] == "region" and int(r["mask_area"]) > 0 and len(json.loads(r["points"])) == 3 for r in region
    )
    # an independent computation of one clip's heatmap IoU from the model's own parts
    import torch.nn.functional as F

    from gsavl_cli.data import features
    from gsavl_cli.model import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    model, config = loaded.model.eval(), loaded.config
    first = heat_rows[0]
    with open_store(world_h5) as store:
        item = store.read(first["clip"], ("first_frame", "waveform", "masks", "mask_frames"))
    wave = (
        item["waveform"]
        if config.audio_seconds is None
        else features.centre_window(item["waveform"], 16000, config.audio_seconds)
    )
    image = features.test_transform(config.image_size)(item["first_frame"])[None]
    with torch.no_grad():
        coarse = model.ssl_map(*model(image, features.vggish_examples(wave)[None]))
    up = F.interpolate(coarse[None], size=item["first_frame"].shape[:2], mode="bilinear", align_corners=True)[0, 0]
    hm = ((up - up.min()) / (up.max() - up.min())).numpy()
    gt = ground_truth(item, hm.shape)
    assert float(first["iou"]) == pytest.approx(metrics.mask_iou(hm >= np.sort(hm.ravel())[hm.size // 2], gt), abs=1e-6)


def test_eval_with_tiny_sam_reuses_embeddings(world_h5, checkpoint, tiny_sam_file, prior_weights, tmp_path):
    out = tmp_path / "eval"
    cache = tmp_path / "emb.h5"
    args = [
        "eval",
        "--dataset",
        world_h5,
        "--checkpoint",
        checkpoint,
        "--out",
        out,
        "--segmenter",
        "sam",
        "--sam-model",
        "tiny",
        "--sam-checkpoint",
        tiny_sam_file,
        "--map",
        "av,avobj",
        "--sampler",
        "naive,grid,prob",
        "--embedding-cache",
        cache,
        "--json",
    ]
    first = json.loads(gsavl(*args).stdout)
    assert first["timings"]["image_encoder_calls"] == 4  # 4 frames, 2 maps x 3 samplers: one encoder pass each
    assert {(r["map"], r["sampler"]) for r in first["results"]} >= {("avobj", "prob"), ("av", "grid")}
    second = json.loads(gsavl(*args).stdout)
    assert second["timings"]["image_encoder_calls"] == 0  # all from the cache
    assert [r["miou"] for r in second["results"]] == pytest.approx([r["miou"] for r in first["results"]], abs=1e-3)


def test_localize_writes_every_output(synthetic_world, checkpoint, tiny_sam_file, tmp_path):
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    mask, overlay, heat, report = (tmp_path / n for n in ("mask.png", "overlay.png", "heat.png", "r.json"))
    gsavl(
        "localize",
        clip.video,
        "--checkpoint",
        checkpoint,
        "--map",
        "av",
        "--sampler",
        "prob",
        "--sam-model",
        "tiny",
        "--sam-checkpoint",
        tiny_sam_file,
        "-o",
        mask,
        "--overlay",
        overlay,
        "--heatmap",
        heat,
        "--json-file",
        report,
    )
    written = read_image(mask, mode="GRAY")
    assert written.shape == clip.frames.shape[1:3] and set(np.unique(written)) <= {0, 255}
    assert read_image(overlay).shape == clip.frames.shape[1:]
    data = json.loads(report.read_text())
    assert len(data["points"]) == 3 and data["labels"] == [1, 1, 1] and data["segmenter"] == "sam"
    assert data["mask_area"] == int((written > 0).sum()) and set(data["timings"]) >= {"image_encoder_s", "heatmap_s"}


def test_localize_bad_inputs(synthetic_world, checkpoint, tiny_clip, tmp_path):
    silent = tiny_clip("silent.mp4", audio=False)
    result = runner.invoke(
        app, ["localize", str(silent.path), "--checkpoint", str(checkpoint), "--map", "av", "--segmenter", "region"]
    )
    assert result.exit_code == 2 and "no audio" in result.output
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    result = runner.invoke(
        app,
        [
            "localize",
            str(clip.video),
            "--checkpoint",
            str(checkpoint),
            "--map",
            "av",
            "--segmenter",
            "region",
            "--time",
            "99",
        ],
    )
    assert result.exit_code == 2 and "outside" in result.output
    result = runner.invoke(
        app, ["localize", str(clip.video), "--checkpoint", str(tmp_path / "none.pt"), "--segmenter", "region"]
    )
    assert (
        result.exit_code == 2
        and isinstance(result.exception, SystemExit)
        and "none.pt" in " ".join(result.output.split())
    )
    result = runner.invoke(
        app,
        ["localize", str(clip.video), "--checkpoint", str(checkpoint), "--sampler", "nope", "--segmenter", "region"],
    )
    assert result.exit_code == 2 and "prob" in result.output  # lists the known samplers


def test_samplers_listing():
    listed = json.loads(gsavl("samplers", "--json").stdout)
    names = {s["name"]: s for s in listed}
    assert {"naive", "grid", "prob", "peaks"} <= set(names)
    assert names["prob"]["params"] == {"p": 0.01, "n": 3, "ties": False} and names["grid"]["params"] == {"dist": 10}


def test_global_options_may_follow_the_subcommand(tmp_path, monkeypatch):
    """README: global options go before or after the subcommand; after it they win, and --help lists them once."""
    from gsavl_cli.console import OPTIONS

    for name in ("device", "seed", "verbose", "quiet"):
        monkeypatch.setattr(OPTIONS, name, getattr(OPTIONS, name))  # restored after the test
    gsavl("samplers", "--json", "--seed", "3", "-q", "--device=cpu")
    assert (OPTIONS.seed, OPTIONS.quiet, OPTIONS.device, OPTIONS.verbose) == (3, True, "cpu", False)
    runner.invoke(app, ["--seed", "5", "-v", "samplers", "--json"])
    assert (OPTIONS.seed, OPTIONS.verbose, OPTIONS.quiet, OPTIONS.device) == (5, True, False, "auto")
    runner.invoke(app, ["--seed", "5", "samplers", "--json", "--seed", "7"])
    assert OPTIONS.seed == 7
    loud = runner.invoke(app, ["localize", str(tmp_path / "missing.mp4"), "--map", "obj", "-v"])
    assert loud.exit_code == 2 and "Traceback" in loud.output  # -v after the subcommand, in time for its error
    shown = runner.invoke(app, ["localize", "--help"]).output
    assert "--seed" not in shown and "--quiet" not in shown  # documented once, as the app's options
    assert runner.invoke(app, ["--version"]).output.startswith("gsavl ")


def test_eval_all_annotated_frames(world_h5, checkpoint, tmp_path):
    summary = json.loads(
        gsavl(
            "eval",
            "--dataset",
            world_h5,
            "--checkpoint",
            checkpoint,
            "--out",
            tmp_path,
            "--segmenter",
            "region",
            "--map",
            "av",
            "--sampler",
            "naive",
            "--frames",
            "all",
            "--json",
        ).stdout
    )
    heat = next(r for r in summary["results"] if r["sampler"] is None)
    assert heat["n"] == 4 * 5  # 4 test clips x 5 annotated frames (AVSBench S4 test)
    rows = list(csv.DictReader((tmp_path / "per_sample.csv").open()))
    assert sorted({r["frame"] for r in rows}) == ["0", "1", "2", "3", "4"]
    first = json.loads(
        gsavl(
            "eval",
            "--dataset",
            world_h5,
            "--checkpoint",
            checkpoint,
            "--out",
            tmp_path / "f",
            "--segmenter",
            "region",
            "--map",
            "av",
            "--sampler",
            "naive",
            "--json",
        ).stdout
    )
    assert next(r for r in first["results"] if r["sampler"] is None)["n"] == 4


def test_unwritable_output_is_one_line(synthetic_world, checkpoint):
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    result = runner.invoke(
        app,
        [
            "localize",
            str(clip.video),
            "--checkpoint",
            str(checkpoint),
            "--map",
            "av",
            "--segmenter",
            "region",
            "-o",
            "/proc/forbidden/mask.png",
        ],
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error:") and "/proc/forbidden" in errors[0], result.output


def test_audio_silent_scores_the_heatmaps_of_an_all_zero_waveform(world_h5, checkpoint, tmp_path):
    """`--audio silent` is the control it claims: the saved maps are those of digital silence, not of the clip's sound."""
    import h5py

    from gsavl_cli import Predictor
    from gsavl_cli.io.store import hdf5_name

    maps = {}
    for audio in ("normal", "silent"):
        gsavl(
            "eval",
            "--dataset",
            world_h5,
            "--checkpoint",
            checkpoint,
            "--out",
            tmp_path / audio,
            "--segmenter",
            "region",
            "--map",
            "av",
            "--sampler",
            "prob",
            "--audio",
            audio,
            "--save-heatmaps",
            tmp_path / f"{audio}.h5",
        )
        with h5py.File(tmp_path / f"{audio}.h5", "r") as f:
            maps[audio] = {key: f[key]["av"][()] for key in f}
    predictor = Predictor.from_checkpoint(checkpoint, segmenter="region")
    with open_store(world_h5) as store:
        ids = [i for i in store.split_ids("test")]
        for clip_id in ids:
            item = store.read(clip_id, ("first_frame", "waveform"))
            predictor.set_clip(item["first_frame"], np.zeros_like(item["waveform"]), key=clip_id)
            # equal up to float rounding of the batched encoders (eval runs 8 clips at once)
            np.testing.assert_allclose(
                maps["silent"][hdf5_name(clip_id)], predictor.heatmaps(("av",))["av"], rtol=0, atol=1e-5
            )
    assert any(not np.allclose(maps["silent"][k], maps["normal"][k], atol=1e-4) for k in maps["normal"])


def test_avs_metrics_batch_videos_in_the_datasets_own_order(world_h5, checkpoint, synthetic_world, tmp_path):
    """--videos-per-batch N groups N videos per M_J / M_F batch, in the metadata CSV's order (as the official loaders)."""
    import shutil

    world = (
        tmp_path / "world"
    )  # the same clips, listed in reverse order: the listing, not the ids, must set the batches
    shutil.copytree(synthetic_world.root, world)
    header, *body = (world / "s4_meta_data.csv").read_text().splitlines()
    (world / "s4_meta_data.csv").write_text("\n".join([header, *reversed(body)]) + "\n")
    store = tmp_path / "reversed.h5"
    gsavl("preprocess", world, "-o", store, "--workers", "1", "--split", "test", "--no-register")
    out = tmp_path / "e"
    summary = json.loads(
        gsavl(
            "eval",
            "--dataset",
            store,
            "--checkpoint",
            checkpoint,
            "--out",
            out,
            "--segmenter",
            "region",
            "--map",
            "av",
            "--sampler",
            "prob",
            "--frames",
            "all",
            "--videos-per-batch",
            "2",
            "--json",
        ).stdout
    )
    assert summary["settings"]["clip_order"] == "dataset" and summary["settings"]["videos_per_batch"] == 2
    listed = [row[0] for row in csv.reader((world / "s4_meta_data.csv").open()) if row and row[-1] == "test"]
    assert listed != sorted(listed)
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert list(dict.fromkeys(r["clip"] for r in rows)) == listed
    masks = [
        {
            "clip": r["clip"],
            "frame": int(r["frame"]),
            "iou": float(r["iou"]),
            "mask_f": float(r["mask_f"]) if r["mask_f"] else None,
            "gt_fraction": float(r["gt_fraction"]),
        }
        for r in rows
        if r["sampler"] == "prob"
    ]
    entry = next(r for r in summary["results"] if r["sampler"] == "prob")
    assert entry["avsbench_fmeasure"] == pytest.approx(
        metrics.avsbench_from_rows(masks, 2)["avsbench_fmeasure"], abs=1e-12
    )
    assert entry["avsbench_miou"] == pytest.approx(metrics.avsbench_from_rows(masks, 2)["avsbench_miou"], abs=1e-12)
