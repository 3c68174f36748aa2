"""Train a model on a protocol's training split and measure it against baselines on the test split."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from towhee_recsys.data.dataset import Dataset, User
from towhee_recsys.errors import DatasetError
from towhee_recsys.evaluation import baselines
from towhee_recsys.evaluation.metrics import (
    CUTOFFS,
    LEAVE_LAST_OUT_METRICS,
    RECBOLE_METRICS,
    mae,
    metric_names,
    ranking_metrics,
    rmse,
)
from towhee_recsys.evaluation.protocols import (
    PROTOCOLS,
    RECBOLE_MIN_COUNT,
    Interactions,
    ProtocolSplit,
    UserMovies,
    make_split,
)
from towhee_recsys.evaluation.ranking import (
    RankStage,
    ScoreRows,
    exact_top_lists,
    hit_matrix,
    mean_overlap,
    rerank_top_lists,
    served_top_lists,
)
from towhee_recsys.evaluation.report import REFERENCES, EvaluationReport, MetricTable, ProtocolReport
from towhee_recsys.model.config import ModelConfig
from towhee_recsys.validation import invalid_parameter

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
# Candidates per user that the rank stage re-scores, taken from the exact two-tower ranking.
RANK_CANDIDATES = 200
VALIDATION_CUTOFF = 10
VALIDATION_METRIC = "NDCG@10"

# Name of the time spent on validation scoring, which is part of the training time.
VALIDATION_PHASE = "validation (within training)"

MODEL = "two-tower"
MODEL_SERVED = "two-tower, served (Milvus)"
MODEL_RANKED = "two-tower + rank"


def evaluate(
    dataset: Dataset,
    protocol: str = "recbole",
    config: ModelConfig | None = None,
    *,
    seed: int = DEFAULT_SEED,
    served: bool = True,
    rank_stage: RankStage | None = None,
    show_progress: bool = True,
    imputed_timestamps: Collection[tuple[Any, Any]] | None = None,
    min_count: int = RECBOLE_MIN_COUNT,
    work_dir: str | Path | None = None,
) -> EvaluationReport:
    """Train and evaluate a two-tower model under one protocol, or under all of them.

    Each protocol trains its own model with `towhee_recsys.model.training.train` on its
    training split only, choosing the best epoch by a validation metric (NDCG@10 for the
    ranking protocols, -RMSE for "rating"). The test split is scored by exact NumPy
    ranking and, with `served`, by batched Milvus Lite searches in a temporary folder,
    the way a served recommendation searches.

    Args:
        dataset: ratings, movie catalog and (optional) demographics.
        protocol: "recbole", "leave-last-out", "rating", or "all".
        config: model settings, by default `ModelConfig(seed=seed)`. Its
            `validation_fraction` is set to 0 because every protocol has its own
            validation split. The "rating" protocol always trains with the rating
            objective, because it measures predicted ratings.
        seed: seed of the random splits and the random baseline.
        served: also score through Milvus search with exclusion, as batch recommendation does.
        rank_stage: re-scores the top RANK_CANDIDATES exact candidates of each user, as
            `towhee_recsys.evaluation.ranking.RankStage` describes.
        show_progress: show tqdm progress bars.
        imputed_timestamps: (user id, movie id) pairs whose timestamp is not the original
            one (`read_imputed_timestamps`). Leave-last-out results on such data are
            labelled approximate.
        min_count: the recbole protocol keeps users and movies with at least this many
            ratings >= 3 (a k-core).
        work_dir: parent folder of the temporary Milvus Lite folder, which is deleted at
            the end. None uses the system's temporary folder.
    """
    protocols = _protocol_names(protocol)
    config = replace(config or ModelConfig(seed=seed), validation_fraction=0.0)

    reports = []
    with _ServingFolder(work_dir) as folder:
        for name in protocols:
            context = _Context(dataset, name, config, seed, served, rank_stage, show_progress, folder, min_count)
            if name == "rating":
                reports.append(_evaluate_rating(context))
            else:
                reports.append(_evaluate_ranking(context, imputed_timestamps))
    return EvaluationReport(reports)


def _protocol_names(protocol: str) -> tuple[str, ...]:
    if protocol == "all":
        return PROTOCOLS
    if protocol not in PROTOCOLS:
        raise invalid_parameter("protocol", f"one of {', '.join((*PROTOCOLS, 'all'))}", protocol)
    return (protocol,)


def read_imputed_timestamps(data_path: str | Path) -> set[tuple[int, int]] | None:
    """Read ``imputed_timestamps.txt.gz`` (``UserID::MovieID`` lines, an optional header) from a MovieLens folder.

    Returns None when the folder (or its ``ml-1m`` subfolder) has no such file.
    """
    import gzip

    folder = Path(data_path).expanduser()
    candidates = [folder / "imputed_timestamps.txt.gz", folder / "ml-1m" / "imputed_timestamps.txt.gz"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        return None
    try:
        with gzip.open(path, "rt", encoding="ascii") as file:
            lines = file.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        fix = "Delete the file if every timestamp is original."
        raise DatasetError(f"Failed to read {path}: {error}. {fix}") from error
    pairs = set()
    for number, line in enumerate(lines, start=1):
        user_id, separator, movie_id = line.strip().partition("::")
        if not line.strip() or (number == 1 and line.strip() == "UserID::MovieID"):
            continue
        if not (separator and user_id.isdigit() and movie_id.isdigit()):
            raise DatasetError(f"Invalid line {number} of {path}: expected UserID::MovieID, got {line!r}.")
        pairs.add((int(user_id), int(movie_id)))
    logger.info("Read %d imputed timestamps from %s", len(pairs), path)
    return pairs


# ----- shared state of one protocol run -----


@dataclass
class _Context:
    dataset: Dataset
    protocol: str
    config: ModelConfig
    seed: int
    served: bool
    rank_stage: RankStage | None
    show_progress: bool
    folder: _ServingFolder
    min_count: int
    timings: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def ordered_timings(self) -> dict[str, float]:
        """Return the timings with training first, then the phases in the order they ran."""
        first = {name: self.timings[name] for name in ("training", VALIDATION_PHASE) if name in self.timings}
        return {**first, **{name: value for name, value in self.timings.items() if name not in first}}

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = round(self.timings.get(phase, 0.0) + time.perf_counter() - started, 2)


class _ServingFolder:
    """A temporary folder for the Milvus Lite file of the served pass, created on first use."""

    def __init__(self, parent: str | Path | None = None) -> None:
        self._parent = parent
        self._directory: tempfile.TemporaryDirectory | None = None

    def path(self) -> Path:
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="towhee_recsys_evaluation_", dir=self._parent)
        return Path(self._directory.name)

    def __enter__(self) -> _ServingFolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._directory is not None:
            self._directory.cleanup()


@dataclass
class _Vectors:
    """Unit vectors of every user and movie of the protocol, by dense index."""

    users: np.ndarray
    movies: np.ndarray

    def scores(self, users: np.ndarray | None = None) -> ScoreRows:
        user_vectors = self.users if users is None else users
        return lambda rows: user_vectors[rows] @ self.movies.T


def _people(dataset: Dataset, interactions: Interactions) -> list[User]:
    return [dataset.users.get(user_id) or User(user_id) for user_id in interactions.user_ids.tolist()]


def _encode(model: Any, dataset: Dataset, interactions: Interactions, *, known_ids: bool = True) -> _Vectors:
    movies = []
    for movie_id in interactions.movie_ids.tolist():
        movie = dataset.movies.get(movie_id)
        if movie is None:
            raise DatasetError(f"Ratings refer to movie id {movie_id!r}, which is not in the movie catalog.")
        movies.append(movie)
    users = model.encode_users(_people(dataset, interactions), known_ids=known_ids)
    return _Vectors(users=users, movies=model.encode_movies(movies))


def _train(context: _Context, split: ProtocolSplit, config: ModelConfig, callback: Any) -> Any:
    from towhee_recsys.model import train

    train_dataset = split.train_dataset(context.dataset)
    if config.objective == "contrastive" and config.positive_rating is None and len(train_dataset.ratings):
        # Every interaction a ranking protocol keeps is a positive (recbole already dropped
        # ratings below 3; leave-last-out tests on the latest rating whatever its value).
        config = replace(config, positive_rating=float(train_dataset.ratings.rating.min()))
    logger.info("%s: training on %d ratings", context.protocol, len(train_dataset.ratings))
    with context.timed("training"):
        return train(train_dataset, config, show_progress=context.show_progress, epoch_callback=callback)


# ----- ranking protocols -----


@dataclass
class _RankingSetup:
    """The parts of a ranking protocol that every scoring pass shares."""

    split: ProtocolSplit
    metrics: tuple[str, ...]
    train: UserMovies
    validation: UserMovies
    test: UserMovies
    seen_at_test: UserMovies
    test_users: np.ndarray
    validation_users: np.ndarray

    @property
    def n_movies(self) -> int:
        return self.split.interactions.n_movies

    def measure(self, top: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, float]:
        hits = hit_matrix(top, self.test_users, self.test, self.n_movies)
        return ranking_metrics(hits, self.test.counts()[self.test_users], self.metrics, cutoffs)


def _ranking_setup(split: ProtocolSplit) -> _RankingSetup:
    interactions = split.interactions
    test = UserMovies.of(interactions, split.test)
    validation = UserMovies.of(interactions, split.validation)
    return _RankingSetup(
        split=split,
        metrics=RECBOLE_METRICS if split.protocol == "recbole" else LEAVE_LAST_OUT_METRICS,
        train=UserMovies.of(interactions, split.train),
        validation=validation,
        test=test,
        seen_at_test=UserMovies.of(interactions, split.train, split.validation),
        test_users=np.flatnonzero(test.counts() > 0),
        validation_users=np.flatnonzero(validation.counts() > 0),
    )


def _evaluate_ranking(context: _Context, imputed: Collection[tuple[Any, Any]] | None) -> ProtocolReport:
    dataset = context.dataset
    split = make_split(dataset, context.protocol, context.seed, min_count=context.min_count)
    setup = _ranking_setup(split)
    logger.info("%s split: %s", context.protocol, split.sizes())

    model = _train(context, split, context.config, _ranking_callback(context, setup))
    if context.rank_stage is not None and hasattr(context.rank_stage, "fit"):
        with context.timed("rank stage fit"):
            context.rank_stage.fit(split.train_dataset(dataset), model)
    vectors = _encode(model, dataset, split.interactions)
    store = _open_served_store(context, model, split.interactions, vectors) if context.served else None

    try:
        if context.protocol == "recbole":
            settings = [("test, training and validation movies masked", setup.seen_at_test)]
        else:
            settings = [("test, seen movies masked", setup.seen_at_test), ("test, nothing masked", None)]
        tables = [_ranking_table(context, setup, vectors, store, title, masked) for title, masked in settings]
        if context.protocol == "leave-last-out":
            tables.append(_cold_start_table(context, setup, model, store))
    finally:
        if store is not None:
            store.close()

    notes = []
    approximate = False
    if context.protocol == "leave-last-out" and imputed:
        notes.append(_imputed_note(split, imputed))
        approximate = True
    return ProtocolReport(
        protocol=context.protocol,
        dataset=dataset.name,
        seed=context.seed,
        split=split.sizes(),
        tables=tables,
        history=context.history,
        timings=context.ordered_timings(),
        config=model.config.to_dict(),
        notes=notes,
        approximate=approximate,
    )


def _ranking_callback(context: _Context, setup: _RankingSetup) -> Any:
    """Return the epoch callback that scores the validation split and returns its NDCG@10."""
    interactions = setup.split.interactions

    def score_epoch(model: Any, record: dict) -> float:
        with context.timed(VALIDATION_PHASE):
            vectors = _encode(model, context.dataset, interactions)
            top, _ = exact_top_lists(
                vectors.scores(), setup.validation_users, setup.n_movies, VALIDATION_CUTOFF, masked=setup.train
            )
            hits = hit_matrix(top, setup.validation_users, setup.validation, setup.n_movies)
            relevant = setup.validation.counts()[setup.validation_users]
            values = ranking_metrics(hits, relevant, setup.metrics, (VALIDATION_CUTOFF,))
        context.history.append({**record, **{f"val_{name}": round(value, 5) for name, value in values.items()}})
        summary = ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        logger.info("%s, epoch %s, validation: %s", context.protocol, record.get("epoch"), summary)
        return values[VALIDATION_METRIC]

    return score_epoch


def _ranking_table(
    context: _Context,
    setup: _RankingSetup,
    vectors: _Vectors,
    store: Any,
    title: str,
    masked: UserMovies | None,
) -> MetricTable:
    users, n_movies, longest = setup.test_users, setup.n_movies, max(CUTOFFS)
    candidates = max(longest, RANK_CANDIDATES) if context.rank_stage is not None else longest
    rows: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    overlap = None

    with context.timed("exact scoring"):
        top, top_scores = exact_top_lists(
            vectors.scores(), users, n_movies, candidates, masked=masked,
            show_progress=context.show_progress, description=f"{context.protocol}: exact ranking",
        )
        rows[MODEL] = setup.measure(top[:, :longest])
    if store is not None:
        with context.timed("served search"):
            served = served_top_lists(
                store, vectors.users[users], setup.split.interactions.movie_ids, longest,
                excluded=masked, users=users, show_progress=context.show_progress,
                description=f"{context.protocol}: Milvus search",
            )
            rows[MODEL_SERVED] = setup.measure(served)
        overlap = mean_overlap(top[:, :longest], served)
    if context.rank_stage is not None:
        with context.timed("rank stage"):
            user_ids = setup.split.interactions.user_ids[users]
            reranked = rerank_top_lists(
                context.rank_stage, user_ids, setup.split.interactions.movie_ids, top, top_scores, longest
            )
            rows[MODEL_RANKED] = setup.measure(reranked)

    with context.timed("baselines"):
        train_movies = setup.split.interactions.movie[setup.split.train]
        popularity = baselines.PopularityScores(train_movies, n_movies)
        rows["popularity"] = setup.measure(exact_top_lists(popularity, users, n_movies, longest, masked=masked)[0])
        random_scores = baselines.RandomScores(n_movies, context.seed)
        rows["random"] = setup.measure(exact_top_lists(random_scores, users, n_movies, longest, masked=masked)[0])

    references = REFERENCES.get(context.protocol, {}) if masked is not None else {}
    columns = metric_names(setup.metrics, CUTOFFS)
    return MetricTable(title, columns, rows, references, notes, served_overlap=overlap)


def _cold_start_table(context: _Context, setup: _RankingSetup, model: Any, store: Any) -> MetricTable:
    """Score the test users as new users: demographics only, no id, no history, nothing masked."""
    dataset, interactions = context.dataset, setup.split.interactions
    users, n_movies, longest = setup.test_users, setup.n_movies, max(CUTOFFS)
    rows: dict[str, dict[str, float]] = {}
    overlap = None
    notes = [
        "Each test user is encoded without its user id (the unknown index) and without history, and "
        "nothing is masked. The model and the baselines were trained on the other users' and this "
        "user's training ratings."
    ]

    with context.timed("cold start"):
        cold = _encode(model, dataset, interactions, known_ids=False)
        top, _ = exact_top_lists(cold.scores(), users, n_movies, longest, show_progress=context.show_progress,
                                 description=f"{context.protocol}: cold-start ranking")
        rows[f"{MODEL}, new users"] = setup.measure(top)
        if store is not None:
            served = served_top_lists(
                store, cold.users[users], interactions.movie_ids, longest, users=users,
                show_progress=context.show_progress, description=f"{context.protocol}: cold-start Milvus search",
            )
            rows[f"{MODEL}, new users, served (Milvus)"] = setup.measure(served)
            overlap = mean_overlap(top, served)

        train_users = interactions.user[setup.split.train]
        train_movies = interactions.movie[setup.split.train]
        if baselines.has_demographics(dataset):
            demographic = baselines.DemographicPopularityScores(
                interactions.user_ids, dataset.users, train_users, train_movies, n_movies
            )
            demographic_top, _ = exact_top_lists(demographic, users, n_movies, longest)
            rows["per-demographic popularity"] = setup.measure(demographic_top)
        else:
            notes.append("The dataset has no demographics, so per-demographic popularity equals popularity.")
        popularity = baselines.PopularityScores(train_movies, n_movies)
        rows["popularity"] = setup.measure(exact_top_lists(popularity, users, n_movies, longest)[0])
        random_scores = baselines.RandomScores(n_movies, context.seed + 1)
        rows["random"] = setup.measure(exact_top_lists(random_scores, users, n_movies, longest)[0])

    columns = metric_names(setup.metrics, CUTOFFS)
    title = "cold start: test users as new users, nothing masked"
    return MetricTable(title, columns, rows, {}, notes, served_overlap=overlap)


def _open_served_store(context: _Context, model: Any, interactions: Interactions, vectors: _Vectors) -> Any:
    """Write the movie vectors to a new Milvus Lite collection in the temporary folder."""
    from towhee_recsys.stores.milvus import MilvusVectorStore

    movies = [context.dataset.movies[movie_id] for movie_id in interactions.movie_ids.tolist()]
    store = MilvusVectorStore(
        str(context.folder.path() / "evaluation.db"),
        collection_name=f"evaluation_{context.protocol.replace('-', '_')}",
        dim=model.dim,
        id_type=model.vocabularies.id_type,
    )
    try:
        with context.timed("served search"):
            store.drop()
            store.upsert(
                interactions.movie_ids.tolist(),
                vectors.movies,
                [movie.genres for movie in movies],
                [movie.year for movie in movies],
            )
    except BaseException:
        store.close()
        raise
    return store


def _imputed_note(split: ProtocolSplit, imputed: Collection[tuple[Any, Any]]) -> str:
    interactions = split.interactions
    imputed_set = imputed if isinstance(imputed, (set, frozenset)) else set(imputed)
    pairs = list(
        zip(interactions.user_ids[interactions.user].tolist(), interactions.movie_ids[interactions.movie].tolist(),
            strict=True)
    )
    is_imputed = np.fromiter((pair in imputed_set for pair in pairs), dtype=bool, count=len(pairs))
    affected_users = len(np.unique(interactions.user[is_imputed]))
    return (
        f"Approximate: {int(is_imputed.sum()):,} of the {len(pairs):,} ratings carry an imputed timestamp "
        "(listed in imputed_timestamps.txt.gz of the data folder), so the time order of their "
        f"{affected_users:,} users' ratings is partly unknown and their latest rating, which this protocol tests, "
        f"may differ from the published data. {int(is_imputed[split.test].sum()):,} test and "
        f"{int(is_imputed[split.validation].sum()):,} validation ratings are themselves imputed."
    )


# ----- rating protocol -----


def _evaluate_rating(context: _Context) -> ProtocolReport:
    dataset = context.dataset
    split = make_split(dataset, "rating", context.seed)
    interactions = split.interactions
    config = context.config
    notes = []
    if config.objective != "rating":
        logger.info("The rating protocol trains with the rating objective instead of %r", config.objective)
        notes.append(f"Trained with the rating objective in place of {config.objective!r}, which predicts no ratings.")
        config = replace(config, objective="rating")

    def score_epoch(model: Any, record: dict) -> float:
        with context.timed(VALIDATION_PHASE):
            predicted = _predict_ratings(model, dataset, interactions, split.validation)
            actual = interactions.rating[split.validation]
            values = {"RMSE": rmse(predicted, actual), "MAE": mae(predicted, actual)}
        context.history.append({**record, **{f"val_{name}": round(value, 5) for name, value in values.items()}})
        return -values["RMSE"]

    model = _train(context, split, config, score_epoch)
    with context.timed("test scoring"):
        rows = _rating_rows(model, dataset, split)
    table = MetricTable("test, held-out ratings", ["RMSE", "MAE"], rows, REFERENCES["rating"], [])
    return ProtocolReport(
        protocol="rating",
        dataset=dataset.name,
        seed=context.seed,
        split=split.sizes(),
        tables=[table],
        history=context.history,
        timings=context.ordered_timings(),
        config=model.config.to_dict(),
        notes=notes,
    )


def _predict_ratings(model: Any, dataset: Dataset, interactions: Interactions, positions: np.ndarray) -> np.ndarray:
    vectors = _encode(model, dataset, interactions)
    users, movies = interactions.user[positions], interactions.movie[positions]
    cosine = np.einsum("ij,ij->i", vectors.users[users], vectors.movies[movies])
    return model.config.rating_scale * cosine


def _rating_rows(model: Any, dataset: Dataset, split: ProtocolSplit) -> dict[str, dict[str, float]]:
    interactions = split.interactions
    actual = interactions.rating[split.test]
    predicted = _predict_ratings(model, dataset, interactions, split.test)
    train_ratings = interactions.rating[split.train]
    clipped = np.clip(predicted, train_ratings.min(), train_ratings.max())

    global_mean, movie_means = baselines.mean_ratings(
        interactions.movie[split.train], train_ratings.astype(np.float64), interactions.n_movies
    )
    by_movie = movie_means[interactions.movie[split.test]]
    by_global = np.full(len(actual), global_mean)
    return {
        MODEL: {"RMSE": rmse(predicted, actual), "MAE": mae(predicted, actual)},
        f"{MODEL}, clipped to the rating range": {"RMSE": rmse(clipped, actual), "MAE": mae(clipped, actual)},
        "movie mean": {"RMSE": rmse(by_movie, actual), "MAE": mae(by_movie, actual)},
        "global mean": {"RMSE": rmse(by_global, actual), "MAE": mae(by_global, actual)},
    }
