"""Contracts of the two stores and the helpers every backend shares.

`VectorStore` keeps one unit-norm embedding per movie and runs inner-product (IP)
top-k searches. `MetadataStore` keeps movie records, user demographics, the movie
ids each user rated, and the ratings recorded online since the last ingest. Each
backend lives in its own module and implements one of these abstract classes. No
backend module imports its client library at module level, so
`import towhee_recsys.stores` stays cheap.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from towhee_recsys.data.dataset import Id, Movie, User
from towhee_recsys.validation import invalid_parameter

ID_TYPES = ("int", "str")
# Allowed deviation of an embedding's L2 norm from 1.
NORM_TOLERANCE = 1e-3

# Query parameters whose values are credentials in Milvus and Redis URIs.
_SECRET_QUERY_KEYS = re.compile(r"pass|token|secret|key|auth", re.IGNORECASE)
_REDACTED = "***"


@dataclass(frozen=True)
class SearchHit:
    """One result of a vector search: the movie and its inner-product score."""

    movie_id: Id
    score: float


@dataclass(frozen=True)
class UserRecord:
    """A user's demographics, the ids of the movies the user rated, and online ratings.

    Fields of `user` are None where the store has no demographics for the user.
    `online_ratings` maps movie id to rating for ratings recorded with
    `MetadataStore.put_online_ratings` since the user's rated set was last replaced
    by `put_rated` (an ingest). Their movie ids are in `rated_movie_ids` too.
    """

    user: User
    rated_movie_ids: tuple[Id, ...]
    online_ratings: Mapping[Id, float] = field(default_factory=dict)


class VectorStore(ABC):
    """Store of movie embeddings searched by inner product.

    Implementations open their connection lazily on first use, accept calls from
    several threads, and allow `close()` at any time and more than once.
    """

    def __deepcopy__(self, memo: dict) -> VectorStore:
        # A store is a shared connection handle, not a value: Towhee deep-copies
        # operator arguments when it builds a pipeline, and every copy must reuse it.
        return self

    @abstractmethod
    def open(self) -> None:
        """Connect and prepare the collection. Later calls do nothing."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection. The store reopens on its next use."""

    @abstractmethod
    def upsert(
        self,
        movie_ids: Sequence[Id],
        embeddings: np.ndarray,
        genres: Sequence[Sequence[str]],
        years: Sequence[int | None],
    ) -> int:
        """Insert or replace one row per movie id and return the number written."""

    @abstractmethod
    def search(
        self,
        embeddings: np.ndarray,
        top_k: int,
        *,
        exclude: Sequence[Sequence[Id]] | None = None,
        filter: str = "",
    ) -> list[list[SearchHit]]:
        """Return the `top_k` best hits of each query vector, best first."""

    @abstractmethod
    def count(self) -> int:
        """Return the exact number of stored vectors."""

    @abstractmethod
    def ids(self) -> list[Id]:
        """Return every stored movie id."""

    @abstractmethod
    def get_embeddings(self, ids: Sequence[Id]) -> dict[Id, np.ndarray]:
        """Return the stored embedding of each id that exists."""

    @abstractmethod
    def get_filter_fields(self, ids: Sequence[Id]) -> dict[Id, tuple[tuple[str, ...], int | None]]:
        """Return the stored genres and year (None when unknown) of each id that exists."""

    @abstractmethod
    def delete(self, ids: Sequence[Id]) -> int:
        """Delete the given ids and return how many of them existed."""

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole collection with all its vectors."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Return the store's configuration and row count, without credentials."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MetadataStore(ABC):
    """Store of movie records, user demographics and rated movie ids."""

    def __deepcopy__(self, memo: dict) -> MetadataStore:
        # A store is a shared connection handle, not a value: Towhee deep-copies
        # operator arguments when it builds a pipeline, and every copy must reuse it.
        return self

    @abstractmethod
    def open(self) -> None:
        """Connect. Later calls do nothing."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection. The store reopens on its next use."""

    @abstractmethod
    def put_movies(self, movies: Iterable[Movie], batch_size: int = 1000) -> int:
        """Write movie records, replacing existing ones, and return the number written."""

    @abstractmethod
    def get_movies(self, movie_ids: Sequence[Id]) -> list[Movie | None]:
        """Return the record of each id in input order, None where it is missing."""

    @abstractmethod
    def put_users(self, users: Iterable[User], batch_size: int = 1000) -> int:
        """Write user demographics, replacing existing ones, and return the number written."""

    @abstractmethod
    def put_rated(self, rated: Mapping[Id, Iterable[Id]], batch_size: int = 1000) -> int:
        """Replace each given user's rated movie ids and return the number of users.

        The users' online ratings are deleted too, because a new rated set comes
        with a model trained on it.
        """

    @abstractmethod
    def add_rated(self, user_id: Id, movie_ids: Iterable[Id]) -> int:
        """Add movie ids to a user's rated set and return how many were new."""

    @abstractmethod
    def put_online_ratings(self, user_id: Id, ratings: Mapping[Id, float]) -> int:
        """Store ratings of one user and add their movie ids to the user's rated set.

        A movie rated again replaces its earlier online rating. Both writes happen in
        one round trip and together (one transaction, or one hash slot's pipeline).
        Returns the number of ratings written.
        """

    @abstractmethod
    def get_user(self, user_id: Id) -> UserRecord | None:
        """Return the user's record, or None when the store has no data on the user."""

    @abstractmethod
    def get_users(self, user_ids: Sequence[Id]) -> list[UserRecord | None]:
        """Return the record of each user id in input order, None where the store has none.

        Reads all users in one round trip (one per node on a Redis Cluster).
        """

    @abstractmethod
    def set_info(self, mapping: Mapping[str, Any]) -> None:
        """Store catalog facts (id type, model fingerprint, counts) as strings."""

    @abstractmethod
    def get_info(self) -> dict[str, str]:
        """Return the catalog facts written by `set_info`."""

    @abstractmethod
    def count_movies(self) -> int:
        """Return the exact number of movie records."""

    @abstractmethod
    def count_users(self) -> int:
        """Return the exact number of users with demographics or rated movies."""

    @abstractmethod
    def movie_ids(self) -> list[Id]:
        """Return every stored movie id, sorted."""

    @abstractmethod
    def delete_movies(self, movie_ids: Sequence[Id]) -> int:
        """Delete movie records and return how many existed."""

    @abstractmethod
    def clear(self) -> int:
        """Delete every record of this store and return the number of keys removed."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Return the store's configuration and counts, without credentials."""

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def redact_uri(uri: str) -> str:
    """Return `uri` with passwords, tokens and credential query values replaced by ***.

    A user name alone (``http://name@host``) is replaced too, because pymilvus reads
    it as a token. Local paths come back unchanged.
    """
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        # An unparsable URI (such as an unclosed IPv6 bracket) is hidden after its scheme.
        return uri.split("://", 1)[0] + "://" + _REDACTED

    scheme, rest = uri.split("://", 1)
    netloc = parts.netloc
    if "@" not in netloc and "@" in rest:
        # urlsplit ends the netloc at the first "/", "?" or "#", even inside a password
        # that is not percent-encoded. Then everything up to the last "@" is masked as
        # credentials, so a URI whose only "@" is in its path or query loses its host too.
        userinfo, remainder = rest.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        masked = f"{user}:{_REDACTED}" if has_password else _REDACTED
        return f"{scheme}://{masked}@" + redact_uri(f"{scheme}://{remainder}").split("://", 1)[1]
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        userinfo = f"{user}:{_REDACTED}" if has_password else _REDACTED
        netloc = f"{userinfo}@{host}"

    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = [(k, _REDACTED if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs]
        query = urlencode(redacted, safe="*")
    # Built by hand because urlunsplit drops the "//" of an empty netloc (unix:///path).
    redacted_uri = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        redacted_uri += f"?{query}"
    if parts.fragment:
        redacted_uri += f"#{parts.fragment}"
    return redacted_uri


def check_timeout(name: str, value: Any) -> float:
    """Return `value` as float seconds if it is a number > 0, else raise InvalidParameterError."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or value <= 0:
        raise invalid_parameter(name, "a number of seconds > 0", value)
    return float(value)


def check_id_type(id_type: Any) -> str:
    """Return `id_type` if it is "int" or "str", else raise InvalidParameterError."""
    if id_type not in ID_TYPES:
        raise invalid_parameter("id_type", '"int" or "str"', id_type)
    return id_type


def normalize_id(value: Any, id_type: str, name: str = "movie_id") -> Id:
    """Return `value` as a plain int or str matching `id_type`.

    NumPy integers become int. A value of the other kind raises
    InvalidParameterError, because "1" and 1 would become different rows.
    """
    if id_type == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            fix = 'Pass integer ids, or open the store with id_type="str".'
            raise invalid_parameter(name, "an integer id", value, fix)
        return int(value)
    if not isinstance(value, str):
        fix = 'Pass string ids, or open the store with id_type="int".'
        raise invalid_parameter(name, "a string id", value, fix)
    return value


def normalize_ids(values: Iterable[Any], id_type: str, name: str = "movie_ids") -> list[Id]:
    """Apply `normalize_id` to every value, naming the argument `name` in errors."""
    if isinstance(values, (str, bytes)):
        raise invalid_parameter(name, "a sequence of ids", values, "Wrap a single id in a list.")
    return [normalize_id(value, id_type, name) for value in values]


def normalize_ratings(ratings: Any, id_type: str) -> dict[Id, float]:
    """Return `ratings` (movie id to rating) with normalized ids and float ratings.

    Raises InvalidParameterError for a value that is not a mapping, an id of the
    other kind, or a rating that is not a finite number.
    """
    if not isinstance(ratings, Mapping):
        raise invalid_parameter("ratings", "a mapping of movie id to rating", type(ratings).__name__)
    normalized: dict[Id, float] = {}
    for movie_id, rating in ratings.items():
        is_number = isinstance(rating, (int, float, np.integer, np.floating)) and not isinstance(rating, bool)
        if not is_number or not np.isfinite(rating):
            raise invalid_parameter("rating", f"a finite number for movie {movie_id!r}", rating)
        normalized[normalize_id(movie_id, id_type)] = float(rating)
    return normalized


def check_unique_ids(ids: Sequence[Id], name: str = "movie_ids") -> None:
    """Raise InvalidParameterError naming the first id that occurs twice in `ids`."""
    seen: set[Id] = set()
    for value in ids:
        if value in seen:
            raise invalid_parameter(name, "no id twice in one call", value)
        seen.add(value)


def check_vectors(
    embeddings: Any, dim: int, *, rows: int | None = None, unit_norm: bool = False
) -> np.ndarray:
    """Return `embeddings` as a float32 (rows, dim) array of finite values.

    `rows` None accepts any number of rows. With `unit_norm`, every row must have
    L2 norm 1 within NORM_TOLERANCE, because inner-product search ranks unit
    vectors by cosine similarity only then.
    """
    expected = f"a float array of shape ({'n' if rows is None else rows}, {dim})"
    if not _is_numeric(embeddings):
        raise invalid_parameter("embeddings", expected, type(embeddings).__name__)
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim or (rows is not None and array.shape[0] != rows):
        raise invalid_parameter("embeddings", expected, f"shape {array.shape}")
    if not np.isfinite(array).all():
        raise invalid_parameter("embeddings", "finite values", "NaN or infinity")
    if unit_norm and len(array):
        _check_unit_norm(array)
    return array


def _check_unit_norm(array: np.ndarray) -> None:
    norms = np.linalg.norm(array, axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > NORM_TOLERANCE:
        raise invalid_parameter(
            "embeddings",
            f"rows of L2 norm 1 (+/- {NORM_TOLERANCE})",
            f"norm {norms[worst]:.4f} in row {worst}",
            "Divide each row by its L2 norm before storing it.",
        )


def _is_numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "iuf"
    except (ValueError, TypeError):
        return False
