"""SSL2AVS (seed 004): supervised, localization-guided audio-visual segmentation on AVSegFormer.

Importing this package registers the ``ssl2avs`` checkpoint family and the presets
``ssl2avs-r50``, ``ssl2avs-r50-plus``, ``ssl2avs-pvt`` and ``ssl2avs-tiny``.

    model = build_ssl2avs(config_from_preset("ssl2avs-r50"))
    out = model.predict(images, audio)   # mask_logits [B,H,W], heatmap [B,h,w]
"""

from gsavl_cli.model.checkpoint import register_family
from gsavl_cli.model.ssl2avs.config import SSL2AVSConfig
from gsavl_cli.model.ssl2avs.model import SSL2AVS, build_ssl2avs

register_family("ssl2avs", SSL2AVSConfig.from_dict, SSL2AVS)

__all__ = ["SSL2AVS", "SSL2AVSConfig", "build_ssl2avs"]
