"""THE model package, split like segment-anything's `modeling/`.

- `config`: configurations and the preset registry;
- `encoders`: ResNet-18 trunk, VGGish and spectrogram audio encoders, initialisation;
- `localizer`: the audio-visual localizer and its MIL contrastive loss;
- `prior`: the frozen object prior;
- `heatmap`: coarse maps -> normalised heatmaps at the frame's size;
- `family`: one registered `ModelFamily` object per model family (config, build, training
  recipe, inference adapter, checkpoint recognition); `localizer_family` and
  `ssl2avs/family` register the built-in ones;
- `checkpoint`: save / load for every family, and import of the original formats.
"""

# the built-in families, registered on import in this order
# isort: off
import gsavl_cli.model.localizer_family
import gsavl_cli.model.ssl2avs  # noqa: F401  (also registers the ssl2avs presets)

# isort: on
from gsavl_cli.model.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from gsavl_cli.model.config import (
    EZVSL_SECONDS,
    PRESETS,
    ModelConfig,
    config_from_preset,
    list_presets,
    register_preset,
)
from gsavl_cli.model.encoders import identity_init
from gsavl_cli.model.family import (
    ModelFamily,
    Recipe,
    family_for,
    get_family,
    list_families,
    register_family,
    unregister_family,
)
from gsavl_cli.model.heatmap import (
    ALIGN_CORNERS,
    MAP_NAMES,
    PAPER_MAPS,
    TRAINING_FREE_MAPS,
    coarse_maps,
    full_maps,
    heatmaps,
    normalise_map,
)
from gsavl_cli.model.localizer import Localizer, build_localizer, mil_contrastive_loss
from gsavl_cli.model.prior import ObjectPrior, build_object_prior

__all__ = [
    "ALIGN_CORNERS",
    "EZVSL_SECONDS",
    "MAP_NAMES",
    "PAPER_MAPS",
    "PRESETS",
    "TRAINING_FREE_MAPS",
    "LoadedCheckpoint",
    "Localizer",
    "ModelConfig",
    "ModelFamily",
    "ObjectPrior",
    "Recipe",
    "build_localizer",
    "build_object_prior",
    "coarse_maps",
    "config_from_preset",
    "family_for",
    "full_maps",
    "get_family",
    "heatmaps",
    "identity_init",
    "list_families",
    "list_presets",
    "load_checkpoint",
    "mil_contrastive_loss",
    "normalise_map",
    "register_family",
    "register_preset",
    "save_checkpoint",
    "unregister_family",
]
