"""Training of the two towers on explicit ratings.

The objective is the one of the reference PaddlePaddle recommender. The predicted
rating is rating_scale x cosine(user vector, movie vector), with rating_scale 5 on
MovieLens. The loss is its mean squared error against the rating, minimized with Adam
on shuffled mini-batches.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from towhee_recsys.data.dataset import Dataset, User
from towhee_recsys.errors import DatasetError
from towhee_recsys.features import UNKNOWN_INDEX, FeatureVocabularies
from towhee_recsys.model.config import ModelConfig
from towhee_recsys.model.two_tower import RecommenderModel

logger = logging.getLogger(__name__)


@dataclass
class _Tables:
    """Encoded features of each distinct user and movie, and every rating's row in them."""

    users: dict[str, np.ndarray]
    movies: dict[str, np.ndarray]
    user_rows: np.ndarray
    movie_rows: np.ndarray
    ratings: np.ndarray


def train(
    dataset: Dataset,
    config: ModelConfig | None = None,
    *,
    model_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> RecommenderModel:
    """Train a two-tower model on a dataset's ratings, and save it if `model_dir` is given.

    A `config.validation_fraction` share of ratings, drawn with `config.seed`, is held out
    and its RMSE is logged after every epoch next to the training RMSE.
    """
    config = config or ModelConfig()
    if len(dataset.ratings) == 0:
        raise DatasetError(f"Dataset {dataset.name!r} has no ratings; a model needs at least one.")
    if config.rating_scale is None:
        largest = float(np.abs(dataset.ratings.rating).max())
        config = replace(config, rating_scale=largest if largest > 0 else 1.0)

    rng = np.random.default_rng(config.seed)
    train_index, val_index = _split(len(dataset.ratings), config.validation_fraction, rng)
    vocabularies = FeatureVocabularies.build(dataset, train_index)
    tables = _encode_tables(dataset, vocabularies)
    model = RecommenderModel.create(config, vocabularies)
    logger.info(
        "Training on %d ratings (%d held out), %d users, %d movies",
        len(train_index), len(val_index), len(vocabularies.user_id.tokens), len(vocabularies.movie_id.tokens),
    )

    _fit(model, tables, train_index, val_index, rng, show_progress)
    if model_dir is not None:
        model.save(model_dir)
    return model


def _split(count: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(count)
    held_out = int(round(count * fraction))
    if held_out >= count:
        held_out = count - 1
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _encode_tables(dataset: Dataset, vocabularies: FeatureVocabularies) -> _Tables:
    ratings = dataset.ratings
    user_ids, user_rows = np.unique(ratings.user_id, return_inverse=True)
    movie_ids, movie_rows = np.unique(ratings.movie_id, return_inverse=True)

    users = [dataset.users.get(user_id) or User(user_id) for user_id in user_ids.tolist()]
    movies = []
    for movie_id in movie_ids.tolist():
        movie = dataset.movies.get(movie_id)
        if movie is None:
            raise DatasetError(f"Ratings refer to movie id {movie_id!r}, which is not in the movie catalog.")
        movies.append(movie)

    return _Tables(
        users=vocabularies.encode_users(users),
        movies=vocabularies.encode_movies(movies),
        user_rows=user_rows.reshape(-1),
        movie_rows=movie_rows.reshape(-1),
        ratings=ratings.rating.astype(np.float32),
    )


def _batch(tables: _Tables, index: np.ndarray, dropout: float, rng: np.random.Generator):
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()

    users = {name: column[tables.user_rows[index]] for name, column in tables.users.items()}
    movies = {name: column[tables.movie_rows[index]] for name, column in tables.movies.items()}
    if dropout > 0:
        users["user_id"][rng.random(len(index)) < dropout] = UNKNOWN_INDEX
        movies["movie_id"][rng.random(len(index)) < dropout] = UNKNOWN_INDEX

    to_tensor = paddle.to_tensor
    return (
        {name: to_tensor(values) for name, values in users.items()},
        {name: to_tensor(values) for name, values in movies.items()},
        to_tensor(tables.ratings[index]),
    )


def _fit(
    model: RecommenderModel,
    tables: _Tables,
    train_index: np.ndarray,
    val_index: np.ndarray,
    rng: np.random.Generator,
    show_progress: bool,
) -> None:
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()
    F = paddle.nn.functional

    config = model.config
    network = model.network
    optimizer = paddle.optimizer.Adam(
        learning_rate=config.learning_rate,
        parameters=network.parameters(),
        weight_decay=config.weight_decay or None,
    )
    steps = -(-len(train_index) // config.batch_size)

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        network.train()
        order = rng.permutation(train_index)
        squared_error = 0.0
        progress = tqdm(total=steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not show_progress)
        for step in range(steps):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            users, movies, target = _batch(tables, index, config.id_dropout, rng)
            loss = F.mse_loss(network(users, movies), target)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()

            batch_loss = float(loss)
            squared_error += batch_loss * len(index)
            if step % 50 == 0:
                progress.set_postfix(rmse=f"{batch_loss ** 0.5:.3f}")
            progress.update(1)
        progress.close()

        record = {
            "epoch": epoch,
            "train_rmse": round((squared_error / len(train_index)) ** 0.5, 5),
            "val_rmse": round(evaluate_rmse(model, tables, val_index), 5) if len(val_index) else None,
            "seconds": round(time.perf_counter() - started, 2),
        }
        model.history.append(record)
        logger.info(
            "epoch %d/%d: train RMSE %.4f, validation RMSE %s, %.1f s",
            epoch, config.epochs, record["train_rmse"], record["val_rmse"], record["seconds"],
        )


def evaluate_rmse(model: RecommenderModel, tables: _Tables, index: np.ndarray, batch_size: int = 8192) -> float:
    """Return the RMSE of rating_scale x cosine against the ratings at `index`, without dropout."""
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()

    network = model.network
    network.eval()
    squared_error = 0.0
    with paddle.no_grad():
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            users, movies, target = _batch(tables, chunk, 0.0, np.random.default_rng(0))
            squared_error += float(((network(users, movies) - target) ** 2).sum())
    return (squared_error / max(len(index), 1)) ** 0.5

