"""Hyperparameters of the two-tower model and its training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from towhee_recsys.validation import check_fraction, check_positive_int, invalid_parameter


@dataclass
class ModelConfig:
    """Architecture and training settings, saved in the model folder's config.json.

    Args:
        embedding_dim: size of the user and movie vectors (the Milvus vector dimension).
        id_dim: embedding size of user and movie ids.
        feature_dim: embedding size of demographics, genres and years.
        title_dim: embedding size of title words.
        hidden_dim: width of a hidden ReLU layer in each tower; 0 (the default) means one
            fully connected tanh layer from the embeddings to the vector, as in the
            reference PaddlePaddle recommender, which trains about three times faster on CPU.
        epochs: passes over the training ratings.
        batch_size: ratings per optimizer step.
        learning_rate: Adam step size.
        weight_decay: L2 penalty on all weights.
        id_dropout: probability that a training example's user id or movie id is
            replaced by the unknown index, so demographics and content alone yield
            useful vectors for new users and movies.
        validation_fraction: share of ratings held out to report RMSE per epoch.
        seed: seed of the split, the initialization, the batch order and the dropout.
        rating_scale: the predicted rating is rating_scale x cosine; None (the default)
            takes the largest absolute rating of the training data, which is 5 on
            MovieLens as in the reference model.
    """

    embedding_dim: int = 256
    id_dim: int = 32
    feature_dim: int = 16
    title_dim: int = 32
    hidden_dim: int = 0
    epochs: int = 5
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    id_dropout: float = 0.1
    validation_fraction: float = 0.1
    seed: int = 42
    rating_scale: float | None = None

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "id_dim", "feature_dim", "title_dim"):
            check_positive_int(name, getattr(self, name))
        if self.hidden_dim != 0:
            check_positive_int("hidden_dim", self.hidden_dim)
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_fraction("id_dropout", self.id_dropout)
        check_fraction("validation_fraction", self.validation_fraction)
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate < 1:
            raise invalid_parameter("learning_rate", "a number in (0, 1)", self.learning_rate)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise invalid_parameter("weight_decay", "a number >= 0", self.weight_decay)
        if self.rating_scale is not None and (
            not isinstance(self.rating_scale, (int, float)) or not self.rating_scale > 0
        ):
            raise invalid_parameter("rating_scale", "a number > 0 or None", self.rating_scale)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise invalid_parameter("seed", "an integer", self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise invalid_parameter("model config", f"keys among {sorted(known)}", unknown)
        return cls(**data)
