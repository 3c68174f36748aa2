"""Operator explain: the rated movies that most support each recommendation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from towhee_recsys.operators._base import VectorStoreOperator

from towhee_recsys.stores.base import SearchHit
from towhee_recsys.validation import check_positive_int

# Cosine support reads at most this many of the user's rated movies' vectors.
MAX_HISTORY = 1000


class Explain(VectorStoreOperator):
    """Return, for each hit, up to `count` (movie id, support) pairs from the user's history.

    Inputs, by position: the hits of one user and the ids of the movies the user rated.
    With a rank stage (`ranker`), the support of rated movie i for hit j is the
    item-to-item weight i -> j that the rank stage scored j with. Without one, it is
    the cosine between the two movies' vectors in the Milvus collection; only rated
    movies with a positive support are returned. A user with no rated movies (a new
    user) gets an empty tuple per hit.

    Args:
        store / uri / collection_name / dim / id_type: see milvus-search.
        ranker: a `HistoryRanker` to take the supports from, or None for cosine.
        count: rated movies per hit (default 3).
    """

    name = "towhee-recsys/explain"

    def __init__(self, store: Any = None, uri: str | None = None, collection_name: str | None = None,
                 dim: int = 256, id_type: str = "int", ranker: Any = None, count: int = 3) -> None:
        super().__init__(store=store, uri=uri, collection_name=collection_name, dim=dim, id_type=id_type)
        self.ranker = ranker
        self.count = check_positive_int("count", count)

    def run(self, hits: Sequence[SearchHit], rated_movie_ids: Sequence[Any] = ()) -> tuple:
        hits = list(hits)
        rated = list(dict.fromkeys(rated_movie_ids))
        if not hits or not rated:
            return tuple(() for _ in hits)
        if self.ranker is not None:
            return self._from_ranker(hits, rated)
        return self._from_vectors(hits, rated[-MAX_HISTORY:])

    def _from_ranker(self, hits: list[SearchHit], rated: list[Any]) -> tuple:
        ranker = self.ranker
        history = ranker.positions(rated)
        ids = ranker.movie_ids
        reasons = []
        for candidate in ranker.positions([hit.movie_id for hit in hits]):
            pairs = ranker.supporters(history, int(candidate), self.count)
            reasons.append(tuple((ids[row], weight) for row, weight in pairs))
        return tuple(reasons)

    def _from_vectors(self, hits: list[SearchHit], rated: list[Any]) -> tuple:
        vectors = self.store.get_embeddings(rated + [hit.movie_id for hit in hits])
        known = [movie_id for movie_id in rated if movie_id in vectors]
        if not known:
            return tuple(() for _ in hits)
        history = np.stack([vectors[movie_id] for movie_id in known])
        reasons = []
        for hit in hits:
            vector = vectors.get(hit.movie_id)
            if vector is None:
                reasons.append(())
                continue
            similarity = history @ vector
            order = np.argsort(-similarity, kind="stable")[: self.count]
            reasons.append(tuple((known[i], float(similarity[i])) for i in order if similarity[i] > 0))
        return tuple(reasons)
