"""Single recommend latency through recommend_pipeline, next to its raw parts and exact NumPy scoring."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchlib.report import Row
from benchlib.timing import percentile_ms
from benchlib.workspace import Workspace, raw_milvus_client, raw_redis_client
from towhee_recsys.data.dataset import User

logger = logging.getLogger("bench")

SECTION = "latency"
TOP_K = 10
RATIO_TARGET = 1.2
# Users per block of the latency loop, and the pause after each block (see `measure`).
BLOCK_CALLS = 25
SETTLE_SECONDS = 0.3
NOTES = [
    "**latency**: `recommend_pipeline()(user_id, top_k=10)` for random known users (excluding the movies each "
    "rated). Its floor is the sum of the medians of its raw parts, timed in the same loop on the same users: "
    "one redis-py round trip for the user's "
    "profile, rated set and online ratings, `model.encode_users()` for one user, pymilvus `search` with the "
    "same parameters (limit 10, IP, Strong consistency, the same `movie_id not in [...]` expression) and one "
    "redis-py round trip for the 10 hits' details. Pipeline and floor alternate in blocks of 25 users with "
    "a 0.3 s pause in between, so that the spinning OpenMP threads of one's Paddle calls do not slow the other. "
    "The NumPy rows replace the Milvus search by an exact inner product over all movie vectors with the same "
    "exclusion. CPU time counts every thread of the benchmark process, which includes Milvus Lite's server "
    "but not Redis.",
]


@dataclass
class Timings:
    """Per-call durations in seconds, by what was timed."""

    pipeline: list[float]
    floor: list[float]
    numpy_path: list[float]
    parts: dict[str, list[float]]
    pipeline_cpu: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)
    same_top_k: int = 0


class RawRecommender:
    """The recommendation steps done with redis-py, Paddle, pymilvus and NumPy directly.

    Key names come from the metadata store's private key helpers, so the raw reads
    touch exactly the keys the pipeline reads.
    """

    def __init__(self, resources: Any) -> None:
        self.model = resources.model
        self.metadata = resources.metadata_store
        self.vector_store = resources.vector_store
        self.collection_name = resources.vector_store.collection_name
        self.id_type = self.model.vocabularies.id_type
        self.redis = raw_redis_client(self.metadata)
        self.milvus = raw_milvus_client(self.vector_store)

        ids = self.vector_store.ids()
        embeddings = self.vector_store.get_embeddings(ids)
        self.movie_ids = np.asarray(ids, dtype=object)
        self.matrix = np.stack([embeddings[movie_id] for movie_id in ids]).astype(np.float32)
        self.row_of = {movie_id: row for row, movie_id in enumerate(ids)}

    def close(self) -> None:
        self.redis.close()
        self.milvus.close()

    def profile(self, user_id: Any) -> tuple[User, list[Any]]:
        # The same three keys the metadata store's get_user reads: demographics, rated
        # movies and the ratings recorded online since the last ingest.
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.metadata._user_key(user_id, "profile"))
        pipe.smembers(self.metadata._user_key(user_id, "rated"))
        pipe.hgetall(self.metadata._user_key(user_id, "online"))
        fields, rated, _ = pipe.execute()
        age, occupation = parse_code(fields.get("age")), parse_code(fields.get("occupation"))
        user = User(user_id, fields.get("gender") or None, age, occupation)
        return user, [self._parse_id(text) for text in rated]

    def encode(self, user: User) -> np.ndarray:
        return self.model.encode_users([user])[0]

    def milvus_search(self, vector: np.ndarray, rated: list[Any]) -> list[Any]:
        expression = ""
        if rated:
            literals = ", ".join(json.dumps(movie_id) for movie_id in sorted(rated))
            expression = f"movie_id not in [{literals}]"
        result = self.milvus.search(
            self.collection_name,
            data=[vector],
            limit=TOP_K,
            filter=expression,
            anns_field="embedding",
            search_params={"metric_type": "IP"},
            output_fields=["movie_id"],
            consistency_level="Strong",
        )
        return [hit["movie_id"] for hit in result[0]]

    def numpy_search(self, vector: np.ndarray, rated: list[Any]) -> list[Any]:
        scores = self.matrix @ vector
        excluded = [self.row_of[movie_id] for movie_id in rated if movie_id in self.row_of]
        scores[excluded] = -np.inf
        best = np.argpartition(-scores, TOP_K)[:TOP_K] if len(scores) > TOP_K else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return self.movie_ids[best].tolist()

    def details(self, movie_ids: list[Any]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for movie_id in movie_ids:
            pipe.hgetall(self.metadata._movie_key(movie_id))
        return pipe.execute()

    def _parse_id(self, text: str) -> Any:
        return int(text) if self.id_type == "int" else text


def parse_code(text: str | None) -> Any:
    """Return a stored demographic value: None for "", an int for an integer text, else the text."""
    if not text:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _timed_with_cpu(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """Return the result, the wall seconds and the CPU seconds of every thread of this process."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def measure(recommend: Any, raw: RawRecommender, user_ids: list[Any], warmup: int) -> Timings:
    """Time the pipeline, the raw floor and the NumPy path on the same users, in alternating blocks.

    Each block of BLOCK_CALLS users runs through the pipeline, and the same users through
    the floor and the NumPy path, in alternating order. A pause of SETTLE_SECONDS
    separates the blocks. Paddle's OpenMP threads keep spinning after their calling
    thread's last call (Intel OpenMP's KMP_BLOCKTIME, 200 ms by default). When calls
    alternated one by one, the pipeline's encodes in Towhee pool threads slowed the
    floor's encodes in the main thread from under 1 ms to about 10 ms.
    """
    timings = Timings([], [], [], {name: [] for name in ("profile", "encode", "milvus", "numpy", "details")})
    for block, start in enumerate(range(0, len(user_ids), BLOCK_CALLS)):
        users = user_ids[start : start + BLOCK_CALLS]
        if block % 2:
            floor_results = _floor_block(raw, users)
            pipeline_results = _pipeline_block(recommend, users)
        else:
            pipeline_results = _pipeline_block(recommend, users)
            floor_results = _floor_block(raw, users)

        for offset, (pipeline_result, floor_result) in enumerate(zip(pipeline_results, floor_results, strict=True)):
            if start + offset < warmup:
                continue
            pipeline_hits, pipeline_seconds, pipeline_cpu = pipeline_result
            floor_hits, part_seconds, floor_seconds, floor_cpu, numpy_hits, numpy_search, numpy_seconds = floor_result
            timings.pipeline.append(pipeline_seconds)
            timings.floor.append(floor_seconds)
            timings.pipeline_cpu.append(pipeline_cpu)
            timings.floor_cpu.append(floor_cpu)
            timings.numpy_path.append(numpy_seconds)
            for name, seconds in zip(("profile", "encode", "milvus", "details"), part_seconds, strict=True):
                timings.parts[name].append(seconds)
            timings.parts["numpy"].append(numpy_search)
            timings.same_top_k += int(pipeline_hits == numpy_hits == floor_hits)
    return timings


def _pipeline_block(recommend: Any, user_ids: list[Any]) -> list[tuple[list[Any], float, float]]:
    def pipeline_call(user_id: Any) -> list[Any]:
        return [item.movie_id for item in recommend(user_id, top_k=TOP_K)]

    results = [_timed_with_cpu(lambda user_id=user_id: pipeline_call(user_id)) for user_id in user_ids]
    time.sleep(SETTLE_SECONDS)
    return results


def _floor_block(raw: RawRecommender, user_ids: list[Any]) -> list[tuple]:
    def floor_call(user_id: Any) -> tuple[list[Any], list[float]]:
        (user, rated), profile_seconds = _timed(raw.profile, user_id)
        vector, encode_seconds = _timed(raw.encode, user)
        hits, search_seconds = _timed(raw.milvus_search, vector, rated)
        _, details_seconds = _timed(raw.details, hits)
        return hits, [profile_seconds, encode_seconds, search_seconds, details_seconds]

    results = []
    for user_id in user_ids:
        (hits, part_seconds), seconds, cpu = _timed_with_cpu(lambda user_id=user_id: floor_call(user_id))

        started = time.perf_counter()
        user, rated = raw.profile(user_id)
        vector = raw.encode(user)
        numpy_hits, numpy_search = _timed(raw.numpy_search, vector, rated)
        raw.details(numpy_hits)
        numpy_seconds = time.perf_counter() - started
        results.append((hits, part_seconds, seconds, cpu, numpy_hits, numpy_search, numpy_seconds))
    time.sleep(SETTLE_SECONDS)
    return results


def run(workspace: Workspace, calls: int, warmup: int, seed: int) -> list[Row]:
    """Measure `calls` single recommendations (after `warmup` more) and return the latency rows."""
    from towhee_recsys import recommend_pipeline

    home = workspace.ensure_catalog()
    rng = np.random.default_rng(seed)
    known = list(workspace.dataset.users)
    user_ids = [known[index] for index in rng.integers(0, len(known), size=warmup + calls)]

    with recommend_pipeline(home=home) as recommend:
        raw = RawRecommender(recommend.resources)
        try:
            timings = measure(recommend, raw, user_ids, warmup)
        finally:
            raw.close()

    p50 = percentile_ms(timings.pipeline, 50)
    workspace.results["pipeline_p50_ms"] = p50
    workspace.results["pipeline_p99_ms"] = percentile_ms(timings.pipeline, 99)
    return rows_of(timings, calls)


def rows_of(timings: Timings, calls: int) -> list[Row]:
    """Build the latency rows from the measured durations.

    The target compares with the sum of the raw parts' medians. The median of whole raw
    calls is reported too, but it is less stable: on 2 cores, OpenMP threads of Paddle
    and of Milvus Lite's search that are still spinning slow some calls' other parts.
    """
    p50, p99 = percentile_ms(timings.pipeline, 50), percentile_ms(timings.pipeline, 99)
    floor_p50, floor_p99 = percentile_ms(timings.floor, 50), percentile_ms(timings.floor, 99)
    parts = {name: percentile_ms(values, 50) for name, values in timings.parts.items()}
    part_names = ("profile", "encode", "milvus", "details")
    parts_p50 = sum(parts[name] for name in part_names)
    breakdown = ", ".join(f"{name} {parts[name]:.2f}" for name in part_names)
    return [
        Row(SECTION, "recommend p50, pipeline", p50, "ms", floor=parts_p50, floor_name="sum of raw parts' p50",
            target=f"<= {RATIO_TARGET:g} x floor", passed=p50 <= RATIO_TARGET * parts_p50,
            note=f"{calls} calls; raw parts p50 (ms): {breakdown}"),
        Row(SECTION, "recommend p50, pipeline vs whole raw calls", p50, "ms", floor=floor_p50,
            floor_name="raw parts, per call"),
        Row(SECTION, "recommend p99, pipeline", p99, "ms", floor=floor_p99, floor_name="raw parts, per call"),
        Row(SECTION, "recommend CPU time p50, pipeline", percentile_ms(timings.pipeline_cpu, 50), "ms",
            floor=percentile_ms(timings.floor_cpu, 50), floor_name="raw parts",
            note="CPU seconds of all threads of the process (Milvus Lite runs in it; Redis does not)"),
        Row(SECTION, "search step p50, pymilvus", parts["milvus"], "ms", floor=parts["numpy"],
            floor_name="NumPy exact", note="same query vectors and exclusions"),
        Row(SECTION, "recommend p50, pipeline vs NumPy path", p50, "ms",
            floor=percentile_ms(timings.numpy_path, 50), floor_name="raw parts, NumPy search"),
        Row(SECTION, "same top 10 as NumPy", 100.0 * timings.same_top_k / max(calls, 1), "%",
            note="pipeline, raw pymilvus and NumPy return the same ids in the same order"),
    ]
