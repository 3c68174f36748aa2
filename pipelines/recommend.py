"""The recommendation pipeline: user -> vector -> Milvus search -> movie details."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from towhee_recsys.operators.online_blend import DEFAULT_WEIGHT, check_weight
from towhee_recsys.pipelines import batch, updates
from towhee_recsys.pipelines._resources import Resources

from towhee_recsys.data.dataset import Movie, User
from towhee_recsys.errors import RecsysError
from towhee_recsys.operator_errors import guard_against_pool_deadlock, original_errors
from towhee_recsys.results import Reason, Recommendation
from towhee_recsys.settings import Settings
from towhee_recsys.stores.base import normalize_id
from towhee_recsys.validation import check_positive_int, invalid_parameter

logger = logging.getLogger(__name__)


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


def _excluded_ids(rated_movie_ids: tuple, exclude_rated: bool) -> tuple:
    return rated_movie_ids if exclude_rated else ()


# With the rank stage, Milvus returns this many candidates (or top_k, if larger) and the
# rank stage keeps the best top_k of them.
RANK_CANDIDATES = 200


def _recall_k(top_k: int) -> int:
    return max(top_k, RANK_CANDIDATES)


class LikedHistory:
    """The rated movies that may support a recommendation: all but those rated below the middle.

    Only online ratings keep their values, because an ingest stores which movies a user
    rated but not the ratings. So a movie rated low through `record_ratings` is left out of
    the rank stage's history and of the explanations, while every ingested rating counts.
    """

    def __init__(self, rating_range: tuple[float, float]) -> None:
        self.center = (rating_range[0] + rating_range[1]) / 2

    def __call__(self, rated_movie_ids: Sequence[Any], online_ratings: Mapping[Any, float]) -> tuple:
        disliked = {movie_id for movie_id, rating in online_ratings.items() if rating < self.center}
        if not disliked:
            return tuple(rated_movie_ids)
        return tuple(movie_id for movie_id in rated_movie_ids if movie_id not in disliked)


class _AttachReasons:
    """Put the supporting rated movies, with titles, on each recommendation."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __call__(self, recommendations: list[Recommendation], reasons: tuple) -> list[Recommendation]:
        movie_ids = list(dict.fromkeys(movie_id for row in reasons for movie_id, _ in row))
        titles = {}
        if movie_ids:
            found = self.store.get_movies(movie_ids)
            titles = {movie_id: movie.title if movie else "" for movie_id, movie in zip(movie_ids, found, strict=True)}
        return [
            replace(item, because=tuple(Reason(movie_id, titles[movie_id], round(w, 6)) for movie_id, w in pairs))
            for item, pairs in zip(recommendations, reasons, strict=True)
        ]


def build_recommend_dag(
    resources: Resources,
    *,
    rating_range: tuple[float, float] = (1.0, 5.0),
    online_weight: float = DEFAULT_WEIGHT,
    ranker: Any = None,
    explain: bool = False,
) -> Any:
    """Return the Towhee pipeline behind `RecommendPipeline`, on shared resources.

    Inputs: a user id or `User`, top_k, exclude_rated, and a Milvus filter expression
    ("" for none). `rating_range` and `online_weight` set how online ratings move the
    user vector (see the online_blend operator). With a `ranker` (a `HistoryRanker`),
    Milvus returns RANK_CANDIDATES candidates and the rank-stage operator keeps the best
    top_k. With `explain`, each recommendation carries the rated movies that support it.
    """
    from towhee import ops, pipe

    model, vectors, metadata = resources.model, resources.vector_store, resources.metadata_store
    rating_min, rating_max = rating_range
    blend = ops.towhee_recsys.online_blend(
        store=vectors, rating_min=rating_min, rating_max=rating_max, weight=online_weight
    )
    flow = (
        pipe.input("query", "top_k", "exclude_rated", "filter")
        .map(
            "query",
            ("user", "rated_movie_ids", "online_ratings"),
            ops.towhee_recsys.user_profile(store=metadata, online_ratings=True),
        )
        .map("user", "features", ops.towhee_recsys.user_features(model=model))
        .map("features", "tower_embedding", ops.towhee_recsys.user_encoder(model=model))
        .map(("tower_embedding", "online_ratings"), "embedding", blend)
        .map(("rated_movie_ids", "exclude_rated"), "exclude_ids", _excluded_ids)
        .map(("rated_movie_ids", "online_ratings"), "liked_movie_ids", LikedHistory(rating_range))
    )
    search = ops.towhee_recsys.milvus_search(store=vectors)
    if ranker is None:
        flow = flow.map(("embedding", "exclude_ids", "top_k", "filter"), "hits", search)
    else:
        flow = (
            flow.map("top_k", "recall_k", _recall_k)
            .map(("embedding", "exclude_ids", "recall_k", "filter"), "candidates", search)
            .map(("candidates", "liked_movie_ids", "top_k"), "hits", ops.towhee_recsys.rank_stage(ranker=ranker))
        )
    flow = flow.map("hits", "recommendations", ops.towhee_recsys.metadata_lookup(store=metadata))
    if explain:
        flow = flow.map(
            ("hits", "liked_movie_ids"), "reasons", ops.towhee_recsys.explain(store=vectors, ranker=ranker)
        ).map(("recommendations", "reasons"), "recommendations", _AttachReasons(metadata))
    return flow.output("recommendations")


class RecommendPipeline:
    """Personal recommendations for known users and for new users from demographics.

    Besides recommending for one user (calling the pipeline) or many
    (`recommend_batch`), it changes the catalog without retraining: `record_ratings`,
    `register_user` and `put_movie`. Every method may be called from several threads
    at once: the model runs one Paddle call at a time, and the store clients are
    thread-safe. `close()` the pipeline, or use it as a context manager, to release the
    Milvus Lite file for other processes.

    Args:
        resources: the loaded model and open stores.
        online_weight: how far one online rating at an end of the rating scale moves
            the user vector, in units of a movie vector (see the online_blend operator).
    """

    def __init__(
        self, resources: Resources, *, online_weight: float = DEFAULT_WEIGHT, rank_stage: bool | None = None
    ) -> None:
        self.resources = resources
        self._closed = False
        self.online_weight = check_weight(online_weight)
        self.rating_range = updates.rating_range(resources, resources.metadata_store.get_info())
        self.ranker = _load_ranker(resources.settings.model_dir, rank_stage)
        options = dict(rating_range=self.rating_range, online_weight=self.online_weight, ranker=self.ranker)
        self._dag = guard_against_pool_deadlock(build_recommend_dag(resources, **options))
        self._explain_dag = guard_against_pool_deadlock(build_recommend_dag(resources, **options, explain=True))

    @property
    def genres(self) -> list[str]:
        """Genre names that filters and `put_movie` accept: those the model was trained with."""
        return list(self.resources.model.vocabularies.genre.tokens)

    def __call__(
        self,
        user_id: Any = None,
        *,
        gender: str | None = None,
        age: Any = None,
        occupation: Any = None,
        top_k: int = 10,
        exclude_rated: bool = True,
        genres: Sequence[str] | None = None,
        year_min: int | None = None,
        year_max: int | None = None,
        explain: bool = False,
    ) -> list[Recommendation]:
        """Return the `top_k` best movies for a user, best first.

        Args:
            user_id: a user in the catalog; if absent or unknown, the demographics
                describe a new user.
            gender, age, occupation: demographics of a new user (MovieLens codes:
                "M"/"F", age group 1/18/25/35/45/50/56, occupation 0-20).
            top_k: number of movies; exactly min(top_k, movies that pass the filters
                and the exclusion) come back.
            exclude_rated: leave out movies the user already rated.
            genres: only movies with at least one of these genres (see `genres`).
            year_min, year_max: only movies from these years, bounds included. A
                bound leaves out movies of unknown year.
            explain: give each recommendation `because`: up to three movies the user
                rated that support it most (by the rank stage's item-to-item weights,
                or else by the cosine of movie vectors). Costs one more read of each store.

        The filters and the exclusion are part of the vector query, so they never make
        the list shorter while enough movies match.

        Raises:
            UnknownUserError: the user id is unknown and no demographics were given.
            InvalidParameterError: top_k < 1, a demographic value the model never saw,
                an unknown genre, or an invalid year bound.
            StoreError: a store failed or the stores are out of step.
        """
        self._check_open()
        top_k = check_positive_int("top_k", top_k)
        expression = updates.search_filter(self.resources, genres, year_min, year_max)
        with original_errors():
            query = User(user_id, _blank_to_none(gender), _blank_to_none(age), _blank_to_none(occupation))
            dag = self._explain_dag if explain else self._dag
            row = dag(query, top_k, bool(exclude_rated), expression).get()
        if row is None:
            raise RecsysError("The recommendation pipeline returned no result; this is a bug, please report it.")
        return row[0]

    def recommend_batch(
        self,
        user_ids: Sequence[Any],
        *,
        top_k: int = 10,
        exclude_rated: bool = True,
        genres: Sequence[str] | None = None,
        year_min: int | None = None,
        year_max: int | None = None,
        skip_unknown: bool = False,
    ) -> list[list[Recommendation]]:
        """Return the `top_k` best movies of each user in the catalog, in the order of `user_ids`.

        Gives the same lists as calling the pipeline once per user, with every step
        batched: one metadata read for all users, one forward pass of the user tower,
        vector searches of up to 1024 users each, and one metadata read for the movie
        details. Pass at most a few thousand users per call, because all of their
        rated movie ids are held in memory at once.

        Args:
            user_ids: ids of users in the catalog or registered with `register_user`.
            skip_unknown: give an unknown user id an empty list instead of raising.
            top_k, exclude_rated, genres, year_min, year_max: as for a single call.

        Raises:
            UnknownUserError: some user ids are unknown (the message names them) and
                `skip_unknown` is False.
            InvalidParameterError: as for a single call, or an id of the wrong type.
            StoreError: a store failed or the stores are out of step.
        """
        self._check_open()
        top_k = check_positive_int("top_k", top_k)
        if isinstance(user_ids, np.ndarray):
            user_ids = user_ids.tolist()
        if isinstance(user_ids, (str, bytes)) or not isinstance(user_ids, Sequence):
            raise invalid_parameter("user_ids", "a list of user ids", type(user_ids).__name__)
        expression = updates.search_filter(self.resources, genres, year_min, year_max)
        return batch.recommend_batch(
            self.resources,
            user_ids,
            top_k=top_k,
            exclude_rated=bool(exclude_rated),
            expression=expression,
            skip_unknown=bool(skip_unknown),
            rating_range=self.rating_range,
            online_weight=self.online_weight,
            ranker=self.ranker,
        )

    def record_ratings(self, user_id: Any, ratings: Mapping[Any, float]) -> int:
        """Record a user's new ratings without retraining; return the number recorded.

        The movies join the user's rated set at once, so `exclude_rated` leaves them
        out of the next recommendation. The next recommendation also moves the user
        vector towards movies rated above the middle of the rating scale and away from
        those rated below (see the online_blend operator). Rating a movie again
        replaces its earlier online rating. The next ingest replaces the user's rated
        set and deletes the online ratings.

        Raises:
            UnknownUserError: the user is neither in the catalog nor registered.
            InvalidParameterError: an unknown movie id, or a rating that is not a number
                within the catalog's rating scale (`rating_range`).
        """
        self._check_open()
        return updates.record_ratings(self.resources, user_id, ratings, self.rating_range)

    def register_user(self, user_id: Any, gender: Any = None, age: Any = None, occupation: Any = None) -> User:
        """Store a new user's demographics, or replace a user's, and return the stored `User`.

        Recommendations for a user the model was not trained on come from these
        demographics and the user's online ratings.

        Raises:
            InvalidParameterError: a demographic value the model never saw, or an id of
                the wrong type.
        """
        self._check_open()
        return updates.register_user(self.resources, user_id, gender, age, occupation)

    def put_movie(self, movie_id: Any, title: str, genres: Sequence[str], year: int | None = None) -> Movie:
        """Add or replace a movie without retraining and return the stored `Movie`.

        The movie tower embeds it (a new id counts as unknown, so genres, title words
        and year make the vector), and it is written to the metadata store, then to
        the vector store, where the next search finds it.

        Raises:
            InvalidParameterError: a blank title, a genre the model never saw, a year
                that is not an integer from 0 to 9999, or an id of the wrong type.
        """
        self._check_open()
        return updates.put_movie(self.resources, movie_id, title, genres, year)

    def get_movie(self, movie_id: Any) -> Movie | None:
        """Return the stored movie, or None when the catalog has no movie with this id."""
        self._check_open()
        movie_id = normalize_id(movie_id, self.resources.model.vocabularies.id_type)
        return self.resources.metadata_store.get_movies([movie_id])[0]

    def _check_open(self) -> None:
        if self._closed:
            raise RecsysError("This recommend pipeline is closed; open a new one with recommend_pipeline().")

    def close(self) -> None:
        """Release the stores; safe to call more than once."""
        self._closed = True
        self.resources.close()

    def __enter__(self) -> RecommendPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def recommend_pipeline(
    settings: Settings | None = None,
    *,
    home: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    milvus_uri: str | None = None,
    metadata_uri: str | None = None,
    collection_name: str | None = None,
    key_prefix: str | None = None,
    online_weight: float = DEFAULT_WEIGHT,
    rank_stage: bool | None = None,
) -> RecommendPipeline:
    """Open a `RecommendPipeline` on the default data folder or the given locations.

    With no arguments it uses the model, Milvus Lite file and embedded Redis file in
    $TOWHEE_RECSYS_HOME (default ~/.towhee_recsys) that `towhee-recsys demo` or
    `towhee-recsys train` + `towhee-recsys ingest` wrote. `online_weight` is passed
    to `RecommendPipeline`.

    `rank_stage`: None (the default) re-scores the recall candidates with the rank stage
    when the model folder has one (`towhee-recsys train --rank-stage`), True requires
    it (ModelError if missing), False never uses it.
    """
    settings = _settings(settings, home, model_dir, milvus_uri, metadata_uri, collection_name, key_prefix)
    resources = Resources.open(settings)
    try:
        resources.check_catalog_model()
        return RecommendPipeline(resources, online_weight=online_weight, rank_stage=rank_stage)
    except BaseException:
        resources.close()
        raise


def _load_ranker(model_dir: str, rank_stage: bool | None) -> Any:
    """Load the model folder's rank stage if `rank_stage` requests it (None: if present), else return None."""
    from towhee_recsys.model.ranker import RANKER_FOLDER, HistoryRanker

    if rank_stage is False:
        return None
    if rank_stage is None and not (Path(model_dir).expanduser() / RANKER_FOLDER).is_dir():
        return None
    ranker = HistoryRanker.load(model_dir)
    logger.info("Using the rank stage in %s", model_dir)
    return ranker


def _settings(
    settings: Settings | None,
    home: Any,
    model_dir: Any,
    milvus_uri: Any,
    metadata_uri: Any,
    collection_name: Any,
    key_prefix: Any = None,
) -> Settings:
    if settings is not None:
        given = [
            name
            for name, value in (
                ("home", home),
                ("model_dir", model_dir),
                ("milvus_uri", milvus_uri),
                ("metadata_uri", metadata_uri),
                ("collection_name", collection_name),
                ("key_prefix", key_prefix),
            )
            if value
        ]
        if given:
            raise invalid_parameter(
                ", ".join(given),
                "no location keywords together with settings",
                "both",
                "Set them on the Settings object instead.",
            )
        return settings
    return Settings(
        home=str(home or ""),
        model_dir=str(model_dir or ""),
        milvus_uri=milvus_uri or "",
        metadata_uri=metadata_uri or "",
        key_prefix=key_prefix or "",
        **({"collection_name": collection_name} if collection_name else {}),
    )
