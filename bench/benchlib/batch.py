"""Batch recommendation throughput for every user of the dataset, next to a vectorized raw floor."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchlib.latency import TOP_K, RawRecommender, parse_code
from benchlib.report import Row, skipped
from benchlib.workspace import Workspace
from towhee_recsys.data.dataset import User

SECTION = "batch"
TARGET_RATE = 3000.0
# Users per NumPy matrix product and per pymilvus search request in the floors.
CHUNK = 1024
NOTES = [
    "**batch**: `RecommendPipeline.recommend_batch(all user ids, top_k=10)` with the rated movies excluded, "
    "after a warm-up call on 100 users. Its floor is the same work vectorized with the raw parts: one redis-py "
    "pipeline for every profile, rated set and online ratings, one `model.encode_users()` call, an exact NumPy "
    "top 10 with the exclusions (1,024 users per matrix product) and one redis-py pipeline for all hits' "
    "details. The pymilvus row searches the same vectors, 1,024 per request, without exclusions, which is the "
    "least a Milvus search of all users costs.",
]


def run(workspace: Workspace, seed: int) -> list[Row]:
    """Recommend for every user in one batch call and return the throughput rows."""
    from towhee_recsys import RecommendPipeline, recommend_pipeline

    name = f"{len(workspace.dataset.users):,} users, top {TOP_K} with details"
    if not hasattr(RecommendPipeline, "recommend_batch"):
        return [skipped(SECTION, name, "RecommendPipeline.recommend_batch does not exist in this version")]

    home = workspace.ensure_catalog()
    user_ids = list(workspace.dataset.users)
    with recommend_pipeline(home=home) as recommend:
        recommend.recommend_batch(user_ids[:100], top_k=TOP_K)
        started = time.perf_counter()
        results = recommend.recommend_batch(user_ids, top_k=TOP_K)
        seconds = time.perf_counter() - started
        if len(results) != len(user_ids):
            raise RuntimeError(f"recommend_batch returned {len(results)} lists for {len(user_ids)} users.")

        raw = RawRecommender(recommend.resources)
        try:
            floor_seconds, vectors = _floor(raw, user_ids)
            milvus_seconds = _milvus_only(raw, vectors)
        finally:
            raw.close()

    rate = len(user_ids) / seconds
    target = workspace.is_movielens
    return [
        Row(SECTION, name, rate, "users/s", floor=len(user_ids) / floor_seconds, floor_name="raw parts, NumPy",
            target=f">= {TARGET_RATE:,.0f} users/s" if target else "", passed=rate >= TARGET_RATE if target else None,
            higher_is_better=True, note=f"{seconds:.2f} s for the batch; floor {floor_seconds:.2f} s"),
        Row(SECTION, "pymilvus search of all users, no exclusion", len(user_ids) / milvus_seconds, "users/s",
            note=f"{milvus_seconds:.2f} s, {CHUNK} query vectors per request"),
    ]


def _floor(raw: RawRecommender, user_ids: list[Any]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    pipe = raw.redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(raw.metadata._user_key(user_id, "profile"))
        pipe.smembers(raw.metadata._user_key(user_id, "rated"))
        pipe.hgetall(raw.metadata._user_key(user_id, "online"))
    replies = pipe.execute()

    users, excluded_rows = [], []
    for index, user_id in enumerate(user_ids):
        fields, rated = replies[3 * index], replies[3 * index + 1]
        age, occupation = parse_code(fields.get("age")), parse_code(fields.get("occupation"))
        users.append(User(user_id, fields.get("gender") or None, age, occupation))
        excluded_rows.append([raw.row_of[movie_id] for movie_id in map(raw._parse_id, rated) if movie_id in raw.row_of])
    vectors = raw.model.encode_users(users)

    hits = []
    for start in range(0, len(users), CHUNK):
        scores = vectors[start : start + CHUNK] @ raw.matrix.T
        for offset, rows in enumerate(excluded_rows[start : start + CHUNK]):
            scores[offset, rows] = -np.inf
        if scores.shape[1] > TOP_K:
            best = np.argpartition(-scores, TOP_K, axis=1)[:, :TOP_K]
        else:
            best = np.tile(np.arange(scores.shape[1]), (len(scores), 1))
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        hits.extend(raw.movie_ids[np.take_along_axis(best, order, axis=1)].tolist())

    pipe = raw.redis.pipeline(transaction=False)
    for movie_ids in hits:
        for movie_id in movie_ids:
            pipe.hgetall(raw.metadata._movie_key(movie_id))
    pipe.execute()
    return time.perf_counter() - started, vectors


def _milvus_only(raw: RawRecommender, vectors: np.ndarray) -> float:
    started = time.perf_counter()
    for start in range(0, len(vectors), CHUNK):
        raw.milvus.search(
            raw.collection_name,
            data=list(vectors[start : start + CHUNK]),
            limit=TOP_K,
            anns_field="embedding",
            search_params={"metric_type": "IP"},
            output_fields=["movie_id"],
            consistency_level="Strong",
        )
    return time.perf_counter() - started
