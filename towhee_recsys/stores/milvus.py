"""Movie vectors in Milvus: Milvus Lite on a local path, or a Milvus server.

Collection schema (``towhee_recsys_movies`` by default):

    movie_id   primary key, INT64 (id_type="int") or VARCHAR(512 bytes) (id_type="str")
    embedding  FLOAT_VECTOR(dim), unit norm, FLAT index with metric IP
    genres     ARRAY of VARCHAR, at most 64 genres of at most 64 bytes each
    year       INT64, -1 when the year is unknown

The FLAT index compares the query with every stored vector, so search results are
exact and equal a NumPy inner-product ranking. At catalog sizes of tens of
thousands of movies that costs little. Every request uses consistency level "Strong", so a
vector is searchable as soon as `upsert` returns.

Milvus Lite (pymilvus 3.0 with milvus-lite 3.2) runs inside this process and
holds an exclusive lock on its ``.db`` folder, so one process at a time can open a
path. `MilvusVectorStore.close()` of the last store on a path in this process
stops the embedded server and releases that lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from towhee_recsys.data.dataset import Id
from towhee_recsys.errors import InvalidParameterError, StoreError, StoreLockedError
from towhee_recsys.settings import DEFAULT_COLLECTION_NAME
from towhee_recsys.stores.base import (
    SearchHit,
    VectorStore,
    check_id_type,
    check_timeout,
    check_unique_ids,
    check_vectors,
    normalize_ids,
    redact_uri,
)
from towhee_recsys.validation import check_positive_int, invalid_parameter

if TYPE_CHECKING:
    from pymilvus import MilvusClient

logger = logging.getLogger(__name__)

SERVER_PREFIXES = ("http://", "https://", "tcp://", "unix:")
LITE_SUFFIX = ".db"

ID_FIELD = "movie_id"
VECTOR_FIELD = "embedding"
GENRES_FIELD = "genres"
YEAR_FIELD = "year"
UNKNOWN_YEAR = -1
METRIC_TYPE = "IP"
INDEX_TYPE = "FLAT"
CONSISTENCY = "Strong"

STR_ID_MAX_BYTES = 512
MAX_GENRES = 64
GENRE_MAX_BYTES = 64
# Maximum topk of a Milvus server search (milvus.io/docs/limitations.md). Milvus
# Lite 3.2 does not check it, but the same clamp keeps both backends alike.
MAX_TOP_K = 16384
# Query vectors per search request, well below Milvus' maximum nq of 16384.
MAX_QUERIES_PER_REQUEST = 1024
# Ids per `movie_id in [...]` expression of get_embeddings and delete.
ID_BATCH_SIZE = 1000

# Number of open MilvusVectorStore clients per Milvus Lite path in this process.
_lite_users: dict[str, int] = {}
_lite_users_lock = threading.Lock()


def milvus_uri_kind(uri: str) -> str | None:
    """Return "server" or "lite" for a supported Milvus URI, else None."""
    if uri.startswith(SERVER_PREFIXES):
        return "server"
    if uri.endswith(LITE_SUFFIX) and "://" not in uri:
        return "lite"
    return None


class MilvusVectorStore(VectorStore):
    """Movie embeddings in one Milvus collection, searched by inner product.

    Args:
        uri: a local path ending in ``.db`` for Milvus Lite (its parent folder is
            created), or a server URI starting with http://, https://, tcp:// or unix:.
        collection_name: Milvus collection of the movie vectors.
        dim: embedding dimension. An existing collection must have the same.
        id_type: "int" (INT64 primary key) or "str" (VARCHAR primary key).
        token: server credential ``user:password`` or API key. It is never logged.
        db_name: Milvus database on a server. Empty means the default database.
        timeout: seconds each Milvus request may take.

    The constructor only checks its arguments. The connection opens on first use.
    """

    def __init__(
        self,
        uri: str,
        *,
        collection_name: str = DEFAULT_COLLECTION_NAME,
        dim: int = 256,
        id_type: str = "int",
        token: str = "",
        db_name: str = "",
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(uri, str) or milvus_uri_kind(uri) is None:
            raise unsupported_milvus_uri(uri)
        if not isinstance(collection_name, str) or not collection_name:
            raise invalid_parameter("collection_name", "a non-empty string", collection_name)
        self.uri = uri
        self.collection_name = collection_name
        self.dim = check_positive_int("dim", dim)
        self.id_type = check_id_type(id_type)
        self.token = token
        self.db_name = db_name
        self.timeout = check_timeout("timeout", timeout)

        self._lite_path = (
            str(Path(uri).expanduser().absolute()) if milvus_uri_kind(uri) == "lite" else None
        )
        self._lock = threading.Lock()
        self._client: MilvusClient | None = None
        self._collection_ready = False

    # ----- lifecycle -----

    def open(self) -> None:
        """Connect, create the collection when missing, check its schema and load it."""
        with self._lock:
            client = self._connect()
            if self._collection_ready:
                return
            try:
                self._prepare_collection(client)
            except BaseException:
                # A failed open keeps nothing open, so the Milvus Lite lock is free again.
                self._disconnect()
                raise
            self._collection_ready = True

    def close(self) -> None:
        """Close the client. The last store on a Milvus Lite path releases its lock."""
        with self._lock:
            self._disconnect()

    def drop(self) -> None:
        """Drop the collection and all its vectors. The next use creates it again.

        Works on a collection of another dimension or id type, which is the fix
        for the schema mismatch error.
        """
        with self._lock:
            client = self._connect()
            with self._errors("drop_collection"):
                if client.has_collection(self.collection_name, timeout=self.timeout):
                    client.drop_collection(self.collection_name, timeout=self.timeout)
            self._collection_ready = False
        logger.info("Dropped Milvus collection %s at %s", self.collection_name, self._uri_text)

    # ----- writes -----

    def upsert(
        self,
        movie_ids: Sequence[Id],
        embeddings: np.ndarray,
        genres: Sequence[Sequence[str]],
        years: Sequence[int | None],
        *,
        batch_size: int = 1000,
    ) -> int:
        """Insert or replace one row per movie id and return the number of rows written.

        Raises InvalidParameterError when the arrays disagree in length, when
        `embeddings` is not a finite (n, dim) array of unit-norm rows, when an id
        repeats, or when genres or years do not fit the schema.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        ids = normalize_ids(movie_ids, self.id_type)
        vectors = check_vectors(embeddings, self.dim, rows=len(ids), unit_norm=True)
        _check_same_length(ids, genres, years)
        check_unique_ids(ids)
        self._check_str_ids(ids)
        rows = [
            {
                ID_FIELD: movie_id,
                VECTOR_FIELD: vector,
                GENRES_FIELD: _genre_list(names),
                YEAR_FIELD: _year_value(year),
            }
            for movie_id, vector, names, year in zip(ids, vectors, genres, years, strict=True)
        ]

        client = self._ready_client()
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            with self._errors("upsert"):
                client.upsert(self.collection_name, batch, timeout=self.timeout)
            logger.debug("Upserted %d rows into %s", len(batch), self.collection_name)
        return len(rows)

    def delete(self, ids: Sequence[Id]) -> int:
        """Delete the given movie ids and return how many of them existed."""
        requested = list(dict.fromkeys(normalize_ids(ids, self.id_type)))
        client = self._ready_client()
        deleted = 0
        for start in range(0, len(requested), ID_BATCH_SIZE):
            existing = self._existing_ids(client, requested[start : start + ID_BATCH_SIZE])
            if not existing:
                continue
            with self._errors("delete"):
                client.delete(self.collection_name, filter=_in_expr(existing), timeout=self.timeout)
            deleted += len(existing)
        return deleted

    # ----- reads -----

    def search(
        self,
        embeddings: np.ndarray,
        top_k: int,
        *,
        exclude: Sequence[Sequence[Id]] | None = None,
        filter: str = "",
    ) -> list[list[SearchHit]]:
        """Return the `top_k` highest inner-product hits of each query vector.

        Args:
            embeddings: (m, dim) query vectors. They need not have unit norm.
            top_k: hits per query, at least 1. Milvus returns at most 16384 hits per
                query, so a larger value is clamped to 16384.
            exclude: for query i, movie ids that must not be returned. Milvus
                removes them inside the search, so each query still gets
                min(top_k, number of matching rows) hits.
            filter: a Milvus boolean expression on genres/year (for example
                ``year >= 1990``), combined with `exclude` by ``and``.

        Returns:
            One list per query vector, hits ordered by descending score, no movie
            id twice.
        """
        queries = check_vectors(embeddings, self.dim)
        limit = min(check_positive_int("top_k", top_k), MAX_TOP_K)
        if not isinstance(filter, str):
            raise invalid_parameter("filter", "a Milvus filter expression string", filter)
        excluded = self._check_exclude(exclude, len(queries))

        client = self._ready_client()
        results: list[list[SearchHit]] = [[] for _ in range(len(queries))]
        for expression, rows in _group_by_filter(excluded, filter).items():
            for start in range(0, len(rows), MAX_QUERIES_PER_REQUEST):
                chunk = rows[start : start + MAX_QUERIES_PER_REQUEST]
                hits = self._search_chunk(client, queries[chunk], limit, expression)
                for row, row_hits in zip(chunk, hits, strict=True):
                    results[row] = row_hits
        return results

    def count(self) -> int:
        """Return the exact number of stored vectors (a Strong-consistency count(*))."""
        client = self._ready_client()
        with self._errors("count"):
            result = client.query(
                self.collection_name,
                filter="",
                output_fields=["count(*)"],
                consistency_level=CONSISTENCY,
                timeout=self.timeout,
            )
        return int(result[0]["count(*)"])

    def ids(self, *, page_size: int = 1000) -> list[Id]:
        """Return every stored movie id in ascending order, read in pages of `page_size`.

        Pages follow the primary key (``movie_id > last id of the previous page``).
        pymilvus' own query_iterator is not used because it does not escape quotes
        or backslashes in string ids.
        """
        page_size = check_positive_int("page_size", page_size)
        client = self._ready_client()
        found: list[Id] = []
        while True:
            page = self._id_page(client, found[-1] if found else None, page_size)
            found.extend(page)
            if len(page) < page_size:
                return found

    def get_embeddings(self, ids: Sequence[Id]) -> dict[Id, np.ndarray]:
        """Return the stored float32 embedding of each id that exists, skipping missing ids."""
        requested = list(dict.fromkeys(normalize_ids(ids, self.id_type)))
        client = self._ready_client()
        embeddings: dict[Id, np.ndarray] = {}
        for start in range(0, len(requested), ID_BATCH_SIZE):
            expression = _in_expr(requested[start : start + ID_BATCH_SIZE])
            with self._errors("query"):
                rows = client.query(
                    self.collection_name,
                    filter=expression,
                    output_fields=[ID_FIELD, VECTOR_FIELD],
                    consistency_level=CONSISTENCY,
                    timeout=self.timeout,
                )
            for row in rows:
                embeddings[row[ID_FIELD]] = np.asarray(row[VECTOR_FIELD], dtype=np.float32)
        return embeddings

    def describe(self) -> dict[str, Any]:
        """Return backend, redacted uri, collection_name, dim, id_type, metric, index and count."""
        return {
            "backend": "milvus-lite" if self._lite_path else "milvus",
            "uri": self._uri_text,
            "collection_name": self.collection_name,
            "dim": self.dim,
            "id_type": self.id_type,
            "metric_type": METRIC_TYPE,
            "index_type": INDEX_TYPE,
            "count": self.count(),
        }

    # ----- connection and collection -----

    @property
    def _uri_text(self) -> str:
        return redact_uri(self.uri)

    def _ready_client(self) -> MilvusClient:
        self.open()
        client = self._client
        if client is None:
            raise StoreError(
                f"The Milvus store for '{self._uri_text}' was closed while in use. "
                "Do not call close() while other threads still search or write."
            )
        return client

    def _disconnect(self) -> None:
        """Close the client if there is one. The caller holds self._lock."""
        client, self._client = self._client, None
        self._collection_ready = False
        if client is None:
            return
        try:
            client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            logger.warning("Closing the Milvus client for %s failed: %s", self._uri_text, exc)
        if self._lite_path is not None:
            _release_lite(self._lite_path)

    def _connect(self) -> MilvusClient:
        """Return the client, creating it on first use. The caller holds self._lock."""
        if self._client is not None:
            return self._client
        if self._lite_path is None:
            self._client = self._new_client(self.uri)
            return self._client

        with _lite_users_lock:
            try:
                Path(self._lite_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create the folder of the Milvus Lite path '{self.uri}': {exc}. "
                    "Point milvus_uri at a writable location."
                ) from exc
            self._client = self._new_client(self._lite_path)
            _lite_users[self._lite_path] = _lite_users.get(self._lite_path, 0) + 1
        logger.info("Opened Milvus Lite at %s", self._lite_path)
        return self._client

    def _new_client(self, uri: str) -> MilvusClient:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        kwargs: dict[str, Any] = {"uri": uri, "timeout": self.timeout}
        if self.token:
            kwargs["token"] = self.token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        try:
            return MilvusClient(**kwargs)
        except MilvusException as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: BaseException) -> StoreError:
        if self._lite_path is not None and (_is_lock_error(exc) or _lock_is_held(self._lite_path)):
            return StoreLockedError(
                f"Milvus Lite data at '{self._lite_path}' is in use by another process. "
                "Close the other recommender/ingest process (or stop the Python kernel that "
                "opened it), or point milvus_uri at a different path or at a Milvus server."
            )
        return StoreError(
            f"Opening Milvus at '{self._uri_text}' failed: {_milvus_message(exc)}. Check that "
            "milvus_uri is a writable Milvus Lite path ending in .db or the URI of a running "
            "Milvus server, and that token and db_name are right."
        )

    def _prepare_collection(self, client: MilvusClient) -> None:
        from pymilvus.client.types import LoadState

        with self._errors("prepare collection"):
            if client.has_collection(self.collection_name, timeout=self.timeout):
                description = client.describe_collection(self.collection_name, timeout=self.timeout)
                self._check_schema(description)
            else:
                self._create_collection(client)
            state = client.get_load_state(self.collection_name, timeout=self.timeout)["state"]
            if state != LoadState.Loaded:
                client.load_collection(self.collection_name, timeout=self.timeout)

    def _create_collection(self, client: MilvusClient) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        if self.id_type == "int":
            schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        else:
            schema.add_field(
                ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=STR_ID_MAX_BYTES
            )
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field(
            GENRES_FIELD,
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=MAX_GENRES,
            max_length=GENRE_MAX_BYTES,
        )
        schema.add_field(YEAR_FIELD, DataType.INT64)

        index_params = client.prepare_index_params()
        index_params.add_index(
            field_name=VECTOR_FIELD, index_type=INDEX_TYPE, metric_type=METRIC_TYPE
        )
        client.create_collection(
            self.collection_name,
            schema=schema,
            consistency_level=CONSISTENCY,
            timeout=self.timeout,
        )
        # Waiting for the index makes pymilvus 3.0 call AllocTimestamp, which Milvus Lite
        # does not implement and logs as an error; the index of an empty collection is
        # ready at once, and load_collection waits for it on a server anyway.
        client.create_index(
            self.collection_name, index_params, timeout=self.timeout, sync=self._lite_path is None
        )
        logger.info(
            "Created Milvus collection %s (dim %d, id_type %s) at %s",
            self.collection_name,
            self.dim,
            self.id_type,
            self._uri_text,
        )

    def _check_schema(self, description: dict[str, Any]) -> None:
        """Raise StoreError when the existing collection differs from this store's schema."""
        from pymilvus import DataType

        fields = {field["name"]: field for field in description.get("fields", [])}
        id_field, vector_field = fields.get(ID_FIELD), fields.get(VECTOR_FIELD)
        if id_field is None or vector_field is None or not id_field.get("is_primary"):
            expected = f"primary key {ID_FIELD!r} and vector field {VECTOR_FIELD!r}"
            self._raise_mismatch(f"fields {sorted(fields)}", expected)

        found_dim = int(vector_field.get("params", {}).get("dim", -1))
        if found_dim != self.dim:
            self._raise_mismatch(f"vector dim {found_dim}", f"dim {self.dim}")

        found_type = "int" if id_field["type"] == DataType.INT64 else "str"
        if found_type != self.id_type:
            self._raise_mismatch(f'id_type "{found_type}"', f'id_type "{self.id_type}"')

    def _raise_mismatch(self, found: str, expected: str) -> None:
        raise StoreError(
            f"Milvus collection '{self.collection_name}' at '{self._uri_text}' has {found}, "
            f"expected {expected}. Drop it with MilvusVectorStore(uri, collection_name="
            f"'{self.collection_name}').drop() (this deletes its vectors) and ingest again, "
            "or use another collection_name."
        )

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Turn pymilvus errors into StoreError naming the operation, collection and uri."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            raise StoreError(
                f"Milvus {operation} on collection '{self.collection_name}' at "
                f"'{self._uri_text}' failed: {_milvus_message(exc)}"
            ) from exc

    # ----- request helpers -----

    def _search_chunk(
        self, client: MilvusClient, queries: np.ndarray, limit: int, expression: str
    ) -> list[list[SearchHit]]:
        with self._errors("search"):
            raw = client.search(
                self.collection_name,
                data=list(queries),
                limit=limit,
                filter=expression,
                anns_field=VECTOR_FIELD,
                search_params={"metric_type": METRIC_TYPE},
                output_fields=[],
                consistency_level=CONSISTENCY,
                timeout=self.timeout,
            )
        return [_to_hits(hits) for hits in raw]

    def _id_page(self, client: MilvusClient, after: Id | None, page_size: int) -> list[Id]:
        # NOTE: iterator="True" makes the server return pages sorted by primary key,
        # which pymilvus' query_iterator relies on too. Checked on Milvus Lite 3.2 only.
        expression = "" if after is None else f"{ID_FIELD} > {_id_literal(after)}"
        with self._errors("query ids"):
            rows = client.query(
                self.collection_name,
                filter=expression,
                output_fields=[ID_FIELD],
                limit=page_size,
                iterator="True",
                reduce_stop_for_best="True",
                consistency_level=CONSISTENCY,
                timeout=self.timeout,
            )
        page = [row[ID_FIELD] for row in rows]
        sequence = page if after is None else [after, *page]
        if any(later <= earlier for earlier, later in zip(sequence, sequence[1:], strict=False)):
            raise StoreError(
                f"Milvus returned movie ids of collection '{self.collection_name}' out of "
                "primary-key order, so ids() cannot page through them."
            )
        return page

    def _existing_ids(self, client: MilvusClient, ids: list[Id]) -> list[Id]:
        with self._errors("query"):
            rows = client.query(
                self.collection_name,
                filter=_in_expr(ids),
                output_fields=[ID_FIELD],
                consistency_level=CONSISTENCY,
                timeout=self.timeout,
            )
        return [row[ID_FIELD] for row in rows]

    def _check_exclude(
        self, exclude: Sequence[Sequence[Id]] | None, n_queries: int
    ) -> list[tuple[Id, ...]]:
        if exclude is None:
            return [()] * n_queries
        if len(exclude) != n_queries:
            raise invalid_parameter(
                "exclude", f"one id list per query vector ({n_queries})", f"{len(exclude)} lists"
            )
        return [tuple(sorted(set(normalize_ids(ids, self.id_type, "exclude")))) for ids in exclude]

    def _check_str_ids(self, ids: list[Id]) -> None:
        if self.id_type != "str":
            return
        for movie_id in ids:
            if not movie_id or len(movie_id.encode("utf-8")) > STR_ID_MAX_BYTES:
                expected = f"a non-empty string of at most {STR_ID_MAX_BYTES} UTF-8 bytes"
                raise invalid_parameter("movie_id", expected, movie_id)


def unsupported_milvus_uri(uri: Any) -> InvalidParameterError:
    """Build the InvalidParameterError for a uri that names no Milvus backend."""
    return invalid_parameter(
        "milvus uri",
        "a Milvus Lite path ending in '.db' (e.g. ~/.towhee_recsys/milvus.db) or a Milvus "
        "server URI starting with http://, https://, tcp:// or unix:",
        redact_uri(uri) if isinstance(uri, str) else uri,
    )


# ----- Milvus Lite process registry -----


def _release_lite(path: str) -> None:
    """Forget one user of `path`. The last one stops the embedded server and its lock."""
    from milvus_lite.server_manager import server_manager_instance

    with _lite_users_lock:
        remaining = _lite_users.get(path, 0) - 1
        if remaining > 0:
            _lite_users[path] = remaining
            return
        _lite_users.pop(path, None)
        # NOTE: this also stops the server for any MilvusClient that other code in
        # this process opened on the same path.
        server_manager_instance.release_server(path)
    logger.info("Closed Milvus Lite at %s", path)


def _is_lock_error(exc: BaseException) -> bool:
    """Return True if `exc` or an exception it was raised from reports a held data lock."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "DataDirLockedError" or "holds the lock" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _lock_is_held(path: str) -> bool:
    """Return True if another process holds the flock on Milvus Lite's LOCK file in `path`.

    pymilvus 3.0 reports a held lock only as "Open local milvus failed" without
    the milvus-lite DataDirLockedError as cause, so the lock is probed directly.
    """
    lock_path = os.path.join(path, "LOCK")
    if not os.path.exists(lock_path):
        return False
    try:
        import fcntl
    except ImportError:  # Windows: milvus-lite locks with msvcrt there.
        return False
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ----- input checks -----


def _check_same_length(ids: list[Id], genres: Sequence[Any], years: Sequence[Any]) -> None:
    for name, values in (("genres", genres), ("years", years)):
        if len(values) != len(ids):
            expected = f"{len(ids)} entries, one per movie id"
            raise invalid_parameter(name, expected, f"{len(values)} entries")


def _genre_list(names: Any) -> list[str]:
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise invalid_parameter("genres", "a list of genre strings per movie", names)
    if len(names) > MAX_GENRES:
        raise invalid_parameter("genres", f"at most {MAX_GENRES} genres per movie", len(names))
    for name in names:
        if len(name.encode("utf-8")) > GENRE_MAX_BYTES:
            expected = f"names of at most {GENRE_MAX_BYTES} UTF-8 bytes"
            raise invalid_parameter("genres", expected, name)
    return list(names)


def _year_value(year: Any) -> int:
    if year is None:
        return UNKNOWN_YEAR
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)) or year < 0:
        raise invalid_parameter("years", "an integer >= 0 or None per movie", year)
    return int(year)


# ----- filter expressions -----


def _id_literal(movie_id: Id) -> str:
    """Return `movie_id` as a Milvus expression literal, quoting and escaping strings."""
    if isinstance(movie_id, str):
        escaped = movie_id.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'
    return str(int(movie_id))


def _in_expr(ids: Sequence[Id], *, negate: bool = False) -> str:
    operator = "not in" if negate else "in"
    return f"{ID_FIELD} {operator} [{', '.join(_id_literal(movie_id) for movie_id in ids)}]"


def _group_by_filter(excluded: list[tuple[Id, ...]], user_filter: str) -> dict[str, list[int]]:
    """Map each distinct filter expression to the query rows that use it."""
    groups: dict[str, list[int]] = {}
    for row, ids in enumerate(excluded):
        parts = [f"({user_filter})"] if user_filter.strip() else []
        if ids:
            parts.append(_in_expr(ids, negate=True))
        groups.setdefault(" and ".join(parts), []).append(row)
    return groups


def _to_hits(raw_hits: Any) -> list[SearchHit]:
    """Convert one query's pymilvus hits, dropping repeated ids and keeping the best score."""
    hits: list[SearchHit] = []
    seen: set[Id] = set()
    for hit in raw_hits:
        movie_id = hit[ID_FIELD]
        if movie_id in seen:
            continue
        seen.add(movie_id)
        hits.append(SearchHit(movie_id=movie_id, score=float(hit["distance"])))
    hits.sort(key=lambda hit: -hit.score)
    return hits


def _milvus_message(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc)
