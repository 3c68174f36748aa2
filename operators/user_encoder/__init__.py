"""Operator user-encoder: user features to unit vectors with the user tower."""

from __future__ import annotations

import numpy as np
from towhee_recsys.operators._base import ModelOperator

from towhee_recsys.features import FeatureBatch
from towhee_recsys.validation import invalid_parameter


class UserEncoder(ModelOperator):
    """Run the user tower on a `FeatureBatch` from user-features.

    Returns a float32 unit vector of the model's dimension (256 by default) for a
    single user, or an (n, dim) matrix for a list. Safe to call from several threads:
    the model serializes its Paddle calls.

    Args:
        model: a loaded `RecommenderModel`, or
        model_dir: a model folder, loaded once per process.
    """

    name = "towhee-recsys/user-encoder"

    def run(self, features: FeatureBatch) -> np.ndarray:
        if not isinstance(features, FeatureBatch):
            raise invalid_parameter("features", "the FeatureBatch output of user-features", type(features).__name__)
        vectors = self.model.encode_user_features(features.columns)
        return vectors[0] if features.single else vectors
