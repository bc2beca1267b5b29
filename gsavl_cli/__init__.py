"""gsavl: shape-aware sound-source localization (localizer -> prompt sampler -> SAM).

`from gsavl_cli import Predictor` gives the one prediction path (see `gsavl_cli.predictor`);
it is imported lazily so that `gsavl --help` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = ["ClipInput", "Prediction", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Predictor", "Prediction", "ClipInput"):
        from gsavl_cli import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'gsavl_cli' has no attribute {name!r}")
