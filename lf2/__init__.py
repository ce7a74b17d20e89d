"""LF2: Learning Feature Fusion for unsupervised domain adaptive person re-ID."""

__version__ = "0.1.0"
