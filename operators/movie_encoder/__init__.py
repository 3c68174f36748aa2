"""Operator movie-encoder: movie features to unit vectors with the movie tower."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from towhee_recsys.operators._base import ModelOperator

from towhee_recsys.features import FeatureBatch
from towhee_recsys.validation import check_positive_int, invalid_parameter


class MovieEncoder(ModelOperator):
    """Run the movie tower on a `FeatureBatch`, `batch_size` movies per Paddle call.

    Returns an (n, dim) float32 matrix of unit vectors, or one vector for a single movie.

    Args:
        model: a loaded `RecommenderModel`, or
        model_dir: a model folder, loaded once per process.
        batch_size: movies per forward pass (default 4096).
    """

    name = "towhee-recsys/movie-encoder"

    def __init__(self, model: Any = None, model_dir: str | os.PathLike | None = None, batch_size: int = 4096) -> None:
        super().__init__(model=model, model_dir=model_dir)
        self.batch_size = check_positive_int("batch_size", batch_size)

    def run(self, features: FeatureBatch) -> np.ndarray:
        if not isinstance(features, FeatureBatch):
            raise invalid_parameter("features", "the FeatureBatch output of movie-features", type(features).__name__)
        vectors = self.model.encode_movie_features(features.columns, batch_size=self.batch_size)
        return vectors[0] if features.single else vectors
