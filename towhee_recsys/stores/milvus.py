"""Movie vectors in Milvus: Milvus Lite on a local path, or a Milvus server.

Collection schema (``towhee_recsys_movies`` by default):

    movie_id   primary key, INT64 (id_type="int") or VARCHAR(512 bytes) (id_type="str")
    embedding  FLOAT_VECTOR(dim), unit norm, FLAT index with metric IP
    genres     ARRAY of VARCHAR, at most 64 genres of at most 64 bytes each
    year       INT64, -1 when the year is unknown

`genres` and `year` let a search filter movies inside the vector query (see
`filter_expression`). A collection without them, made by an older version,
raises StoreError on open: drop it and ingest again.

The FLAT index compares the query with every stored vector, so search results are
exact and equal a NumPy inner-product ranking. At catalog sizes of tens of
thousands of movies that costs little. Every request uses consistency level "Strong", so a
vector is searchable as soon as `upsert` returns.

Milvus Lite (pymilvus 3.0 with milvus-lite 3.2) runs inside this process and
holds an exclusive lock on its ``.db`` folder, so one process at a time can open a
path. `MilvusVectorStore.close()` of the last store on a path in this process
stops the embedded server and releases that lock.

A Milvus server is named by ``http://[user:password@]host:port[?db_name=NAME]`` (or
https://, tcp://, unix:). Credentials in the URI become the pymilvus token
``user:password`` and are removed from the URI given to pymilvus. Without them, the
token comes from the `token` argument, else from $TOWHEE_RECSYS_MILVUS_TOKEN. Every
request is retried `retries` times on transient errors (server unreachable, request
timed out, collection not loaded after a server restart), on a new client each
time, with exponential backoff from 0.2 s. After the last retry the store raises
StoreError, and the same store object works again once the server is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

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
# Up to this many query vectors that exclude ids are searched one request each, with
# the ids in a `not in` expression. More are searched in shared requests that ask for
# extra hits and drop the excluded ids afterwards (see `_search_excluding`).
MAX_EXPRESSION_EXCLUSIONS = 2
# Extra hits per query in the first shared request, as a multiple of top_k. Each later
# round requests EXTRA_HITS_GROWTH times more, up to top_k + the number of excluded ids.
FIRST_EXTRA_HITS = 1
EXTRA_HITS_GROWTH = 4
# Ids per `movie_id in [...]` expression of get_embeddings and delete.
ID_BATCH_SIZE = 1000

TOKEN_ENV = "TOWHEE_RECSYS_MILVUS_TOKEN"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 5.0
# Minimum seconds load_collection waits for the server to load a collection. In a
# test run, a fresh Milvus 2.3.5 standalone took more than 3 s for an empty one.
MIN_LOAD_TIMEOUT = 60.0
# Minimum seconds an upsert waits for Milvus Lite. Milvus Lite 3.2 writes its memory
# table (128 MiB, about 125,000 movies) to disk inside the insert that fills it. That
# insert took 8 to 10 s on 2 cores and over 10 s on a busy machine, where the default
# timeout failed an ingest of a million movies.
MIN_LITE_WRITE_TIMEOUT = 120.0
# pymilvus code for "cannot connect" and the Milvus 2.3+ server code for "collection
# not loaded", which a restarted server returns until the collection is loaded again.
CONNECT_FAILED_CODE = 2
COLLECTION_NOT_LOADED_CODE = 101
# Texts of transient pymilvus errors without a distinctive code. pymilvus reports
# "Retry timeout" when its own retry loop ran out of time, and "closed channel" when
# a request ran on a gRPC channel that another thread closed.
TRANSIENT_MESSAGES = ("Retry timeout", "closed channel", "collection not loaded")

T = TypeVar("T")

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
            created), or a server URI starting with http://, https://, tcp:// or
            unix:. A server URI may contain ``user:password@`` and ``?db_name=NAME``.
        collection_name: Milvus collection of the movie vectors.
        dim: embedding dimension. An existing collection must have the same.
        id_type: "int" (INT64 primary key) or "str" (VARCHAR primary key).
        token: server credential ``user:password`` or API key, used when the URI has
            no credentials. Empty means $TOWHEE_RECSYS_MILVUS_TOKEN, if set. It is
            never logged.
        db_name: Milvus database on a server, instead of ``?db_name=`` in the URI.
            Empty means the default database.
        timeout: seconds for connecting and for each Milvus request. Loading the
            collection may take up to max(timeout, 60) seconds.
        retries: retries of a request after a transient error, each on a new client.

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
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if not isinstance(uri, str) or milvus_uri_kind(uri) is None:
            raise unsupported_milvus_uri(uri)
        if not isinstance(collection_name, str) or not collection_name:
            raise invalid_parameter("collection_name", "a non-empty string", collection_name)
        for name, value in (("token", token), ("db_name", db_name)):
            if not isinstance(value, str):
                raise invalid_parameter(name, "a string", type(value).__name__)
        self.uri = uri
        self.collection_name = collection_name
        self.dim = check_positive_int("dim", dim)
        self.id_type = check_id_type(id_type)
        self.timeout = check_timeout("timeout", timeout)
        self.retries = _check_retries(retries)

        self._lite_path: str | None = None
        if milvus_uri_kind(uri) == "lite":
            self._lite_path = str(Path(uri).expanduser().absolute())
            self._client_uri, self._token, self.db_name = self._lite_path, token, db_name
        else:
            self._client_uri, self._token, self.db_name = _server_connection(uri, token, db_name)
        self._lock = threading.Lock()
        self._client: MilvusClient | None = None
        self._collection_ready = False

    def __repr__(self) -> str:
        return (
            f"MilvusVectorStore(uri={self._uri_text!r}, collection_name={self.collection_name!r}, "
            f"dim={self.dim}, id_type={self.id_type!r})"
        )

    # ----- lifecycle -----

    def open(self) -> None:
        """Connect, create the collection when missing, check its schema and load it.

        Transient errors are retried like every request. Later calls do nothing.
        """
        self._request("open", lambda client: None)

    def close(self) -> None:
        """Close the client. The last store on a Milvus Lite path releases its lock."""
        with self._lock:
            self._disconnect()

    def drop(self) -> None:
        """Drop the collection and all its vectors. The next use creates it again.

        Works on a collection of another dimension or id type, which is the fix
        for the schema mismatch error.
        """

        def drop_collection(client: MilvusClient) -> None:
            if client.has_collection(self.collection_name, timeout=self.timeout):
                client.drop_collection(self.collection_name, timeout=self.timeout)

        self._request("drop_collection", drop_collection, prepare=False)
        with self._lock:
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

        timeout = max(self.timeout, MIN_LITE_WRITE_TIMEOUT) if self._lite_path else self.timeout
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            # Upserting the same rows again after a lost reply writes the same data.
            self._request("upsert", partial(_upsert, self.collection_name, batch, timeout))
            logger.debug("Upserted %d rows into %s", len(batch), self.collection_name)
        return len(rows)

    def delete(self, ids: Sequence[Id]) -> int:
        """Delete the given movie ids and return how many of them existed."""
        requested = list(dict.fromkeys(normalize_ids(ids, self.id_type)))
        deleted = 0
        for start in range(0, len(requested), ID_BATCH_SIZE):
            existing = self._existing_ids(requested[start : start + ID_BATCH_SIZE])
            if not existing:
                continue
            self._request(
                "delete", partial(_delete, self.collection_name, _in_expr(existing), self.timeout)
            )
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
        user_filter = f"({filter})" if filter.strip() else ""

        results: list[list[SearchHit]] = [[] for _ in range(len(queries))]
        plain = [row for row, ids in enumerate(excluded) if not ids]
        excluding = [row for row, ids in enumerate(excluded) if ids]
        self._search_rows(queries, plain, limit, user_filter, results)
        if len(excluding) <= MAX_EXPRESSION_EXCLUSIONS:
            for row in excluding:
                expression = _and(user_filter, _in_expr(excluded[row], negate=True))
                self._search_rows(queries, [row], limit, expression, results)
        else:
            self._search_excluding(queries, excluding, limit, user_filter, excluded, results)
        return results

    def count(self) -> int:
        """Return the exact number of stored vectors (a Strong-consistency count(*))."""
        result = self._request(
            "count", partial(_query, self.collection_name, "", ["count(*)"], self.timeout)
        )
        return int(result[0]["count(*)"])

    def ids(self, *, page_size: int = 1000) -> list[Id]:
        """Return every stored movie id in ascending order, read in pages of `page_size`.

        Pages follow the primary key (``movie_id > last id of the previous page``).
        pymilvus' own query_iterator is not used because it does not escape quotes
        or backslashes in string ids.
        """
        page_size = check_positive_int("page_size", page_size)
        found: list[Id] = []
        while True:
            page = self._id_page(found[-1] if found else None, page_size)
            found.extend(page)
            if len(page) < page_size:
                return found

    def get_embeddings(self, ids: Sequence[Id]) -> dict[Id, np.ndarray]:
        """Return the stored float32 embedding of each id that exists, skipping missing ids."""
        requested = list(dict.fromkeys(normalize_ids(ids, self.id_type)))
        embeddings: dict[Id, np.ndarray] = {}
        for start in range(0, len(requested), ID_BATCH_SIZE):
            expression = _in_expr(requested[start : start + ID_BATCH_SIZE])
            rows = self._request(
                "query",
                partial(_query, self.collection_name, expression, [ID_FIELD, VECTOR_FIELD], self.timeout),
            )
            for row in rows:
                embeddings[row[ID_FIELD]] = np.asarray(row[VECTOR_FIELD], dtype=np.float32)
        return embeddings

    def get_filter_fields(self, ids: Sequence[Id]) -> dict[Id, tuple[tuple[str, ...], int | None]]:
        """Return the stored genres and year (None when unknown) of each id that exists."""
        requested = list(dict.fromkeys(normalize_ids(ids, self.id_type)))
        fields: dict[Id, tuple[tuple[str, ...], int | None]] = {}
        for start in range(0, len(requested), ID_BATCH_SIZE):
            expression = _in_expr(requested[start : start + ID_BATCH_SIZE])
            rows = self._request(
                "query",
                partial(_query, self.collection_name, expression, [ID_FIELD, GENRES_FIELD, YEAR_FIELD], self.timeout),
            )
            for row in rows:
                year = int(row[YEAR_FIELD])
                fields[row[ID_FIELD]] = (tuple(row[GENRES_FIELD]), None if year == UNKNOWN_YEAR else year)
        return fields

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

    def _request(
        self, operation: str, send: Callable[[MilvusClient], T], *, prepare: bool = True
    ) -> T:
        """Return `send(client)`, retrying transient errors on a new client.

        With `prepare`, the client's collection is created, checked and loaded
        first. A transient error closes the client, so the next attempt connects
        again and checks that the collection is loaded. Any other error, and a
        transient one after `retries` retries, raises StoreError.
        """
        client_errors = _client_errors()
        delay = FIRST_RETRY_DELAY
        attempt = 0
        while True:
            client = None
            try:
                client = self._open_client() if prepare else self._connected_client()
                return send(client)
            except (StoreError, *client_errors) as exc:
                if not _is_transient(exc):
                    if isinstance(exc, StoreError):
                        raise
                    raise self._failed(operation, exc) from exc
                self._discard(client)
                if attempt >= self.retries:
                    raise self._unreachable(operation, exc, attempt + 1) from exc
                attempt += 1
                logger.warning(
                    "Milvus %s at %s failed (%s); retry %d of %d in %.1f s",
                    operation,
                    self._uri_text,
                    self._message(exc),
                    attempt,
                    self.retries,
                    delay,
                )
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    def _failed(self, operation: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"Milvus {operation} on collection '{self.collection_name}' at "
            f"'{self._uri_text}' failed: {self._message(exc)}"
        )

    def _unreachable(self, operation: str, exc: BaseException, attempts: int) -> StoreError:
        if self._lite_path is not None:
            fix = "Milvus Lite runs in this process, so its errors are in this process's log."
        else:
            fix = (
                "Is the Milvus server running? Start it or point milvus_uri at a running "
                "server; a slow server may need a larger timeout or more retries."
            )
        return StoreError(
            f"Milvus {operation} on collection '{self.collection_name}' at "
            f"'{self._uri_text}' failed after {attempts} attempts: {self._message(exc)}. {fix}"
        )

    def _message(self, exc: BaseException) -> str:
        """Return the pymilvus message behind `exc`, with this store's token masked.

        For a StoreError this is the message of the pymilvus error it was raised
        from, so that a retried open does not repeat the URI and collection.
        """
        cause = next((error for error in _exception_chain(exc) if not isinstance(error, StoreError)), exc)
        text = _milvus_message(cause)
        return text.replace(self._token, "***") if self._token else text

    def _open_client(self) -> MilvusClient:
        """Connect, prepare the collection once, and return the client."""
        with self._lock:
            client = self._connect()
            if self._collection_ready:
                return client
            try:
                self._prepare_collection(client)
            except BaseException:
                # A failed open keeps nothing open, so the Milvus Lite lock is free again.
                self._disconnect()
                raise
            self._collection_ready = True
            return client

    def _connected_client(self) -> MilvusClient:
        with self._lock:
            return self._connect()

    def _discard(self, client: MilvusClient | None) -> None:
        """Close `client` after a transient error, unless another thread replaced it."""
        with self._lock:
            if client is not None and client is self._client:
                self._disconnect()

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
            self._client = self._new_client()
            logger.info("Connected to the Milvus server at %s", self._uri_text)
            return self._client

        with _lite_users_lock:
            try:
                Path(self._lite_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create the folder of the Milvus Lite path '{self.uri}': {exc}. "
                    "Point milvus_uri at a writable location."
                ) from exc
            _hide_lite_lock_errors()
            self._client = self._new_client()
            _lite_users[self._lite_path] = _lite_users.get(self._lite_path, 0) + 1
        logger.info("Opened Milvus Lite at %s", self._lite_path)
        return self._client

    def _new_client(self) -> MilvusClient:
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": self._client_uri, "timeout": self.timeout}
        if self._token:
            kwargs["token"] = self._token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        if self._lite_path is None:
            # A dedicated client owns its gRPC channel, so close() ends it. A shared one
            # stays in pymilvus' connection registry and would be reused after a failure.
            kwargs["dedicated"] = True
        try:
            return MilvusClient(**kwargs)
        except _client_errors() as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: BaseException) -> StoreError:
        if self._lite_path is not None and (_is_lock_error(exc) or _lock_is_held(self._lite_path)):
            return StoreLockedError(
                f"Milvus Lite data at '{self._lite_path}' is in use by another process. "
                "Close the other recommender/ingest process (or stop the Python kernel that "
                "opened it), or point milvus_uri at a different path or at a Milvus server."
            )
        return StoreError(
            f"Opening Milvus at '{self._uri_text}' failed: {self._message(exc)}. Check that "
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
                load_timeout = max(self.timeout, MIN_LOAD_TIMEOUT)
                client.load_collection(self.collection_name, timeout=load_timeout)

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
        # does not implement and logs as an error. The index of an empty collection is
        # ready at once, and on a server load_collection waits for it anyway.
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

        genres_field, year_field = fields.get(GENRES_FIELD), fields.get(YEAR_FIELD)
        genres_ok = genres_field is not None and genres_field["type"] == DataType.ARRAY
        if not genres_ok or year_field is None or year_field["type"] != DataType.INT64:
            raise StoreError(
                f"Milvus collection '{self.collection_name}' at '{self._uri_text}' has no "
                f"'{GENRES_FIELD}' (ARRAY of VARCHAR) and '{YEAR_FIELD}' (INT64) fields, which "
                "genre and year filters need; an older version created it. Drop it with "
                f"MilvusVectorStore(uri, collection_name='{self.collection_name}').drop() and run "
                "`towhee-recsys ingest` again, or ingest into another collection_name."
            )

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
        try:
            yield
        except _client_errors() as exc:
            raise self._failed(operation, exc) from exc

    # ----- requests, each sent through _request -----

    def _search_chunk(self, queries: np.ndarray, limit: int, expression: str) -> list[list[SearchHit]]:
        return [hits for hits, _ in self._search_chunk_counted(queries, limit, expression)]

    def _search_chunk_counted(
        self, queries: np.ndarray, limit: int, expression: str
    ) -> list[tuple[list[SearchHit], int]]:
        """Return each query's hits and the number of hits Milvus sent before removing repeats."""
        raw = self._request(
            "search", partial(_search, self.collection_name, list(queries), limit, expression, self.timeout)
        )
        return [(_to_hits(hits), len(hits)) for hits in raw]

    def _search_rows(
        self, queries: np.ndarray, rows: list[int], limit: int, expression: str, results: list[list[SearchHit]]
    ) -> None:
        """Search the query vectors `rows` with one expression, in requests of up to 1024 queries."""
        for start in range(0, len(rows), MAX_QUERIES_PER_REQUEST):
            chunk = rows[start : start + MAX_QUERIES_PER_REQUEST]
            for row, row_hits in zip(chunk, self._search_chunk(queries[chunk], limit, expression), strict=True):
                results[row] = row_hits

    def _search_excluding(
        self,
        queries: np.ndarray,
        rows: list[int],
        limit: int,
        user_filter: str,
        excluded: list[tuple[Id, ...]],
        results: list[list[SearchHit]],
    ) -> None:
        """Search many query vectors that exclude different ids, sharing requests.

        Each round asks Milvus for `limit` plus some extra hits per query and drops the
        excluded ids. A query is done when `limit` hits remain or Milvus sent fewer hits
        than asked, so no more rows match. The others go to the next round, which asks
        for EXTRA_HITS_GROWTH times more extra hits, up to `limit` + the number of
        excluded ids, which always leaves `limit` hits. A query that needs more than
        MAX_TOP_K hits that way is searched alone with a `not in` expression instead.
        Queries are grouped by their request size, rounded up to a multiple of `limit`,
        so few queries request many hits and few requests are sent.
        """
        excluded_sets = {row: set(excluded[row]) for row in rows}
        extra = {row: min(limit * FIRST_EXTRA_HITS, len(excluded[row])) for row in rows}
        pending = rows
        while pending:
            by_size: dict[int, list[int]] = {}
            for row in pending:
                # Sizes rounded up to a multiple of `limit` put users with similar needs in one request.
                size = -(-(limit + extra[row]) // limit) * limit
                by_size.setdefault(min(size, MAX_TOP_K), []).append(row)
            pending = []
            for size, group in sorted(by_size.items()):
                for start in range(0, len(group), MAX_QUERIES_PER_REQUEST):
                    chunk = group[start : start + MAX_QUERIES_PER_REQUEST]
                    answers = self._search_chunk_counted(queries[chunk], size, user_filter)
                    for row, (hits, sent) in zip(chunk, answers, strict=True):
                        kept = [hit for hit in hits if hit.movie_id not in excluded_sets[row]]
                        if len(kept) >= limit or sent < size:
                            results[row] = kept[:limit]
                        elif size >= MAX_TOP_K or extra[row] >= len(excluded[row]):
                            # Repeated ids in Milvus' reply or more than MAX_TOP_K hits needed.
                            expression = _and(user_filter, _in_expr(excluded[row], negate=True))
                            self._search_rows(queries, [row], limit, expression, results)
                        else:
                            extra[row] = min(extra[row] * EXTRA_HITS_GROWTH, len(excluded[row]))
                            pending.append(row)

    def _id_page(self, after: Id | None, page_size: int) -> list[Id]:
        # NOTE: iterator="True" makes the server return pages sorted by primary key,
        # which pymilvus' query_iterator relies on too. Checked on Milvus Lite 3.2 and
        # on a Milvus 2.3.5 standalone server.
        expression = "" if after is None else f"{ID_FIELD} > {_id_literal(after)}"
        rows = self._request(
            "query ids",
            partial(_query_id_page, self.collection_name, expression, page_size, self.timeout),
        )
        page = [row[ID_FIELD] for row in rows]
        sequence = page if after is None else [after, *page]
        if any(later <= earlier for earlier, later in zip(sequence, sequence[1:], strict=False)):
            raise StoreError(
                f"Milvus returned movie ids of collection '{self.collection_name}' out of "
                "primary-key order, so ids() cannot page through them."
            )
        return page

    def _existing_ids(self, ids: list[Id]) -> list[Id]:
        rows = self._request(
            "query",
            partial(_query, self.collection_name, _in_expr(ids), [ID_FIELD], self.timeout),
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
        return [self._sorted_unique_ids(ids) for ids in exclude]

    def _sorted_unique_ids(self, ids: Sequence[Id]) -> tuple[Id, ...]:
        if self.id_type == "int" and not isinstance(ids, (str, bytes)):
            # Fast path for integer ids, such as a batch's rated sets of a million ids in all.
            array = np.asarray(ids)
            if array.ndim == 1 and array.dtype.kind in "iu":
                return tuple(np.unique(array).tolist())
        return tuple(sorted(set(normalize_ids(ids, self.id_type, "exclude"))))

    def _check_str_ids(self, ids: list[Id]) -> None:
        if self.id_type != "str":
            return
        for movie_id in ids:
            if not movie_id or len(movie_id.encode("utf-8")) > STR_ID_MAX_BYTES:
                expected = f"a non-empty string of at most {STR_ID_MAX_BYTES} UTF-8 bytes"
                raise invalid_parameter("movie_id", expected, movie_id)


# ----- requests: `_request` calls each with the client as last argument -----


def _upsert(collection_name: str, rows: list[dict[str, Any]], timeout: float, client: MilvusClient) -> Any:
    return client.upsert(collection_name, rows, timeout=timeout)


def _delete(collection_name: str, expression: str, timeout: float, client: MilvusClient) -> Any:
    return client.delete(collection_name, filter=expression, timeout=timeout)


def _query(
    collection_name: str, expression: str, fields: list[str], timeout: float, client: MilvusClient
) -> list[dict[str, Any]]:
    return client.query(
        collection_name,
        filter=expression,
        output_fields=fields,
        consistency_level=CONSISTENCY,
        timeout=timeout,
    )


def _query_id_page(
    collection_name: str, expression: str, page_size: int, timeout: float, client: MilvusClient
) -> list[dict[str, Any]]:
    return client.query(
        collection_name,
        filter=expression,
        output_fields=[ID_FIELD],
        limit=page_size,
        iterator="True",
        reduce_stop_for_best="True",
        consistency_level=CONSISTENCY,
        timeout=timeout,
    )


def _search(
    collection_name: str,
    queries: list[np.ndarray],
    limit: int,
    expression: str,
    timeout: float,
    client: MilvusClient,
) -> Any:
    # The id is requested as an output field because Milvus 2.3 servers do not send
    # the primary key's name, so pymilvus 3.0 files the key of each hit under "id".
    return client.search(
        collection_name,
        data=queries,
        limit=limit,
        filter=expression,
        anns_field=VECTOR_FIELD,
        search_params={"metric_type": METRIC_TYPE},
        output_fields=[ID_FIELD],
        consistency_level=CONSISTENCY,
        timeout=timeout,
    )


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


class _LiteLockErrorFilter(logging.Filter):
    """Drop Milvus Lite's error log for a data folder locked by another process.

    milvus-lite 3.2 logs that case as an error with a full traceback before pymilvus
    raises "Open local milvus failed". The store raises StoreLockedError with the path
    and the fix instead, so the log would only repeat it as noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "DataDirLockedError" and "DataDirLockedError" not in record.getMessage()


_lite_lock_filter = _LiteLockErrorFilter()


def _hide_lite_lock_errors() -> None:
    server_logger = logging.getLogger("milvus_lite.server_manager")
    if _lite_lock_filter not in server_logger.filters:
        server_logger.addFilter(_lite_lock_filter)


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


def _and(*expressions: str) -> str:
    return " and ".join(expression for expression in expressions if expression)


def filter_expression(
    genres: Sequence[str] | None = None, year_min: int | None = None, year_max: int | None = None
) -> str:
    """Return the Milvus filter expression for movies of any of `genres` within a year range.

    Each argument that is None (or an empty genre list) sets no condition, so all None
    gives "". A year bound leaves out movies of unknown year (stored as -1). The caller
    checks that the genres exist and the bounds are integers.
    """
    parts = []
    if genres:
        names = ", ".join(_id_literal(str(name)) for name in genres)
        parts.append(f"array_contains_any({GENRES_FIELD}, [{names}])")
    if year_min is not None or year_max is not None:
        parts.append(f"{YEAR_FIELD} >= {max(0, int(year_min or 0))}")
    if year_max is not None:
        parts.append(f"{YEAR_FIELD} <= {int(year_max)}")
    return " and ".join(parts)


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
    code = getattr(exc, "code", None)
    if callable(code):  # a grpc.RpcError
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        return f"{code().name}: {details}"
    return str(getattr(exc, "message", "") or exc)


# ----- server URI, retries and transient errors -----


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise invalid_parameter("retries", "an integer >= 0", retries)
    return retries


def _server_connection(uri: str, token: str, db_name: str) -> tuple[str, str, str]:
    """Return (uri for pymilvus, token, db_name) of a server URI.

    ``user:password@`` in the URI becomes the token and ``?db_name=`` the database.
    Both are removed from the returned URI, which keeps scheme, host, port and path.
    """
    if uri.startswith("unix:"):
        return uri, token or os.environ.get(TOKEN_ENV, ""), db_name
    try:
        userinfo, plain_uri = _split_userinfo(uri)
        parts = urlsplit(plain_uri)
        parts.port  # noqa: B018 - parsing the port raises ValueError when it is invalid
    except ValueError as exc:
        raise invalid_parameter("milvus uri", "a URI such as http://host:19530", redact_uri(uri)) from exc

    uri_token = ""
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        uri_token = f"{unquote(user)}:{unquote(password)}" if has_password else unquote(user)
    if uri_token and token:
        raise InvalidParameterError(
            f"Invalid token: the milvus uri '{redact_uri(uri)}' already contains credentials. "
            "Pass them either in the URI or as token, not both."
        )
    token = uri_token or token or os.environ.get(TOKEN_ENV, "")
    db_name = _query_db_name(uri, parts.query, db_name)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", token, db_name


def _split_userinfo(uri: str) -> tuple[str, str]:
    """Return the ``user:password`` part of `uri` ("" if none) and `uri` without it."""
    scheme, rest = uri.split("://", 1)
    netloc = urlsplit(uri).netloc
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        return userinfo, f"{scheme}://{rest[len(userinfo) + 1 :]}"
    if "@" in rest:
        # urlsplit ends the netloc at a "/", "?" or "#" that a password contains without
        # percent-encoding. redact_uri masks up to the last "@" then, and so does this.
        userinfo, remainder = rest.rsplit("@", 1)
        return userinfo, f"{scheme}://{remainder}"
    return "", uri


def _query_db_name(uri: str, query: str, db_name: str) -> str:
    """Return the database named by `db_name` or by ``?db_name=`` in the URI's query."""
    pairs = parse_qsl(query, keep_blank_values=True)
    unknown = sorted({key for key, _ in pairs if key != "db_name"})
    if unknown:
        raise invalid_parameter(
            "milvus uri",
            "no query parameters other than db_name",
            redact_uri(uri),
            f"Remove {', '.join(unknown)}; pass a token as token= or ${TOKEN_ENV}.",
        )
    names = {value for key, value in pairs if key == "db_name"} | ({db_name} if db_name else set())
    if len(names) > 1:
        raise invalid_parameter(
            "db_name", "one database name, in the URI or as db_name", sorted(names)
        )
    return names.pop() if names else ""


def _client_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types that pymilvus requests raise."""
    import grpc
    from pymilvus.exceptions import MilvusException

    return (MilvusException, grpc.RpcError, grpc.FutureTimeoutError)


def _is_transient(exc: BaseException) -> bool:
    """Return True if `exc` or an exception it was raised from may pass on a retry."""
    import grpc
    from pymilvus.exceptions import MilvusException

    transient_status = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    for error in _exception_chain(exc):
        if isinstance(error, grpc.FutureTimeoutError):
            return True
        if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
            if error.code() in transient_status:
                return True
        if isinstance(error, MilvusException):
            # pymilvus puts a grpc.StatusCode into `code` when its own retries ran out.
            if error.code in (*transient_status, CONNECT_FAILED_CODE, COLLECTION_NOT_LOADED_CODE):
                return True
            if any(text in str(error.message) for text in TRANSIENT_MESSAGES):
                return True
    return False


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield `exc` and the exceptions it was raised from (``raise ... from``), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__
