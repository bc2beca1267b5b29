"""`gsavl train`: the localizer (self-supervised) or SSL2AVS (supervised on masks), with a progress bar per epoch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gsavl_cli.cli.app import command
from gsavl_cli.cli.inspect import skip_damaged
from gsavl_cli.cli.options import SkipBadOpt, SubsetOpt
from gsavl_cli.console import OPTIONS, err, info, print_json, progress, rate, warning_text
from gsavl_cli.errors import UsageError, WeightsError


@command(
    epilog="Examples:\n\n  gsavl train --dataset vggsound10k --val vggss.h5 --out runs/gsavl\n\n"
    "  gsavl train --dataset s4.h5 --model ezvsl --epochs 10 --batch-size 32\n\n"
    "  gsavl train --dataset s4.h5 --model ssl2avs-pvt --out runs/ssl2avs-s4\n\n"
    "  torchrun --nproc-per-node 4 -m gsavl_cli train --dataset vggsound144k --out runs/big"
)
def train(
    dataset: Annotated[
        str, typer.Option(help="An HDF5 file from `gsavl preprocess`, or vggsound10k, vggsound144k, avsbench-s4.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Run folder for best.pt, last.pt, metrics.jsonl, config.json.")
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(
            help="Annotated HDF5 for validation after every epoch (localizer: cIoU picks best.pt; ssl2avs: mask mIoU, default the data file's own val, else test, split)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="Preset: gsavl (VGGish + cosine) or ezvsl (ResNet-18 audio + dot), self-supervised; or SSL2AVS, supervised on masks: ssl2avs-r50, ssl2avs-r50-plus (no stem max-pool), ssl2avs-pvt (PVT-v2-b5), ssl2avs-tiny (small, for CPUs)."
        ),
    ] = "gsavl",
    audio_encoder: Annotated[str | None, typer.Option(help="Override the preset: vggish or resnet18.")] = None,
    similarity: Annotated[str | None, typer.Option(help="Override the preset: cosine or dot.")] = None,
    tau: Annotated[float | None, typer.Option(help="Contrastive temperature (paper: 0.03).")] = None,
    beta: Annotated[float | None, typer.Option(help="Weight of the global-alignment loss (0 = off).")] = None,
    freeze_audio: Annotated[
        bool | None,
        typer.Option(
            "--freeze-audio/--no-freeze-audio",
            help="Keep the pretrained VGGish weights fixed (default: the preset's; off for gsavl, on for ssl2avs).",
        ),
    ] = None,
    freeze_image: Annotated[
        bool | None,
        typer.Option(
            "--freeze-image/--no-freeze-image",
            help="Keep the image trunk fixed; only its 1x1 projection trains (not in the paper; with --identity-init, the demo's recipe).",
        ),
    ] = None,
    standardize_audio: Annotated[
        bool | None,
        typer.Option(
            "--standardize-audio/--no-standardize-audio",
            help="BatchNorm between the audio trunk and its projection (not in the paper; makes a random VGGish usable).",
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Square frame size the model sees (default: the preset's, 224; ssl2avs also 512)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (paper: 20 VGGSound, 10 AVSBench; ssl2avs: 30 S4, 60 MS3).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size over all processes (paper: 128 VGGSound, 32 AVSBench; ssl2avs: 4 clips)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate (default: 1e-4 with Adam for the localizer, 2e-5 with AdamW for ssl2avs)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the data file to train on.")] = "train",
    val_split: Annotated[
        str | None,
        typer.Option(help="Split of --val to validate on (default: test, else val; ssl2avs: val, else test)."),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs without a better validation score (cIoU; ssl2avs: mIoU)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from OUT/last.pt (optimizer, epoch and RNG included).")
    ] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    pretrained: Annotated[
        bool,
        typer.Option(help="Start from ImageNet ResNet-18 and AudioSet VGGish weights (--no-pretrained: random init)."),
    ] = True,
    identity_init: Annotated[
        bool,
        typer.Option(
            help="With --no-pretrained: identity (Dirac) image encoder, a locality-preserving stand-in for ImageNet weights offline."
        ),
    ] = False,
    vggish_checkpoint: Annotated[
        Path | None, typer.Option(help="VGGish weights file (else cache or download).")
    ] = None,
    resnet_checkpoint: Annotated[
        Path | None, typer.Option(help="ImageNet ResNet-18 weights file (else cache or download).")
    ] = None,
    backbone_checkpoint: Annotated[
        Path | None,
        typer.Option(help="ssl2avs: ImageNet ResNet-50 or PVT-v2-b5 weights file (else cache or download)."),
    ] = None,
    frames: Annotated[
        str,
        typer.Option(
            help="ssl2avs: feed every frame of a clip (all, as AVSegFormer) or only the annotated ones (annotated: S4 trains 5x faster)."
        ),
    ] = "all",
    augment: Annotated[
        bool,
        typer.Option(
            help="ssl2avs: random horizontal flip and crop of each training clip (not the paper's protocol; for small data)."
        ),
    ] = False,
    negative_audio: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.95,
            help="ssl2avs: share of training clips that hear negative audio (silence, noise or another category's sound) "
            "with the empty mask as target, so the model learns to listen (AVSBench-Robust's balanced training). "
            "Default 0.5; 0 trains as the paper did.",
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="At most this many steps per epoch (smoke tests, benchmarks).")
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            help="Write OUT/last.pt every N epochs and after the last (best.pt: whenever validation improves)."
        ),
    ] = 1,
    subset: SubsetOpt = None,
    skip_bad: SkipBadOpt = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the checkpoint path and every epoch's log as JSON on stdout.")
    ] = False,
) -> None:
    """Train the audio-visual localizer, self-supervised (no labels needed), or SSL2AVS, supervised on masks."""
    from gsavl_cli.commands.train import TrainConfig
    from gsavl_cli.commands.train import train as run_training
    from gsavl_cli.commands.train_presets import default_run_folder, default_subset, resolve_preset
    from gsavl_cli.console import resolve_device
    from gsavl_cli.datasets import resolve_dataset

    data = resolve_dataset(dataset)
    if not subset:  # a named dataset's published list, when it can be had
        try:
            subset = default_subset(dataset, progress=not OPTIONS.quiet)
        except WeightsError as exc:
            info(f"[yellow]note:[/] {exc}; training on every clip of the file (pass --subset to choose)")
            subset = None
    preset = resolve_preset(
        dataset,
        data,
        model,
        {
            "audio_encoder": audio_encoder,
            "similarity": similarity,
            "tau": tau,
            "beta": beta,
            "freeze_audio": freeze_audio,
            "image_size": image_size,
            "freeze_image": freeze_image,
            "standardize_audio": standardize_audio,
        },
    )
    cfg = TrainConfig(
        data=data,
        out=out or default_run_folder(dataset, data),
        model=preset.model,
        val=val,
        split=split,
        val_split=val_split,
        epochs=epochs or preset.epochs,
        batch_size=batch_size or preset.batch_size,
        lr=lr,
        seed=OPTIONS.seed,
        workers=workers,
        patience=patience,
        resume=resume,
        device=resolve_device(),
        pretrained=pretrained,
        vggish_checkpoint=vggish_checkpoint,
        resnet_checkpoint=resnet_checkpoint,
        max_steps=max_steps,
        subset=subset,
        identity_init=identity_init,
        backbone_checkpoint=backbone_checkpoint,
        frames=frames,
        augment=augment,
        negative_audio=negative_audio,
        checkpoint_every=checkpoint_every,
        exclude=skip_damaged(data, val) if skip_bad else (),
    )
    from gsavl_cli.io.files import guard_outputs

    guard_outputs(
        {
            "--out": cfg.out,
            **{f"--out {name}": cfg.out / name for name in ("best.pt", "last.pt", "config.json", "metrics.jsonl")},
        },
        {
            "data file": data,
            "--val file": val,
            "--vggish-checkpoint": vggish_checkpoint,
            "--resnet-checkpoint": resnet_checkpoint,
            "--backbone-checkpoint": backbone_checkpoint,
        },
    )
    if not pretrained:
        info("[yellow]note:[/] --no-pretrained: encoders start from random weights")
    if val is not None and not val.exists():
        raise UsageError(f"no such validation file: {val}")
    logs = []
    with progress() as bar:

        def step_factory(epoch: int, total: int):
            task = bar.add_task(f"epoch {epoch}/{cfg.epochs}", total=total, rate="")
            start = time.perf_counter()
            seen = [0]

            def on_step(n: int, loss: float) -> None:
                seen[0] += n
                bar.update(
                    task, advance=1, rate=f"loss {loss:.4f} · {rate(seen[0], time.perf_counter() - start, 'samples')}"
                )

            return on_step

        warned: set[str] = set()  # each kind of collapse once per run

        def on_epoch(log) -> None:
            logs.append(log)
            val_text = (
                ""
                if log.val is None
                else f" · {preset.family.describe_validation(log.val)}{' (best)' if log.best else ''}"
            )
            info(f"epoch {log.epoch}: loss {log.loss:.4f} · {log.samples_per_s:.1f} samples/s{val_text}")
            if log.collapse is not None and log.collapse.kind not in warned:
                warned.add(log.collapse.kind)
                err.print(warning_text(f"epoch {log.collapse.epoch}: {log.collapse.message}", log.collapse.hint))

        checkpoint = run_training(cfg, on_epoch=on_epoch, on_step_factory=step_factory)
    from gsavl_cli.home import record_run

    record_run(checkpoint, dataset, model, preset.family.name)
    info(f"checkpoint: [bold]{checkpoint}[/] (`gsavl localize` and `gsavl eval` use it when no --checkpoint is given)")
    if json_output:
        from dataclasses import asdict

        print_json({"checkpoint": str(checkpoint), "epochs": [asdict(x) for x in logs]})
