"""Training of the two towers, by rating regression or by a contrastive retrieval loss.

The "rating" objective is the one of the reference PaddlePaddle recommender. The
predicted rating is rating_scale x cosine(user vector, movie vector), with rating_scale 5
on MovieLens, and the loss is its mean squared error against the rating.

The "contrastive" objective trains the vectors for retrieval. A batch is a set of users
with all of their positive pairs; the distinct movies of those pairs are the candidates.
Each pair's loss is the softmax cross-entropy of its movie among the candidates, with
cosines divided by a temperature and, because popular movies turn up as candidates more
often than rare ones, log(movie frequency) subtracted from every logit (logQ correction).

Both objectives run each distinct user and movie of a batch through its tower once and
gather the vectors per pair, which is what makes an epoch cheap on a CPU.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from towhee_recsys.data.dataset import Dataset, User
from towhee_recsys.errors import DatasetError
from towhee_recsys.features import UNKNOWN_INDEX, FeatureVocabularies
from towhee_recsys.model.config import ModelConfig
from towhee_recsys.model.two_tower import RecommenderModel

logger = logging.getLogger(__name__)

EpochCallback = Callable[[RecommenderModel, dict], "float | None"]


@dataclass
class _Tables:
    """Encoded features of each distinct user and movie, and every rating's row in them."""

    users: dict[str, np.ndarray]
    movies: dict[str, np.ndarray]
    user_rows: np.ndarray
    movie_rows: np.ndarray
    ratings: np.ndarray

    @property
    def user_count(self) -> int:
        return len(self.users["user_id"])

    @property
    def movie_count(self) -> int:
        return len(self.movies["movie_id"])


def train(
    dataset: Dataset,
    config: ModelConfig | None = None,
    *,
    model_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
    epoch_callback: EpochCallback | None = None,
) -> RecommenderModel:
    """Train a two-tower model on a dataset's ratings, and save it if `model_dir` is given.

    A `config.validation_fraction` share of ratings, drawn with `config.seed`, is held out
    and scored after every epoch (RMSE for the rating objective, the contrastive loss over
    the whole catalog for the contrastive one).

    Args:
        epoch_callback: called after each epoch with the model and the epoch's record;
            it may return a validation score where higher is better (an evaluation
            protocol's NDCG, say). Without it the score is minus the held-out loss or
            RMSE. The weights of the best-scoring epoch are kept, and training stops
            after `config.patience` epochs without improvement (never if it is 0).
    """
    config = config or ModelConfig()
    if len(dataset.ratings) == 0:
        raise DatasetError(f"Dataset {dataset.name!r} has no ratings; a model needs at least one.")
    if config.rating_scale is None:
        largest = float(np.abs(dataset.ratings.rating).max())
        config = replace(config, rating_scale=largest if largest > 0 else 1.0)
    if config.objective == "contrastive" and config.positive_rating is None:
        low, high = float(dataset.ratings.rating.min()), float(dataset.ratings.rating.max())
        config = replace(config, positive_rating=low + (high - low) / 2)

    rng = np.random.default_rng(config.seed)
    train_index, val_index = _split(len(dataset.ratings), config.validation_fraction, rng)
    vocabularies = FeatureVocabularies.build(dataset, train_index)
    tables = _encode_tables(dataset, vocabularies)
    model = RecommenderModel.create(config, vocabularies)
    if config.objective == "contrastive":
        train_index = _positives(tables, train_index, config, dataset)
        val_index = _positives(tables, val_index, config, None)
    logger.info(
        "Training (%s objective) on %d ratings (%d held out), %d users, %d movies",
        config.objective, len(train_index), len(val_index),
        len(vocabularies.user_id.tokens), len(vocabularies.movie_id.tokens),
    )

    _fit(model, tables, train_index, val_index, rng, show_progress, epoch_callback)
    if model_dir is not None:
        model.save(model_dir)
    return model


def _split(count: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(count)
    held_out = int(round(count * fraction))
    if held_out >= count:
        held_out = count - 1
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _positives(tables: _Tables, index: np.ndarray, config: ModelConfig, dataset: Dataset | None) -> np.ndarray:
    if config.positive_rating is None:
        return index
    kept = index[tables.ratings[index] >= config.positive_rating]
    if dataset is not None and len(kept) == 0:
        raise DatasetError(
            f"No training rating of dataset {dataset.name!r} is >= positive_rating={config.positive_rating}; "
            "lower positive_rating or set it to None to count every rating as positive."
        )
    return kept


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


def _features(paddle, table: dict[str, np.ndarray], rows: np.ndarray, id_name: str, dropout: float, rng):
    """Tensors of the features at `rows`, with the id replaced by unknown at rate `dropout`."""
    columns = {name: column[rows] for name, column in table.items()}
    if dropout > 0:
        columns[id_name][rng.random(len(rows)) < dropout] = UNKNOWN_INDEX
    return {name: paddle.to_tensor(values) for name, values in columns.items()}


def _fit(
    model: RecommenderModel,
    tables: _Tables,
    train_index: np.ndarray,
    val_index: np.ndarray,
    rng: np.random.Generator,
    show_progress: bool,
    epoch_callback: EpochCallback | None,
) -> None:
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()

    config = model.config
    decay = config.learning_rate_decay
    schedule = paddle.optimizer.lr.LambdaDecay(config.learning_rate, lambda epoch: decay**epoch)
    optimizer = paddle.optimizer.Adam(
        learning_rate=schedule,
        parameters=model.network.parameters(),
        weight_decay=config.weight_decay or None,
    )
    contrastive = config.objective == "contrastive"
    log_frequency = _log_frequency(tables, train_index) if contrastive else None
    best_score, best_weights, stale = None, None, 0

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.network.train()
        if contrastive:
            record = _contrastive_epoch(model, tables, train_index, log_frequency, optimizer, rng, epoch, show_progress)
            if len(val_index):
                record["val_loss"] = round(contrastive_loss(model, tables, val_index, log_frequency), 5)
        else:
            record = _rating_epoch(model, tables, train_index, optimizer, rng, epoch, show_progress)
            record["val_rmse"] = round(evaluate_rmse(model, tables, val_index), 5) if len(val_index) else None
        record["seconds"] = round(time.perf_counter() - started, 2)
        schedule.step()

        score = epoch_callback(model, record) if epoch_callback is not None else _own_score(record)
        if score is not None:
            record["val_score"] = round(float(score), 6)
        model.history.append(record)
        logger.info("epoch %d/%d: %s", epoch, config.epochs, _describe(record))

        if score is None:
            continue
        if best_score is None or score > best_score:
            best_score, stale = score, 0
            best_weights = {name: tensor.numpy().copy() for name, tensor in model.network.state_dict().items()}
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                logger.info("Stopping early: no better validation score for %d epochs", stale)
                break

    if best_weights is not None:
        model.network.set_state_dict({name: paddle.to_tensor(value) for name, value in best_weights.items()})


def _own_score(record: dict) -> float | None:
    """Minus the held-out loss or RMSE, when there is a held-out split."""
    value = record.get("val_loss", record.get("val_rmse"))
    return None if value is None else -float(value)


def _describe(record: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in record.items() if key != "epoch")


def _rating_epoch(model, tables, train_index, optimizer, rng, epoch, show_progress) -> dict:
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()
    config = model.config
    steps = -(-len(train_index) // config.batch_size)
    order = rng.permutation(train_index)
    squared_error = 0.0
    progress = tqdm(total=steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not show_progress)
    for step in range(steps):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        predicted, target = _rating_batch(paddle, model, tables, index, config.id_dropout, rng)
        loss = ((predicted - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

        batch_loss = float(loss)
        squared_error += batch_loss * len(index)
        if step % 20 == 0:
            progress.set_postfix(rmse=f"{batch_loss ** 0.5:.3f}")
        progress.update(1)
    progress.close()
    return {"epoch": epoch, "train_rmse": round((squared_error / len(train_index)) ** 0.5, 5)}


def _rating_batch(paddle, model, tables: _Tables, index: np.ndarray, dropout: float, rng):
    users, user_rows = np.unique(tables.user_rows[index], return_inverse=True)
    movies, movie_rows = np.unique(tables.movie_rows[index], return_inverse=True)
    predicted = model.network.pair_ratings(
        _features(paddle, tables.users, users, "user_id", dropout, rng),
        _features(paddle, tables.movies, movies, "movie_id", dropout, rng),
        paddle.to_tensor(user_rows.reshape(-1)),
        paddle.to_tensor(movie_rows.reshape(-1)),
    )
    return predicted, paddle.to_tensor(tables.ratings[index])


def evaluate_rmse(model: RecommenderModel, tables: _Tables, index: np.ndarray, batch_size: int = 16384) -> float:
    """Return the RMSE of rating_scale x cosine against the ratings at `index`, without dropout."""
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()

    model.network.eval()
    squared_error = 0.0
    with paddle.no_grad():
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            predicted, target = _rating_batch(paddle, model, tables, chunk, 0.0, None)
            squared_error += float(((predicted - target) ** 2).sum())
    return (squared_error / max(len(index), 1)) ** 0.5


def _log_frequency(tables: _Tables, train_index: np.ndarray) -> np.ndarray:
    """Log of each movie's share of the training pairs, the logQ correction term.

    Movies without a training pair count once, so their logits stay finite. (Measured on
    the recbole protocol's validation split: subtracting log share scored NDCG@10 0.205;
    subtracting the log-probability that a movie is a candidate of a batch, which is near
    0 for every popular movie, scored 0.182.)
    """
    counts = np.bincount(tables.movie_rows[train_index], minlength=tables.movie_count).astype(np.float64)
    return np.log(np.maximum(counts, 1.0) / max(len(train_index), 1)).astype(np.float32)


def _user_batches(tables: _Tables, index: np.ndarray, users_per_batch: int, rng) -> list[np.ndarray]:
    """Split `index` into batches that each hold all pairs of `users_per_batch` users."""
    by_user = index[np.argsort(tables.user_rows[index], kind="stable")]
    users, starts = np.unique(tables.user_rows[by_user], return_index=True)
    groups = np.split(by_user, starts[1:])
    order = rng.permutation(len(groups)) if rng is not None else np.arange(len(groups))
    return [
        np.concatenate([groups[g] for g in order[start : start + users_per_batch]])
        for start in range(0, len(groups), users_per_batch)
    ]


def _contrastive_logits(paddle, model, tables, index, log_frequency, dropout, rng, all_movies=False):
    """Return (logits over candidates, each pair's row, each pair's candidate column)."""
    config = model.config
    users, pair_users = np.unique(tables.user_rows[index], return_inverse=True)
    if all_movies:
        movies, pair_movies = np.arange(tables.movie_count), tables.movie_rows[index]
    else:
        movies, pair_movies = np.unique(tables.movie_rows[index], return_inverse=True)
    user_vectors = model.network.user_tower(**_features(paddle, tables.users, users, "user_id", dropout, rng))
    movie_vectors = model.network.movie_tower(**_features(paddle, tables.movies, movies, "movie_id", dropout, rng))
    logits = paddle.matmul(user_vectors, movie_vectors, transpose_y=True) / config.temperature
    if config.popularity_correction:
        logits = logits - paddle.to_tensor(config.popularity_correction * log_frequency[movies])
    return logits, pair_users.reshape(-1), pair_movies.reshape(-1)


def _pair_loss(paddle, logits, pair_users: np.ndarray, pair_movies: np.ndarray):
    """Mean over pairs of -log softmax(logits[user])[movie], written with dense operations.

    A count matrix of the pairs turns the per-pair gather into one elementwise product,
    which Paddle runs an order of magnitude faster on a CPU than gathering and scattering
    tens of thousands of single entries.
    """
    counts = np.zeros(logits.shape, dtype=np.float32)
    np.add.at(counts, (pair_users, pair_movies), 1.0)
    counts = paddle.to_tensor(counts)
    log_normalizer = paddle.logsumexp(logits, axis=1)
    total = (counts.sum(axis=1) * log_normalizer).sum() - (counts * logits).sum()
    return total / len(pair_users)


def _contrastive_epoch(model, tables, train_index, log_frequency, optimizer, rng, epoch, show_progress) -> dict:
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()
    config = model.config
    batches = _user_batches(tables, train_index, config.users_per_batch, rng)
    total_loss = 0.0
    progress = tqdm(total=len(batches), desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not show_progress)
    for step, index in enumerate(batches):
        logits, pair_users, pair_movies = _contrastive_logits(
            paddle, model, tables, index, log_frequency, config.id_dropout, rng
        )
        loss = _pair_loss(paddle, logits, pair_users, pair_movies)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

        batch_loss = float(loss)
        total_loss += batch_loss * len(index)
        if step % 5 == 0:
            progress.set_postfix(loss=f"{batch_loss:.3f}")
        progress.update(1)
    progress.close()
    return {"epoch": epoch, "train_loss": round(total_loss / max(len(train_index), 1), 5)}


def contrastive_loss(model: RecommenderModel, tables: _Tables, index: np.ndarray, log_frequency: np.ndarray) -> float:
    """Return the mean cross-entropy of the pairs at `index` against the whole catalog.

    No popularity correction here: it compensates for in-batch sampling while training,
    and served scores are plain cosines, so the held-out loss scores those.
    """
    log_frequency = np.zeros_like(log_frequency)
    from towhee_recsys.model._paddle import import_paddle

    paddle = import_paddle()

    model.network.eval()
    total = 0.0
    with paddle.no_grad():
        for index_batch in _user_batches(tables, index, 512, None):
            logits, pair_users, pair_movies = _contrastive_logits(
                paddle, model, tables, index_batch, log_frequency, 0.0, None, all_movies=True
            )
            total += float(_pair_loss(paddle, logits, pair_users, pair_movies)) * len(index_batch)
    return total / max(len(index), 1)
