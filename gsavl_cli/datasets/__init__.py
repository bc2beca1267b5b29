"""Dataset layouts: one registered `Dataset` object per layout, one module per corpus.

`base` holds `ClipSource`, `Dataset` and the registry; `discovery` the folder walk,
clip-id lists, `discover` and the named datasets; `folder`, `avsbench_s4`,
`avsbench_ms3`, `avsbench_semantic` and `vggsound` register the built-in layouts (in
that order, the order `detect_layout` asks them in). Every command asks the object
registered under a store's `settings["layout"]` (`store_dataset`) for its protocol.
"""

from gsavl_cli.datasets.base import (
    LOCALIZER_BATCH,
    LOCALIZER_EPOCHS,
    SPLITS,
    ClipSource,
    Dataset,
    NamedDataset,
    data_root,
    get_dataset,
    list_datasets,
    read_metadata_csv,
    register_dataset,
    unregister_dataset,
    wanted,
)
from gsavl_cli.datasets.discovery import (
    AUDIO_SUFFIXES,
    FALLBACK_LAYOUT,
    VIDEO_SUFFIXES,
    Ignored,
    detect_layout,
    discover,
    filter_subset,
    list_videos,
    named_datasets,
    read_subset,
    resolve_dataset,
    resolve_subset,
    scan_folder,
    store_dataset,
    store_name,
    train_preset,
    vggsound_key,
)

# the built-in layouts, registered on import in this order (the order detect_layout asks them in)
# isort: off
from gsavl_cli.datasets import folder  # noqa: F401
from gsavl_cli.datasets import avsbench_s4  # noqa: F401
from gsavl_cli.datasets import avsbench_ms3  # noqa: F401
from gsavl_cli.datasets import avsbench_semantic  # noqa: F401
from gsavl_cli.datasets import vggsound  # noqa: F401

# isort: on
from gsavl_cli.datasets.avsbench_semantic import SUBSETS as SEMANTIC_SUBSETS
from gsavl_cli.datasets.vggsound import read_vggss_annotations

__all__ = [
    "AUDIO_SUFFIXES",
    "FALLBACK_LAYOUT",
    "LOCALIZER_BATCH",
    "LOCALIZER_EPOCHS",
    "SEMANTIC_SUBSETS",
    "SPLITS",
    "VIDEO_SUFFIXES",
    "ClipSource",
    "Dataset",
    "Ignored",
    "NamedDataset",
    "data_root",
    "detect_layout",
    "discover",
    "filter_subset",
    "get_dataset",
    "list_datasets",
    "list_videos",
    "named_datasets",
    "read_metadata_csv",
    "read_subset",
    "read_vggss_annotations",
    "register_dataset",
    "resolve_dataset",
    "resolve_subset",
    "scan_folder",
    "store_dataset",
    "store_name",
    "train_preset",
    "unregister_dataset",
    "vggsound_key",
    "wanted",
]
