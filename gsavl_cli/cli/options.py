"""The options more than one command takes, each declared once as an `Annotated` alias, and their parsing.

A command gives the default at its own parameter (`sampler: SamplerOpt = "prob"`): Typer
takes defaults only there. The global options (`--device`, `--seed`, `-v`, `-q`) are the
app callback's; `AFTER_SUBCOMMAND` is the same four again, hidden, for every subcommand,
so that README's "before or after the subcommand" holds without rewriting argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import copy
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer

from gsavl_cli.choices import ClapModel, MaskChoice, SamModel, SegmenterName
from gsavl_cli.console import OPTIONS, info
from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.predictor import SamplerChoice

# ---------------------------------------------------------------- global options

DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for every random choice (sampling, shuffling, init).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug detail.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]


def _hidden(alias: Any) -> Any:
    """`alias` as an option a subcommand accepts but does not list (the app's help documents it), None unless given."""
    kind, option = get_args(alias)
    option = copy(option)
    option.hidden = True
    return Annotated[kind | None, option]


AFTER_SUBCOMMAND: dict[str, Any] = {
    "device": _hidden(DeviceOpt),
    "seed": _hidden(SeedOpt),
    "verbose": _hidden(VerboseOpt),
    "quiet": _hidden(QuietOpt),
}
"""The global options as every subcommand takes them: `gsavl localize clip.mp4 -q` (GlobalOptions' field names)."""

# ---------------------------------------------------------------- data

SubsetOpt = Annotated[
    str | None,
    typer.Option(
        help="Only these clips: a file of ids, or vggss_10k, vggss_144k, vggss_heard_test, vggss_unheard_test."
    ),
]
SkipBadOpt = Annotated[
    bool, typer.Option(help="Verify the store first and leave out the clips whose bytes are damaged (each is named).")
]

# ---------------------------------------------------------------- the predictor: eval, localize (one frame or video)

CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        help="Trained checkpoint (best.pt); default: the most recent `gsavl train` run. Not needed for --map obj, text or textobj.",
        show_default=False,
    ),
]
SamplerOpt = Annotated[str, typer.Option("--sampler", help="Prompt sampler(s), comma-separated; see `gsavl samplers`.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="Sampler parameter KEY=VALUE or SAMPLER.KEY=VALUE (repeatable).")
]
SegmenterOpt = Annotated[
    SegmenterName | None,
    typer.Option(
        help="sam (Segment Anything); sam2 (Segment Anything 2.1; needs the optional sam2 extra); region: the heatmap region around the prompts (no weights needed); model: an SSL2AVS checkpoint's own mask. Default: the model's own mask if it has one, else sam.",
        show_default=False,
    ),
]
SamModelOpt = Annotated[
    SamModel,
    typer.Option(
        help="SAM size: vit_h (paper), vit_l or vit_b (tiny: a test model from --sam-checkpoint); with --segmenter sam2: sam2.1_hiera_t, _s, _b+ or _l."
    ),
]
SamCkptOpt = Annotated[
    Path | None,
    typer.Option(
        help="SAM weights file; SAM 2: the folder of config.json + model.safetensors (else the cache, else download)."
    ),
]
MaskChoiceOpt = Annotated[
    MaskChoice, typer.Option(help="single (paper), score (SAM's predicted IoU) or heatmap (best agreement).")
]
CascadeOpt = Annotated[int, typer.Option(min=1, help="Cascade refinement rounds (1 = off).")]
CascadeThresholdOpt = Annotated[
    float, typer.Option(help="Cascade: re-prompt while mask/heatmap agreement is below this.")
]
AbstainOpt = Annotated[
    bool | None,
    typer.Option(
        "--abstain/--no-abstain",
        help="Answer 'nothing here makes the sound' (no prompts, empty mask) when the listening score is below the "
        "threshold `gsavl calibrate` stored in the checkpoint. Default: localize abstains when the checkpoint has "
        "one; eval does not (the papers' protocol).",
        show_default=False,
    ),
]
NegativesOpt = Annotated[int, typer.Option(min=0, help="Negative prompts from the coldest heatmap region.")]
AlphaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the audio-visual map in avobj.")]
AlignOpt = Annotated[
    bool,
    typer.Option(
        "--align-corners/--no-align-corners",
        help="Upsample the 7x7 maps with align_corners=True (the original GSAVL's convention).",
    ),
]
PriorCkptOpt = Annotated[
    Path | None,
    typer.Option(
        "--resnet-checkpoint", help="ImageNet ResNet-18 weights for the object prior (else cache or download)."
    ),
]

ZEROSHOT_PANEL = "Zero-shot maps (--map text, textobj)"
LabelsOpt = Annotated[
    str,
    typer.Option(
        rich_help_panel=ZEROSHOT_PANEL,
        help="What CLAP may hear: avsbench-s4 (its 23 categories), vggsound (its 309 classes) or a FILE of labels, one per line (# comments, blank lines ignored).",
    ),
]
TopLabelsOpt = Annotated[
    int,
    typer.Option(
        min=1, rich_help_panel=ZEROSHOT_PANEL, help="Ground the K best labels, their maps weighted by CLAP's scores."
    ),
]
ClapModelOpt = Annotated[
    ClapModel, typer.Option(rich_help_panel=ZEROSHOT_PANEL, help="The CLAP model that hears what sounds.")
]
ClapCkptOpt = Annotated[
    Path | None,
    typer.Option(
        rich_help_panel=ZEROSHOT_PANEL,
        help="CLAP folder (config.json, model.safetensors and its processor's files; else the cache, else download).",
    ),
]
ClipSegCkptOpt = Annotated[
    Path | None,
    typer.Option(
        rich_help_panel=ZEROSHOT_PANEL,
        help="CLIPSeg folder (config.json, model.safetensors and its processor's files; else the cache, else download).",
    ),
]


def predictor_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `EvalSettings` and `LocalizeSettings` share, from a command's parameters (`ctx.params`).

    The predictor options above are one group: a command that declares them passes them on
    through this, so the group's names are read in one place.
    """
    from gsavl_cli.console import resolve_device
    from gsavl_cli.model.zeroshot import ZeroShotSettings

    segmenter = params["segmenter"]
    zeroshot = ZeroShotSettings(
        clap_model=params["clap_model"].value,
        clap_checkpoint=params["clap_checkpoint"],
        clipseg_checkpoint=params["clipseg_checkpoint"],
        labels=params["labels"],
        top_labels=params["top_labels"],
    )
    if zeroshot.top_labels > len(zeroshot.label_names()):  # a bad label file stops here, before any work
        raise UsageError(f"--top-labels {zeroshot.top_labels} is more than the {len(zeroshot.label_names())} labels")
    return {
        "segmenter": segmenter.value if segmenter else None,
        "sam_model": params["sam_model"].value,
        "sam_checkpoint": params["sam_checkpoint"],
        "mask_choice": params["mask_choice"].value,
        "cascade_rounds": params["cascade_rounds"],
        "cascade_threshold": params["cascade_threshold"],
        "negatives": params["negatives"],
        "alpha": params["alpha"],
        "align_corners": params["align_corners"],
        "resnet_checkpoint": params["prior_checkpoint"],
        "abstain": params["abstain"],
        "device": resolve_device(),
        "seed": OPTIONS.seed,
        "zeroshot": zeroshot,
    }


def parse_samplers(text: str, params: list[str] | None) -> list[SamplerChoice]:
    """`--sampler a,b` with `--param KEY=VALUE` / `--param SAMPLER.KEY=VALUE`, each parameter to the samplers that take it."""
    from gsavl_cli.predictor import SamplerChoice
    from gsavl_cli.samplers import get_sampler

    names = [n.strip() for n in text.split(",") if n.strip()]
    parsed: dict[str, str] = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param needs KEY=VALUE, got {item!r}", hint="e.g. --param n=5 or --param prob.n=5")
        parsed[key.strip()] = value.strip()
    choices = []
    for name in names:
        info_ = get_sampler(name)
        own = {}
        for key, value in parsed.items():
            scope, _, bare = key.rpartition(".")
            if (scope in ("", name)) and bare in info_.params:
                own[bare] = value
        choices.append(SamplerChoice(name, own))
    unused = [k for k in parsed if not any(k.rpartition(".")[2] in get_sampler(c.name).params for c in choices)]
    if unused:
        raise UsageError(f"no chosen sampler takes parameter(s) {', '.join(unused)}", hint="see `gsavl samplers`")
    return choices


def parse_maps(text: str) -> tuple[str, ...]:
    """`--map av,avobj`, checked against the model's map names."""
    from gsavl_cli.model import MAP_NAMES

    maps = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in maps if m not in MAP_NAMES]
    if unknown or not maps:
        raise UsageError(f"unknown map(s): {', '.join(unknown) or text!r}", hint=f"choose from {', '.join(MAP_NAMES)}")
    return maps


def choose_checkpoint(given: Path | None, maps: tuple[str, ...]) -> Path | None:
    """--checkpoint, else nothing for training-free maps alone (obj, text, textobj), else the latest `gsavl train` run (said so)."""
    from gsavl_cli.home import choose_checkpoint as choose

    path, run = choose(given, maps)
    if run is not None:
        info(
            f"using the most recent trained model: [bold]{path}[/] ({run.model} on {run.dataset}, {run.when}); "
            "--checkpoint chooses another"
        )
    elif path is None:
        info(f"no checkpoint: training-free map(s) {', '.join(maps)}")
    return path
