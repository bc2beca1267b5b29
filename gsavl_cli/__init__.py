"""gsavl: shape-aware sound-source localization (localizer -> prompt sampler -> SAM)."""

__version__ = "0.1.0"
