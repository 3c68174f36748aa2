"""The recommendation pipeline: user -> vector -> Milvus search -> movie details."""

from __future__ import annotations

import logging
import os
from typing import Any

from towhee_recsys.pipelines._resources import Resources

from towhee_recsys.data.dataset import User
from towhee_recsys.errors import RecsysError
from towhee_recsys.operator_errors import guard_against_pool_deadlock, original_errors
from towhee_recsys.results import Recommendation
from towhee_recsys.settings import Settings
from towhee_recsys.validation import check_positive_int, invalid_parameter

logger = logging.getLogger(__name__)


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


def _excluded_ids(rated_movie_ids: tuple, exclude_rated: bool) -> tuple:
    return rated_movie_ids if exclude_rated else ()


def build_recommend_dag(resources: Resources) -> Any:
    """Return the Towhee pipeline behind `RecommendPipeline`, on shared resources."""
    from towhee import ops, pipe

    model, vectors, metadata = resources.model, resources.vector_store, resources.metadata_store
    return (
        pipe.input("query", "top_k", "exclude_rated")
        .map("query", ("user", "rated_movie_ids"), ops.towhee_recsys.user_profile(store=metadata))
        .map("user", "features", ops.towhee_recsys.user_features(model=model))
        .map("features", "embedding", ops.towhee_recsys.user_encoder(model=model))
        .map(("rated_movie_ids", "exclude_rated"), "exclude_ids", _excluded_ids)
        .map(("embedding", "exclude_ids", "top_k"), "hits", ops.towhee_recsys.milvus_search(store=vectors))
        .map("hits", "recommendations", ops.towhee_recsys.metadata_lookup(store=metadata))
        .output("recommendations")
    )


class RecommendPipeline:
    """Personal recommendations for known users and for new users from demographics.

    The constructor opens the model and both stores once. Call the pipeline any number
    of times, from several threads if needed. Then `close()` it, or use it as a context
    manager, to release the Milvus Lite file for other processes.
    """

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self._closed = False
        self._dag = guard_against_pool_deadlock(build_recommend_dag(resources))

    def __call__(
        self,
        user_id: Any = None,
        *,
        gender: str | None = None,
        age: Any = None,
        occupation: Any = None,
        top_k: int = 10,
        exclude_rated: bool = True,
    ) -> list[Recommendation]:
        """Return the `top_k` best movies for a user, best first.

        Args:
            user_id: a user in the catalog; if absent or unknown, the demographics
                describe a new user.
            gender, age, occupation: demographics of a new user (MovieLens codes:
                "M"/"F", age group 1/18/25/35/45/50/56, occupation 0-20).
            top_k: number of movies; exactly min(top_k, available movies) come back.
            exclude_rated: leave out movies the user already rated.

        Raises:
            UnknownUserError: the user id is unknown and no demographics were given.
            InvalidParameterError: top_k < 1 or a demographic value the model never saw.
            StoreError: a store failed or the stores are out of step.
        """
        if self._closed:
            raise RecsysError("This recommend pipeline is closed; open a new one with recommend_pipeline().")
        top_k = check_positive_int("top_k", top_k)
        with original_errors():
            query = User(user_id, _blank_to_none(gender), _blank_to_none(age), _blank_to_none(occupation))
            row = self._dag(query, top_k, bool(exclude_rated)).get()
        if row is None:
            raise RecsysError("The recommendation pipeline returned no result; this is a bug, please report it.")
        return row[0]

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
) -> RecommendPipeline:
    """Open a `RecommendPipeline` on the default data folder or the given locations.

    With no arguments it uses the model, Milvus Lite file and embedded Redis file in
    $TOWHEE_RECSYS_HOME (default ~/.towhee_recsys) that `towhee-recsys demo` or
    `towhee-recsys train` + `towhee-recsys ingest` wrote.
    """
    settings = _settings(settings, home, model_dir, milvus_uri, metadata_uri, collection_name, key_prefix)
    resources = Resources.open(settings)
    try:
        resources.check_catalog_model()
        return RecommendPipeline(resources)
    except BaseException:
        resources.close()
        raise


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
