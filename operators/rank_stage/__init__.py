"""Operator rank-stage: re-score recall candidates with the user's rated movies."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from towhee_recsys.operators._base import RecsysOperator

from towhee_recsys.stores.base import SearchHit
from towhee_recsys.validation import check_positive_int


class RankStage(RecsysOperator):
    """Re-order Milvus hits by the rank stage and keep the best `top_k`.

    Inputs, by position: the recall hits (ask milvus_search for more than you keep, for
    example 200), the ids of the movies the user rated, and optionally `top_k`. The
    output hits carry the rank score: the blend of the standardized recall cosine and the
    standardized item-to-item score of `towhee_recsys.model.ranker.HistoryRanker`. A user
    without rated movies keeps the recall order.

    Args:
        ranker: a `HistoryRanker` object (shared with other operators), or
        model_dir: the model folder whose `ranker/` subfolder contains one.
        top_k: hits to keep unless the call passes its own (default 10).
    """

    name = "towhee-recsys/rank-stage"

    def __init__(self, ranker: Any = None, model_dir: str | os.PathLike | None = None, top_k: int = 10) -> None:
        self._ranker = ranker
        self._model_dir = model_dir
        self._lock = threading.Lock()
        self.top_k = check_positive_int("top_k", top_k)

    @property
    def ranker(self) -> Any:
        if self._ranker is None:
            with self._lock:
                if self._ranker is None:
                    from towhee_recsys.model.ranker import HistoryRanker
                    from towhee_recsys.settings import Settings

                    self._ranker = HistoryRanker.load(self._model_dir or Settings().model_dir)
        return self._ranker

    def run(self, hits: Sequence[SearchHit], rated_movie_ids: Sequence[Any] = (), top_k: int | None = None) -> list:
        top_k = self.top_k if top_k is None else check_positive_int("top_k", top_k)
        return self.ranker.rank_hits(hits, rated_movie_ids, top_k)
