"""A trained two-tower model: vocabularies, Paddle weights and thread-safe encoding."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from towhee_recsys._version import __version__
from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.errors import ModelError
from towhee_recsys.features import FeatureVocabularies
from towhee_recsys.model.config import ModelConfig
from towhee_recsys.model.persistence import read_model_folder, write_model_folder

logger = logging.getLogger(__name__)


class RecommenderModel:
    """User and movie encoders that share one trained Paddle two-tower network.

    Encoding holds a lock because a Paddle layer is not safe to call from several
    threads at once, and Towhee runs pipeline nodes in a thread pool.

    Attributes:
        config: architecture and training settings.
        vocabularies: feature vocabularies built from the training data.
        history: per-epoch training metrics: epoch, seconds, train_loss and val_loss
            (contrastive) or train_rmse and val_rmse (rating), val_score when scored.
        fingerprint: short hash of the saved weights and vocabularies; None until saved.
    """

    def __init__(
        self,
        config: ModelConfig,
        vocabularies: FeatureVocabularies,
        network: Any,
        history: list[dict[str, float]] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.config = config
        self.vocabularies = vocabularies
        self.network = network
        self.history = history or []
        self.fingerprint = fingerprint
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> RecommenderModel:
        # A loaded model is a shared handle, not a value: Towhee deep-copies operator
        # arguments when it builds a pipeline, and every operator must use this one.
        return self

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    @classmethod
    def create(cls, config: ModelConfig, vocabularies: FeatureVocabularies) -> RecommenderModel:
        """Build an untrained model whose layers are sized by the vocabularies."""
        from towhee_recsys.model._paddle import import_paddle

        paddle = import_paddle()

        from towhee_recsys.model.towers import TwoTowerModel

        _use_all_cores(paddle)
        paddle.seed(config.seed)
        return cls(config, vocabularies, TwoTowerModel(config, vocabularies.sizes()))

    def encode_users(self, users: Sequence[User], *, known_ids: bool = True) -> np.ndarray:
        """Return (n, dim) float32 unit vectors; `known_ids=False` ignores user ids."""
        features = self.vocabularies.encode_users(users, known_ids=known_ids)
        return self.encode_user_features(features)

    def encode_movies(self, movies: Sequence[Movie], *, known_ids: bool = True) -> np.ndarray:
        """Return (n, dim) float32 unit vectors of movies."""
        features = self.vocabularies.encode_movies(movies, known_ids=known_ids)
        return self.encode_movie_features(features)

    def encode_user_features(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Run the user tower on encoded features."""
        return self._run(self.network.user_tower, features)

    def encode_movie_features(self, features: dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
        """Run the movie tower on encoded features, `batch_size` rows at a time."""
        total = len(next(iter(features.values())))
        chunks = [
            self._run(self.network.movie_tower, {k: v[start : start + batch_size] for k, v in features.items()})
            for start in range(0, total, batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def _run(self, tower: Any, features: dict[str, np.ndarray]) -> np.ndarray:
        from towhee_recsys.model._paddle import import_paddle

        paddle = import_paddle()

        if len(next(iter(features.values()))) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock, paddle.no_grad():
            self.network.eval()
            tensors = {name: paddle.to_tensor(values) for name, values in features.items()}
            vectors = tower(**tensors).numpy().astype(np.float32, copy=False)
        if not np.all(np.isfinite(vectors)):
            raise ModelError("The model produced non-finite vectors; its weights are damaged. Retrain it.")
        return vectors

    def save(self, model_dir: str | os.PathLike) -> str:
        """Write the model folder and return its fingerprint."""
        weights = {name: tensor.numpy() for name, tensor in self.network.state_dict().items()}
        config = {
            "library_version": __version__,
            "model": self.config.to_dict(),
            "history": self.history,
        }
        self.fingerprint = write_model_folder(model_dir, config, self.vocabularies.to_json(), weights)
        logger.info("Saved model %s to %s", self.fingerprint, model_dir)
        # A rank stage fitted beside an earlier model may cover another catalog; fit it again
        # after saving (`towhee-recsys train --rank-stage` does).
        from towhee_recsys.model.ranker import remove_ranker

        remove_ranker(Path(model_dir).expanduser())
        return self.fingerprint

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> RecommenderModel:
        """Load a model folder written by `save`; raise ModelError if it is unusable."""
        document, vocabularies_json, weights = read_model_folder(model_dir)
        try:
            config = ModelConfig.from_dict(document["model"])
            vocabularies = FeatureVocabularies.from_json(vocabularies_json)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"Model folder '{model_dir}' has an invalid configuration: {error}.") from error

        model = cls.create(config, vocabularies)
        _load_weights(model.network, weights, model_dir)
        model.history = document.get("history", [])
        model.fingerprint = document["fingerprint"]
        return model


def _use_all_cores(paddle: Any) -> None:
    # Paddle's CPU kernels run on one thread unless configured otherwise. Paddle 3.3 does
    # not export the setter at the top level, so look for it in both places.
    setter = getattr(paddle, "set_num_threads", None) or getattr(paddle.base.core, "set_num_threads", None)
    if setter is not None:
        setter(os.cpu_count() or 1)


def _load_weights(network: Any, weights: dict[str, np.ndarray], model_dir: Any) -> None:
    expected = {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}
    found = {name: tuple(array.shape) for name, array in weights.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        mismatched = sorted(n for n in expected if n in found and expected[n] != found[n])
        raise ModelError(
            f"Weights in '{model_dir}' do not fit the model configuration "
            f"(missing: {missing[:3]}, wrong shape: {mismatched[:3]}). Retrain the model."
        )
    network.set_state_dict(weights)
