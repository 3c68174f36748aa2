"""Vocabularies that turn users and movies into the integer features the model reads.

Every vocabulary reserves two indices: 0 pads variable-length features (genres, title
words) and 1 stands for an unknown or missing value. Paddle's embedding lookup would
silently read garbage for -1, so no feature is ever encoded as -1. Tokens are the
string form of values (``5``, ``np.int32(5)`` and ``"5"`` are one token), sorted so
that the same training data always builds the same vocabularies.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from towhee_recsys.data.dataset import Dataset, Id, Movie, User
from towhee_recsys.data.titles import title_words
from towhee_recsys.errors import ModelError

PAD_INDEX = 0
UNKNOWN_INDEX = 1
RESERVED = 2

MAX_GENRES = 8
MAX_TITLE_WORDS = 16


def token_of(value: Any) -> str | None:
    """Return the vocabulary token of a raw value, or None when it is missing."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    return text or None


def _sort_key(token: str) -> tuple[int, int, str]:
    # Integers in numeric order first, then other strings, so ids read naturally.
    try:
        return (0, int(token), "")
    except ValueError:
        return (1, 0, token)


class Vocabulary:
    """Mapping from tokens to indices >= 2; 0 is padding and 1 is unknown."""

    def __init__(self, name: str, tokens: Sequence[str]) -> None:
        self.name = name
        self.tokens = list(tokens)
        self._index = {token: RESERVED + i for i, token in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            raise ModelError(f"Vocabulary {name!r} contains duplicate tokens.")

    @classmethod
    def build(cls, name: str, values: Iterable[Any], min_count: int = 1) -> Vocabulary:
        """Build a vocabulary of the tokens seen at least `min_count` times."""
        counts = Counter(token for token in map(token_of, values) if token is not None)
        kept = [token for token, count in counts.items() if count >= min_count]
        return cls(name, sorted(kept, key=_sort_key))

    def __len__(self) -> int:
        """Number of embedding rows the vocabulary needs, reserved rows included."""
        return RESERVED + len(self.tokens)

    def __contains__(self, value: Any) -> bool:
        return token_of(value) in self._index

    def index(self, value: Any) -> int:
        """Return the index of one value; unknown and missing values give UNKNOWN_INDEX."""
        token = token_of(value)
        return UNKNOWN_INDEX if token is None else self._index.get(token, UNKNOWN_INDEX)

    def lookup(self, values: Iterable[Any]) -> np.ndarray:
        """Return the int64 indices of many values."""
        return np.fromiter((self.index(value) for value in values), dtype=np.int64)

    def padded(self, rows: Sequence[Sequence[Any]], width: int) -> np.ndarray:
        """Return a (len(rows), width) int64 matrix of indices padded with PAD_INDEX."""
        matrix = np.full((len(rows), width), PAD_INDEX, dtype=np.int64)
        for i, row in enumerate(rows):
            indices = [self.index(value) for value in row[:width]]
            matrix[i, : len(indices)] = indices
        return matrix


@dataclass(frozen=True)
class FeatureBatch:
    """Encoded features of one or more users or movies.

    Attributes:
        columns: feature name to int64 index array with one row per item.
        single: True when built from one item, so encoders return one vector.
    """

    columns: dict[str, np.ndarray]
    single: bool = False

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


@dataclass
class FeatureVocabularies:
    """The eight vocabularies of a model, saved with it and reused unchanged at serving."""

    user_id: Vocabulary
    gender: Vocabulary
    age: Vocabulary
    occupation: Vocabulary
    movie_id: Vocabulary
    genre: Vocabulary
    title_word: Vocabulary
    year: Vocabulary
    id_type: str = "int"

    @classmethod
    def build(cls, dataset: Dataset, train_index: np.ndarray | None = None) -> FeatureVocabularies:
        """Build the vocabularies from a dataset's training ratings and catalog.

        User and movie ids come from the training ratings only, so an id never seen in
        training maps to the unknown index that id dropout trained. Demographics, genres,
        years and title words come from the users table and the whole catalog.
        """
        ratings = dataset.ratings if train_index is None else dataset.ratings.subset(train_index)
        users = list(dataset.users.values())
        movies = list(dataset.movies.values())
        words = (word for movie in movies for word in title_words(movie.name))

        return cls(
            user_id=Vocabulary.build("user_id", ratings.user_id.tolist()),
            gender=Vocabulary.build("gender", (user.gender for user in users)),
            age=Vocabulary.build("age", (user.age for user in users)),
            occupation=Vocabulary.build("occupation", (user.occupation for user in users)),
            movie_id=Vocabulary.build("movie_id", ratings.movie_id.tolist()),
            genre=Vocabulary.build("genre", (g for movie in movies for g in movie.genres)),
            title_word=Vocabulary.build("title_word", words, min_count=2),
            year=Vocabulary.build("year", (movie.year for movie in movies)),
            id_type="int" if ratings.movie_id.dtype.kind in "iu" else "str",
        )

    def encode_users(self, users: Sequence[User], *, known_ids: bool = True) -> dict[str, np.ndarray]:
        """Encode users as index arrays; `known_ids=False` treats every user as new."""
        ids = [user.user_id if known_ids else None for user in users]
        return {
            "user_id": self.user_id.lookup(ids),
            "gender": self.gender.lookup(user.gender for user in users),
            "age": self.age.lookup(user.age for user in users),
            "occupation": self.occupation.lookup(user.occupation for user in users),
        }

    def encode_movies(self, movies: Sequence[Movie], *, known_ids: bool = True) -> dict[str, np.ndarray]:
        """Encode movies as index arrays; `known_ids=False` treats every movie as new."""
        ids = [movie.movie_id if known_ids else None for movie in movies]
        return {
            "movie_id": self.movie_id.lookup(ids),
            "genres": self.genre.padded([movie.genres for movie in movies], MAX_GENRES),
            "title": self.title_word.padded([title_words(m.name) for m in movies], MAX_TITLE_WORDS),
            "year": self.year.lookup(movie.year for movie in movies),
        }

    def sizes(self) -> dict[str, int]:
        """Return the number of embedding rows of each vocabulary."""
        return {name: len(vocab) for name, vocab in self._vocabularies().items()}

    def to_json(self) -> str:
        payload = {name: vocab.tokens for name, vocab in self._vocabularies().items()}
        payload["id_type"] = self.id_type
        return json.dumps(payload, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> FeatureVocabularies:
        payload = json.loads(text)
        id_type = payload.pop("id_type", "int")
        return cls(**{name: Vocabulary(name, tokens) for name, tokens in payload.items()}, id_type=id_type)

    def _vocabularies(self) -> dict[str, Vocabulary]:
        return {
            "user_id": self.user_id,
            "gender": self.gender,
            "age": self.age,
            "occupation": self.occupation,
            "movie_id": self.movie_id,
            "genre": self.genre,
            "title_word": self.title_word,
            "year": self.year,
        }


def normalize_id(value: Any, id_type: str) -> Id:
    """Return an id in the catalog's id type (int for MovieLens, str for string ids)."""
    if id_type == "int":
        return int(value)
    return str(value)
