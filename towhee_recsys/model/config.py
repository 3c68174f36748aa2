"""Hyperparameters of the two-tower model and its training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from towhee_recsys.validation import check_fraction, check_positive_int, invalid_parameter

OBJECTIVES = ("rating", "contrastive")
# Chosen on validation data: the contrastive loss takes few, large steps (one per 128
# users), the rating loss many small ones (one per 1,024 ratings).
DEFAULT_LEARNING_RATES = {"contrastive": 0.01, "rating": 0.002}


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
        objective: "rating" regresses ratings as the reference recommender does;
            "contrastive" trains retrieval: each positive (user, movie) pair is scored
            against the other movies of its batch with a softmax at `temperature`.
        epochs: passes over the training ratings.
        batch_size: ratings per optimizer step of the rating objective.
        users_per_batch: users per optimizer step of the contrastive objective; a batch
            contains all positive pairs of its users, and the distinct movies of those pairs
            are the candidates every pair is scored against (in-batch negatives).
        temperature: softmax temperature of the contrastive objective (cosines are divided
            by it).
        popularity_correction: weight of log(movie frequency) subtracted from contrastive
            logits; in-batch negatives over-sample popular movies, and 1.0 removes that
            bias exactly (the logQ correction), 0 keeps it.
        positive_rating: contrastive training counts a rating >= this value as a
            positive pair; None (the default) takes the middle of the training ratings'
            range, 3 on MovieLens' 1-5 stars, as the RecBole benchmarks do. To count every
            rating, pass the lowest rating.
        patience: stop after this many epochs without a better validation score (0
            never stops early). The score is the `epoch_callback`'s given to `train`, or
            else minus the validation loss (contrastive) or RMSE (rating). The best
            epoch's weights are kept either way.
        learning_rate: Adam step size; None (the default) takes 0.01 for the contrastive
            objective and 0.002 for the rating objective.
        learning_rate_decay: the step size is multiplied by this after every epoch.
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
    objective: str = "contrastive"
    epochs: int = 10
    batch_size: int = 1024
    users_per_batch: int = 128
    temperature: float = 0.1
    popularity_correction: float = 1.0
    positive_rating: float | None = None
    patience: int = 0
    learning_rate: float | None = None
    learning_rate_decay: float = 1.0
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
        check_positive_int("users_per_batch", self.users_per_batch)
        if self.objective not in OBJECTIVES:
            raise invalid_parameter("objective", f"one of {', '.join(OBJECTIVES)}", self.objective)
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature <= 10:
            raise invalid_parameter("temperature", "a number in (0, 10]", self.temperature)
        if not isinstance(self.popularity_correction, (int, float)) or not 0 <= self.popularity_correction <= 2:
            raise invalid_parameter("popularity_correction", "a number in [0, 2]", self.popularity_correction)
        if self.positive_rating is not None and not isinstance(self.positive_rating, (int, float)):
            raise invalid_parameter("positive_rating", "a number or None", self.positive_rating)
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise invalid_parameter("patience", "an integer >= 0", self.patience)
        check_fraction("id_dropout", self.id_dropout)
        check_fraction("validation_fraction", self.validation_fraction)
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES.get(self.objective, 0.002)
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate < 1:
            raise invalid_parameter("learning_rate", "a number in (0, 1)", self.learning_rate)
        if not isinstance(self.learning_rate_decay, (int, float)) or not 0 < self.learning_rate_decay <= 1:
            raise invalid_parameter("learning_rate_decay", "a number in (0, 1]", self.learning_rate_decay)
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
        # Folders saved before the contrastive objective existed hold rating-trained models.
        return cls(**{"objective": "rating", **data})
