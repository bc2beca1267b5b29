"""SSL2AVS (seed 004): supervised, localization-guided audio-visual segmentation on AVSegFormer.

Importing this package registers the ``ssl2avs`` model family (`family.SSL2AVSFamily`)
and the presets ``ssl2avs-r50``, ``ssl2avs-r50-plus``, ``ssl2avs-pvt`` and ``ssl2avs-tiny``.

    model = build_ssl2avs(config_from_preset("ssl2avs-r50"))
    out = model.predict(images, audio)   # mask_logits [B,H,W], heatmap [B,h,w]
"""

from gsavl_cli.model.ssl2avs.config import SSL2AVSConfig
from gsavl_cli.model.ssl2avs.family import SSL2AVSFamily
from gsavl_cli.model.ssl2avs.model import SSL2AVS, build_ssl2avs

__all__ = ["SSL2AVS", "SSL2AVSConfig", "SSL2AVSFamily", "build_ssl2avs"]
