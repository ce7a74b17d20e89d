"""Retrieval evaluation: ranking metrics, k-reciprocal re-ranking, feature extraction.

Only the NumPy/torch-light metric entry points are imported here; ``lf2.eval.rerank``
and ``lf2.eval.features`` are imported by name where needed.
"""

from lf2.eval.ranking import evaluate_features, evaluate_ranking, pairwise_distance

__all__ = ["evaluate_features", "evaluate_ranking", "pairwise_distance"]
