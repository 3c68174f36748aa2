"""Operator milvus-search: nearest movies to a user vector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from towhee_recsys.operators._base import VectorStoreOperator

from towhee_recsys.validation import check_positive_int, invalid_parameter


class MilvusSearch(VectorStoreOperator):
    """Search the movie collection by inner product, which is cosine on unit vectors.

    Inputs, by position: one vector (returns a list of `SearchHit`) or an (n, dim)
    matrix (returns one list per row); optionally the ids to exclude; optionally
    `top_k`; optionally a filter expression for this call. `exclude_ids` removes movies
    inside the vector query, so exactly min(top_k, matching movies) hits come back.
    A filter is a Milvus boolean expression on `genres` and `year`, for example
    ``year >= 1990`` or the output of `towhee_recsys.stores.milvus.filter_expression`;
    the constructor's and the call's filters must both hold.

    Args:
        store / uri / collection_name / dim / id_type: see milvus-upsert.
        top_k: hits per query unless the call passes its own (default 10).
        filter: default filter expression (default none).
    """

    name = "towhee-recsys/milvus-search"

    def __init__(self, store: Any = None, uri: str | None = None, collection_name: str | None = None,
                 dim: int = 256, id_type: str = "int", top_k: int = 10, filter: str = "") -> None:
        super().__init__(store=store, uri=uri, collection_name=collection_name, dim=dim, id_type=id_type)
        self.top_k = check_positive_int("top_k", top_k)
        self.filter = filter

    def run(
        self,
        embedding: np.ndarray,
        exclude_ids: Sequence[Any] | None = None,
        top_k: int | None = None,
        filter: str = "",
    ) -> list:
        top_k = self.top_k if top_k is None else check_positive_int("top_k", top_k)
        if not isinstance(filter, str):
            raise invalid_parameter("filter", "a Milvus filter expression string", filter)
        expression = " and ".join(f"({part})" for part in (self.filter, filter) if part.strip())
        vectors = np.asarray(embedding, dtype=np.float32)
        if vectors.ndim not in (1, 2):
            raise invalid_parameter("embedding", "a vector or a 2-D matrix of vectors", f"shape {vectors.shape}")

        single = vectors.ndim == 1
        queries = vectors[None, :] if single else vectors
        exclude = None if not exclude_ids else [list(exclude_ids)] * len(queries)
        hits = self.store.search(queries, top_k, exclude=exclude, filter=expression)
        return hits[0] if single else hits
