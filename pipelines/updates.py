"""Checks of serving arguments, and the writes that change a catalog without retraining."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from towhee_recsys.pipelines._resources import Resources

from towhee_recsys.data.dataset import Id, Movie, User
from towhee_recsys.errors import UnknownUserError
from towhee_recsys.stores.base import normalize_id, normalize_ratings
from towhee_recsys.stores.milvus import GENRE_MAX_BYTES, MAX_GENRES, filter_expression
from towhee_recsys.validation import invalid_parameter

logger = logging.getLogger(__name__)

# Character that the metadata stores use to join genre names.
GENRE_SEPARATOR = "|"
MAX_TITLE_LENGTH = 1000
# Years a movie or a year filter may have. The vector store keeps -1 for an unknown year.
MIN_YEAR, MAX_YEAR = 0, 9999
# Maximum number of ids named in an error message. The message gives the count of the rest.
MAX_IDS_IN_MESSAGE = 10


def search_filter(resources: Resources, genres: Any, year_min: Any, year_max: Any) -> str:
    """Return the Milvus expression for the genre and year filters of a recommend call.

    `genres` is a list of names, any of which a movie must have. None or an empty list
    sets no genre condition. Raises InvalidParameterError for an unknown genre, a year
    that is not an integer from 0 to 9999, or year_min > year_max.
    """
    names = check_genres(resources, genres, "genres") if genres is not None else []
    year_min = _check_year("year_min", year_min)
    year_max = _check_year("year_max", year_max)
    if year_min is not None and year_max is not None and year_min > year_max:
        raise invalid_parameter("year_max", f"a year >= year_min ({year_min})", year_max)
    return filter_expression(names, year_min, year_max)


def check_genres(resources: Resources, genres: Any, name: str) -> list[str]:
    """Return `genres` as a list of names the model was trained with, or raise InvalidParameterError."""
    if isinstance(genres, str) or not isinstance(genres, (Sequence, set, frozenset)):
        raise invalid_parameter(name, "a list of genre names", genres, "Wrap a single genre in a list.")
    valid = resources.model.vocabularies.genre.tokens
    known = set(valid)
    names = list(genres)
    for genre in names:
        if not isinstance(genre, str) or genre not in known:
            raise invalid_parameter(name, f"genre names among {', '.join(valid)}", genre)
    return names


def _check_year(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not MIN_YEAR <= value <= MAX_YEAR:
        raise invalid_parameter(name, f"an integer year from {MIN_YEAR} to {MAX_YEAR}, or None", value)
    return int(value)


def unknown_users_error(unknown: Sequence[Id]) -> UnknownUserError:
    """Build the UnknownUserError that names the first unknown user ids of a batch."""
    shown = ", ".join(repr(user_id) for user_id in unknown[:MAX_IDS_IN_MESSAGE])
    more = f" and {len(unknown) - MAX_IDS_IN_MESSAGE} more" if len(unknown) > MAX_IDS_IN_MESSAGE else ""
    noun = "user id is" if len(unknown) == 1 else "user ids are"
    return UnknownUserError(
        f"{len(unknown)} {noun} not in the catalog: {shown}{more}. Ingest their ratings or register them "
        "(register_user() in Python, PUT /users/{id} over HTTP), or skip unknown users to get an empty list "
        "for each (skip_unknown=True, --skip-unknown, or \"skip_unknown\": true)."
    )


def register_user(resources: Resources, user_id: Any, gender: Any, age: Any, occupation: Any) -> User:
    """Store or replace a user's demographics and return the stored `User`.

    Demographics must be values the model saw in training, or None for unknown.
    """
    vocabularies = resources.model.vocabularies
    user_id = normalize_id(user_id, vocabularies.id_type, "user_id")
    user = User(user_id, _blank_to_none(gender), _blank_to_none(age), _blank_to_none(occupation))
    for field, vocabulary in (
        ("gender", vocabularies.gender),
        ("age", vocabularies.age),
        ("occupation", vocabularies.occupation),
    ):
        value = getattr(user, field)
        if value is not None and value not in vocabulary:
            expected = f"one of the values seen in training ({', '.join(vocabulary.tokens)})"
            raise invalid_parameter(field, expected, value)
    resources.metadata_store.put_users([user])
    logger.info("Registered user %r", user_id)
    return user


def record_ratings(resources: Resources, user_id: Any, ratings: Any, rating_range: tuple[float, float]) -> int:
    """Check and store a user's online ratings; return the number stored.

    Raises UnknownUserError for a user who is neither in the catalog nor registered,
    and InvalidParameterError for an unknown movie id or a rating outside the scale.
    """
    metadata = resources.metadata_store
    id_type = resources.model.vocabularies.id_type
    user_id = normalize_id(user_id, id_type, "user_id")
    normalized = normalize_ratings(ratings, id_type)
    low, high = rating_range
    for movie_id, rating in normalized.items():
        if not low <= rating <= high:
            raise invalid_parameter("rating", f"a number from {low:g} to {high:g} for movie {movie_id!r}", rating)
    if not normalized:
        return 0

    movie_ids = list(normalized)
    movies = metadata.get_movies(movie_ids)
    missing = [movie_id for movie_id, movie in zip(movie_ids, movies, strict=True) if movie is None]
    if missing:
        raise invalid_parameter("movie_id", "ids of movies in the catalog", missing[:MAX_IDS_IN_MESSAGE])
    if metadata.get_user(user_id) is None:
        raise UnknownUserError(
            f"User id {user_id!r} is not in the catalog. Register the user first (register_user() in Python, "
            "PUT /users/{id} over HTTP), then record the ratings."
        )
    written = metadata.put_online_ratings(user_id, normalized)
    logger.info("Recorded %d online ratings of user %r", written, user_id)
    return written


def put_movie(resources: Resources, movie_id: Any, title: Any, genres: Any, year: Any) -> Movie:
    """Check, embed and store a movie in both stores; return the stored `Movie`.

    The metadata is written first, as ingest does, so a movie that search finds always
    has its title. A movie id the model never saw maps to the unknown id embedding,
    and genres, title words and year still count.
    """
    vocabularies = resources.model.vocabularies
    movie_id = normalize_id(movie_id, vocabularies.id_type, "movie_id")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_LENGTH:
        raise invalid_parameter("title", f"a non-blank string of at most {MAX_TITLE_LENGTH} characters", title)
    names = check_genres(resources, genres, "genres")
    _check_genre_names(names)
    movie = Movie(movie_id, title, tuple(names), _check_year("year", year))

    vector = resources.model.encode_movies([movie])
    resources.metadata_store.put_movies([movie])
    resources.vector_store.upsert([movie.movie_id], vector, [movie.genres], [movie.year])
    logger.info("Stored movie %r (%s)", movie_id, title)
    return movie


def _check_genre_names(names: list[str]) -> None:
    if len(names) > MAX_GENRES:
        raise invalid_parameter("genres", f"at most {MAX_GENRES} genres", len(names))
    if len(set(names)) != len(names):
        raise invalid_parameter("genres", "no genre twice", names)
    for name in names:
        if GENRE_SEPARATOR in name or len(name.encode("utf-8")) > GENRE_MAX_BYTES:
            expected = f"names without {GENRE_SEPARATOR!r} of at most {GENRE_MAX_BYTES} UTF-8 bytes"
            raise invalid_parameter("genres", expected, name)


def rating_range(resources: Resources, info: Mapping[str, str]) -> tuple[float, float]:
    """Return the lowest and highest rating of the catalog, recorded by ingest.

    A catalog ingested before ingest recorded them gets 1 to the model's rating scale,
    which is the MovieLens scale.
    """
    try:
        return float(info["rating_min"]), float(info["rating_max"])
    except (KeyError, ValueError):
        # NOTE: a guess for catalogs ingested by an older version; ingest again to record the range.
        scale = float(resources.model.config.rating_scale or 5.0)
        return min(1.0, scale), scale


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value
