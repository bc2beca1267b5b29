"""`gsavl localize`: one frame per clip (mask PNG and extras), or a whole video with --every / --all-frames."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gsavl_cli.choices import ClapModel, MapName, MaskChoice, SamModel
from gsavl_cli.cli.app import command
from gsavl_cli.cli.options import (
    AbstainOpt,
    AlignOpt,
    AlphaOpt,
    CascadeOpt,
    CascadeThresholdOpt,
    CheckpointOpt,
    ClapCkptOpt,
    ClapModelOpt,
    ClipSegCkptOpt,
    LabelsOpt,
    MaskChoiceOpt,
    NegativesOpt,
    ParamOpt,
    PriorCkptOpt,
    SamCkptOpt,
    SamModelOpt,
    SamplerOpt,
    SegmenterOpt,
    TopLabelsOpt,
    choose_checkpoint,
    parse_samplers,
    predictor_fields,
)
from gsavl_cli.console import info, print_json, progress
from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.commands.localize import LocalizeSettings


@command(
    epilog="Examples:\n\n  gsavl localize clip.mp4 --checkpoint best.pt --sampler prob -o mask.png\n\n"
    "  gsavl localize clip.mp4 --checkpoint best.pt --overlay overlay.png --json-file result.json\n\n"
    "  gsavl localize ./clips --checkpoint best.pt --out-dir masks/ --segmenter region\n\n"
    "  gsavl localize clip.mp4 --checkpoint best.pt --every 0.25 --video overlay.mp4 --masks masks.npz --timeline timeline.json\n\n"
    "  gsavl localize clip.mp4 --checkpoint best.pt --every 0.25 --segmenter sam2 --sam-model sam2.1_hiera_t --propagate --timeline t.json\n\n"
    "  gsavl localize clip.mp4 --map text --json   # no training: what CLAP hears, where CLIPSeg finds it"
)
def localize(
    ctx: typer.Context,
    clips: Annotated[list[Path], typer.Argument(help="Video file(s), or a folder of videos.")],
    checkpoint: CheckpointOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Mask PNG for a single clip (default: CLIP.mask.png).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder for the masks of several clips (CLIP.mask.png ...).")
    ] = None,
    time_: Annotated[
        float | None,
        typer.Option(
            "--time",
            min=0.0,
            help="Frame time in seconds, its audio window centred on it (default: the first frame with the clip-level audio, as eval).",
        ),
    ] = None,
    map_: Annotated[
        MapName | None,
        typer.Option(
            "--map",
            help="Heatmap to prompt from: av, obj, avobj; text or textobj (zero-shot, no checkpoint needed). Default: avobj, the paper's; av for a model with its own mask.",
            show_default=False,
        ),
    ] = None,
    sampler: SamplerOpt = "prob",
    param: ParamOpt = None,
    negatives: NegativesOpt = 0,
    abstain: AbstainOpt = None,
    segmenter: SegmenterOpt = None,
    sam_model: SamModelOpt = SamModel.vit_h,
    sam_checkpoint: SamCkptOpt = None,
    mask_choice: MaskChoiceOpt = MaskChoice.single,
    cascade_rounds: CascadeOpt = 1,
    cascade_threshold: CascadeThresholdOpt = 0.3,
    alpha: AlphaOpt = 0.4,
    align_corners: AlignOpt = True,
    overlay: Annotated[Path | None, typer.Option(help="PNG: frame + heatmap + prompts + mask outline.")] = None,
    heatmap: Annotated[Path | None, typer.Option(help="PNG of the heatmap (coloured).")] = None,
    heatmap_npy: Annotated[Path | None, typer.Option(help="The float heatmap [H,W] as .npy, for analysis.")] = None,
    json_file: Annotated[
        Path | None, typer.Option(help="JSON file: points, labels, mask area, score, rounds, timings.")
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            rich_help_panel="Whole videos",
            help="Localize a frame every SECONDS over the whole clip (each with its own audio window).",
        ),
    ] = None,
    all_frames: Annotated[
        bool, typer.Option(rich_help_panel="Whole videos", help="Localize every frame of the clip.")
    ] = False,
    video: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="Overlay video (frame + heatmap + prompts + mask) with the clip's audio.",
        ),
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(rich_help_panel="Whole videos", help="Masks of every processed frame: .npz of packed bits."),
    ] = None,
    mask_pngs: Annotated[
        Path | None, typer.Option(rich_help_panel="Whole videos", help="Folder for one mask PNG per processed frame.")
    ] = None,
    timeline: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="JSON timeline: per frame time, points, labels, score, mask area, rounds.",
        ),
    ] = None,
    smooth: Annotated[
        float | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="Smooth heatmaps over time: exponential moving average with this time constant in seconds (off by default).",
        ),
    ] = None,
    propagate: Annotated[
        bool,
        typer.Option(
            rich_help_panel="Whole videos",
            help="With --segmenter sam2: prompt SAM 2's video predictor on the first frame, carry the mask to the next ones, re-prompt where mask and heatmap disagree (--cascade-threshold).",
        ),
    ] = False,
    prior_checkpoint: PriorCkptOpt = None,
    labels: LabelsOpt = "avsbench-s4",
    top_labels: TopLabelsOpt = 1,
    clap_model: ClapModelOpt = ClapModel.clap_htsat_unfused,
    clap_checkpoint: ClapCkptOpt = None,
    clipseg_checkpoint: ClipSegCkptOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Find the sounding object in a clip and write its pixel mask (one frame, or the whole video with --every / --all-frames)."""
    from gsavl_cli.commands.localize import LocalizeOutputs, expand_clips, localize_clips
    from gsavl_cli.datasets import VIDEO_SUFFIXES
    from gsavl_cli.io.files import guard_outputs

    guard_outputs(
        {
            "-o": output,
            "--out-dir": out_dir,
            "--overlay": overlay,
            "--heatmap": heatmap,
            "--heatmap-npy": heatmap_npy,
            "--json-file": json_file,
            "--video": video,
            "--masks": masks,
            "--mask-pngs": mask_pngs,
            "--timeline": timeline,
        },
        {
            "checkpoint": checkpoint,
            "--sam-checkpoint": sam_checkpoint,
            "--resnet-checkpoint": prior_checkpoint,
            "--clap-checkpoint": clap_checkpoint,
            "--clipseg-checkpoint": clipseg_checkpoint,
        },
        many_inputs=expand_clips(clips),
        walked=[c for c in clips if c.is_dir()],
        video_suffixes=VIDEO_SUFFIXES,
    )
    if every is not None or all_frames or propagate or any((video, masks, mask_pngs, timeline, smooth)):
        _localize_video(clips, ctx.params)
        return
    settings = _settings(ctx.params)
    outputs = LocalizeOutputs(output, out_dir, overlay, heatmap, heatmap_npy, json_file)
    results = localize_clips(clips, settings, outputs, progress=progress)
    for item in results:
        if item["abstained"]:
            info(
                f"{item['clip']}: nothing in the frame makes the sound (listening score {item['listening']:.4g} "
                f"below the calibrated threshold); empty mask {item['mask']}"
            )
            continue
        heard = ", ".join(f"{h['label']} ({h['score']:.2f})" for h in item["heard"] or [])
        info(
            f"{item['clip']}: mask {item['mask']} ({item['mask_area']} px, {item['segmenter']} segmenter, {item['sampler']} on {item['map']})"
            + (f"; heard as {heard}" if heard else "")
        )
    if json_output:
        print_json(results if len(results) > 1 else results[0])


def _settings(params: dict[str, Any]) -> LocalizeSettings:
    """The one frame's (or every frame's) settings: checkpoint, map, sampler and the predictor options."""
    from gsavl_cli.commands.localize import LocalizeSettings

    map_ = params["map_"]
    return LocalizeSettings(
        checkpoint=choose_checkpoint(params["checkpoint"], (map_.value,) if map_ else ()),
        time=params["time_"],
        map_name=map_.value if map_ else None,
        sampler=parse_samplers(params["sampler"], params["param"])[0],
        **predictor_fields(params),
    )


def _localize_video(clips: list[Path], params: dict[str, Any]) -> None:
    """`localize --every/--all-frames`: the whole clip, streamed, through the same Predictor."""
    from gsavl_cli.commands.localize import make_predictor
    from gsavl_cli.commands.localize_video import VideoSettings, localize_video, propagating_predictor

    every, all_frames = params["every"], params["all_frames"]
    if len(clips) != 1 or clips[0].is_dir():
        raise UsageError("video mode localizes one clip", hint="pass one video file (run the command once per clip)")
    if params["time_"] is not None:
        raise UsageError(
            "--time picks one frame; video mode takes them all", hint="drop --time, or drop --every/--all-frames"
        )
    if every is not None and all_frames:
        raise UsageError("--every and --all-frames both choose the frames", hint="pass one of them")
    if every is None and not all_frames:
        raise UsageError("choose the frames of the video", hint="pass --every SECONDS or --all-frames")
    if every is not None and every <= 0:
        raise UsageError(f"--every must be > 0 s, got {every:g}")
    settings = _settings(params)
    video = VideoSettings(
        every=every,
        sampler=settings.sampler,
        seed=settings.seed,
        negatives=settings.negatives,
        mask_choice=settings.mask_choice,
        cascade_rounds=settings.cascade_rounds,
        cascade_threshold=settings.cascade_threshold,
        smooth=params["smooth"],
        video=params["video"],
        masks=params["masks"],
        mask_pngs=params["mask_pngs"],
        timeline=params["timeline"],
        propagate=params["propagate"],
    )
    video.check()
    predictor = propagating_predictor(settings) if video.propagate else make_predictor(settings)
    video.map_name = settings.map_name or predictor.default_map
    summary = localize_video(clips[0], predictor, video, progress=progress)
    written = [str(p) for p in (video.video, video.masks, video.mask_pngs, video.timeline) if p]
    info(
        f"{clips[0]}: {summary['frames']} frames at {summary['frames_per_second'] or 0:.2f} frames/s -> {', '.join(written)}"
    )
    if params["json_output"]:
        print_json(summary)
