"""In-memory dataset: ratings as NumPy columns, movies and users as records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Ids are ints for MovieLens and may be strings in an own dataset.
Id = int | str


@dataclass(frozen=True)
class Movie:
    """One catalog item.

    Attributes:
        movie_id: id as in the source file.
        title: title exactly as published, year included (``"Misérables, Les (1995)"``).
        genres: genre names in file order; empty when unknown.
        year: release year split from the title, or None.
    """

    movie_id: Id
    title: str
    genres: tuple[str, ...] = ()
    year: int | None = None

    @property
    def name(self) -> str:
        """Title without the trailing ``(year)``; the words the model reads."""
        from towhee_recsys.data.titles import split_title

        return split_title(self.title)[0]


@dataclass(frozen=True)
class User:
    """Demographics of one user; None where unknown.

    MovieLens codes stay as published: gender ``"M"``/``"F"``, age group ``1, 18, 25, 35,
    45, 50, 56``, occupation ``0-20``. Own datasets may use any strings.
    """

    user_id: Id
    gender: str | None = None
    age: int | str | None = None
    occupation: int | str | None = None


@dataclass(frozen=True)
class Ratings:
    """Rating events as aligned columns.

    ``user_id``/``movie_id`` are int64 arrays, or object arrays of str for an own
    dataset with string ids. ``timestamp`` is int64 seconds, or None when the source
    has no timestamps.
    """

    user_id: np.ndarray
    movie_id: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rating)

    def subset(self, index: np.ndarray) -> Ratings:
        """Return the rows selected by an index or boolean mask."""
        timestamp = None if self.timestamp is None else self.timestamp[index]
        return Ratings(self.user_id[index], self.movie_id[index], self.rating[index], timestamp)


@dataclass(frozen=True)
class Dataset:
    """Ratings plus the movie catalog and (optional) user demographics."""

    ratings: Ratings
    movies: dict[Id, Movie]
    users: dict[Id, User] = field(default_factory=dict)
    name: str = "custom"

    def rated_movie_ids(self) -> dict[Id, list[Id]]:
        """Return each user's rated movie ids, in rating order."""
        rated: dict[Id, list[Id]] = {}
        for user_id, movie_id in zip(self.ratings.user_id.tolist(), self.ratings.movie_id.tolist(), strict=True):
            rated.setdefault(user_id, []).append(movie_id)
        return rated
