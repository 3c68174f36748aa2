"""Evaluation protocols: which ratings count, and how they split into train, validation and test.

Three protocols are defined here, and docs/evaluation.md gives their full definitions.

``recbole``
    Ratings >= 3 are positives and all other ratings are dropped. Users and movies with
    fewer than 10 positives are removed repeatedly until every remaining user and movie
    has at least 10 (a 10-core). Each user's positives are shuffled with a fixed seed and
    split 80/10/10 into train, validation and test, with RecBole's rounding: validation
    and test get floor(0.1 x n) each and train the rest.
``leave-last-out``
    Every rating counts. Each user's latest rating by timestamp is the test rating, the
    second latest the validation rating, and the rest train. Ties in time go to the
    later row of the ratings file.
``rating``
    Every rating counts. A random 10% of ratings is the test set, and 10% of the rest is
    the validation set for early stopping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from towhee_recsys.data.dataset import Dataset
from towhee_recsys.errors import DatasetError
from towhee_recsys.validation import check_positive_int, invalid_parameter

logger = logging.getLogger(__name__)

RANKING_PROTOCOLS = ("recbole", "leave-last-out")
PROTOCOLS = (*RANKING_PROTOCOLS, "rating")

RECBOLE_MIN_RATING = 3.0
RECBOLE_MIN_COUNT = 10
RECBOLE_RATIOS = (0.8, 0.1, 0.1)
RATING_TEST_FRACTION = 0.1
RATING_VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class Interactions:
    """The ratings a protocol keeps, with users and movies numbered densely from 0.

    Attributes:
        user_ids: id of each user index, sorted.
        movie_ids: id of each movie index, sorted. These movies are the candidates
            that every user's full ranking orders.
        user: user index of each kept rating.
        movie: movie index of each kept rating.
        rating: rating value of each kept rating.
        rows: row of each kept rating in the dataset's ratings, in ascending order.
    """

    user_ids: np.ndarray
    movie_ids: np.ndarray
    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    rows: np.ndarray

    @classmethod
    def from_rows(cls, dataset: Dataset, rows: np.ndarray) -> Interactions:
        """Number the users and movies of the dataset's ratings at `rows` densely."""
        ratings = dataset.ratings
        user_ids, user = np.unique(ratings.user_id[rows], return_inverse=True)
        movie_ids, movie = np.unique(ratings.movie_id[rows], return_inverse=True)
        return cls(
            user_ids=user_ids,
            movie_ids=movie_ids,
            user=user.reshape(-1).astype(np.int64),
            movie=movie.reshape(-1).astype(np.int64),
            rating=ratings.rating[rows],
            rows=rows,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class ProtocolSplit:
    """A protocol's kept ratings and the positions of its train, validation and test parts.

    Attributes:
        protocol: the protocol name.
        interactions: the kept ratings.
        train: positions in `interactions` of the training ratings.
        validation: positions of the validation ratings (early stopping, model choice).
        test: positions of the test ratings.
        seed: seed of the random split, or None for a split that draws nothing.
    """

    protocol: str
    interactions: Interactions
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int | None = None

    def sizes(self) -> dict[str, int]:
        """Return the number of users, movies and ratings kept, and of each part."""
        return {
            "users": self.interactions.n_users,
            "movies": self.interactions.n_movies,
            "interactions": len(self.interactions),
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }

    def train_dataset(self, dataset: Dataset) -> Dataset:
        """Return `dataset` restricted to the training ratings, with the same catalog and users."""
        ratings = dataset.ratings.subset(self.interactions.rows[self.train])
        return Dataset(ratings, dataset.movies, dataset.users, name=f"{dataset.name}-{self.protocol}-train")


def make_split(dataset: Dataset, protocol: str, seed: int, *, min_count: int = RECBOLE_MIN_COUNT) -> ProtocolSplit:
    """Split `dataset` by the named protocol ("recbole", "leave-last-out" or "rating").

    `min_count` is the k-core threshold of the recbole protocol. Other protocols ignore it.
    """
    if len(dataset.ratings) == 0:
        raise DatasetError(f"Dataset {dataset.name!r} has no ratings, so it cannot be evaluated.")
    if protocol == "recbole":
        return recbole_split(dataset, seed, min_count=check_positive_int("min_count", min_count))
    if protocol == "leave-last-out":
        return leave_last_out_split(dataset)
    if protocol == "rating":
        return rating_split(dataset, seed)
    raise invalid_parameter("protocol", f"one of {', '.join(PROTOCOLS)}", protocol)


def recbole_split(
    dataset: Dataset,
    seed: int,
    *,
    min_rating: float = RECBOLE_MIN_RATING,
    min_count: int = RECBOLE_MIN_COUNT,
    ratios: tuple[float, float, float] = RECBOLE_RATIOS,
) -> ProtocolSplit:
    """Keep positives in a `min_count`-core and split each user's positives randomly by `ratios`."""
    ratings = dataset.ratings
    positive_rows = np.flatnonzero(ratings.rating >= min_rating)
    everything = Interactions.from_rows(dataset, positive_rows)
    keep = k_core_mask(everything.user, everything.movie, min_count, min_count)
    if not keep.any():
        raise DatasetError(
            f"No ratings of dataset {dataset.name!r} remain after keeping ratings >= {min_rating} of users and "
            f"movies with at least {min_count} of them. Use a larger dataset or the leave-last-out protocol."
        )
    interactions = Interactions.from_rows(dataset, positive_rows[keep])
    logger.info(
        "recbole protocol: %d of %d ratings are >= %s; the %d-core keeps %d ratings of %d users and %d movies",
        len(positive_rows), len(ratings), min_rating, min_count, len(interactions),
        interactions.n_users, interactions.n_movies,
    )
    train, validation, test = split_per_user(interactions.user, ratios, np.random.default_rng(seed))
    return ProtocolSplit("recbole", interactions, train, validation, test, seed)


def k_core_mask(user: np.ndarray, movie: np.ndarray, min_user: int, min_movie: int) -> np.ndarray:
    """Return the mask of the ratings whose user and movie keep enough ratings.

    Users with fewer than `min_user` and movies with fewer than `min_movie` kept ratings
    are removed together, and the counts are taken again, until nothing changes.
    """
    keep = np.ones(len(user), dtype=bool)
    n_users = int(user.max()) + 1 if len(user) else 0
    n_movies = int(movie.max()) + 1 if len(movie) else 0
    while True:
        user_counts = np.bincount(user[keep], minlength=n_users)
        movie_counts = np.bincount(movie[keep], minlength=n_movies)
        still = keep & (user_counts[user] >= min_user) & (movie_counts[movie] >= min_movie)
        if still.sum() == keep.sum():
            return keep
        keep = still


def split_counts(count: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Return (train, validation, test) sizes of a group of `count` ratings.

    Validation and test get floor(ratio x count) each and train the rest. A part whose
    share is between 0 and 1 rating gets one rating while train keeps more than one,
    which is RecBole's rounding in ``Dataset._calcu_split_ids`` (RecBole 1.x).
    """
    total = sum(ratios)
    shares = [ratio / total for ratio in ratios]
    # The small epsilon keeps 0.1 x 30 from rounding down to 2 through float error.
    sizes = [int(np.floor(share * count + 1e-9)) for share in shares]
    sizes[0] = count - sum(sizes[1:])
    for part in (2, 1):
        if sizes[0] <= 1:
            break
        if 0 < shares[part] * count < 1:
            sizes[part] += 1
            sizes[0] -= 1
    return sizes[0], sizes[1], sizes[2]


def split_per_user(
    user: np.ndarray, ratios: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle each user's ratings with `rng` and cut them into train, validation and test positions."""
    order = rng.permutation(len(user))
    order = order[np.argsort(user[order], kind="stable")]
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_user = np.arange(len(order)) - np.repeat(starts, counts)

    sizes = np.array([split_counts(int(count), ratios) for count in counts], dtype=np.int64).reshape(-1, 3)
    train_size = np.repeat(sizes[:, 0], counts)
    validation_end = train_size + np.repeat(sizes[:, 1], counts)
    train = np.sort(order[rank_in_user < train_size])
    validation = np.sort(order[(rank_in_user >= train_size) & (rank_in_user < validation_end)])
    test = np.sort(order[rank_in_user >= validation_end])
    return train, validation, test


def leave_last_out_split(dataset: Dataset) -> ProtocolSplit:
    """Hold out each user's latest rating for test and the one before it for validation."""
    ratings = dataset.ratings
    if ratings.timestamp is None:
        raise DatasetError(
            f"Dataset {dataset.name!r} has no timestamps, which the leave-last-out protocol needs to find "
            "each user's latest rating. Add a timestamp column to the ratings, or use the recbole protocol."
        )
    interactions = Interactions.from_rows(dataset, np.arange(len(ratings)))
    # Sorted by user, then time, then row: the last position of each user is the latest rating.
    order = np.lexsort((interactions.rows, ratings.timestamp, interactions.user))
    counts = np.bincount(interactions.user, minlength=interactions.n_users)
    ends = np.cumsum(counts)
    test = order[ends - 1]
    has_validation = counts >= 2
    validation = order[(ends - 2)[has_validation]]
    held_out = np.zeros(len(interactions), dtype=bool)
    held_out[test] = True
    held_out[validation] = True
    train = np.flatnonzero(~held_out)
    return ProtocolSplit("leave-last-out", interactions, train, np.sort(validation), np.sort(test))


def rating_split(
    dataset: Dataset,
    seed: int,
    *,
    test_fraction: float = RATING_TEST_FRACTION,
    validation_fraction: float = RATING_VALIDATION_FRACTION,
) -> ProtocolSplit:
    """Hold out a random `test_fraction` of ratings, then `validation_fraction` of the rest."""
    if len(dataset.ratings) < 3:
        raise DatasetError(
            f"Dataset {dataset.name!r} has {len(dataset.ratings)} ratings; the rating protocol needs at least 3 "
            "for train, validation and test."
        )
    interactions = Interactions.from_rows(dataset, np.arange(len(dataset.ratings)))
    order = np.random.default_rng(seed).permutation(len(interactions))
    test_size = max(1, int(round(len(order) * test_fraction)))
    validation_size = max(1, int(round((len(order) - test_size) * validation_fraction)))
    test = np.sort(order[:test_size])
    validation = np.sort(order[test_size : test_size + validation_size])
    train = np.sort(order[test_size + validation_size :])
    return ProtocolSplit("rating", interactions, train, validation, test, seed)


@dataclass(frozen=True)
class UserMovies:
    """Each user's movie indices in compressed sparse row form.

    The movies of user u are ``indices[indptr[u]:indptr[u + 1]]``, sorted and without repeats.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_pairs(cls, user: np.ndarray, movie: np.ndarray, n_users: int, n_movies: int) -> UserMovies:
        """Collect (user, movie) index pairs, counting a repeated pair once."""
        keys = np.unique(user.astype(np.int64) * n_movies + movie.astype(np.int64))
        users, movies = np.divmod(keys, n_movies)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))]).astype(np.int64)
        return cls(indptr, movies.astype(np.int64))

    @classmethod
    def of(cls, interactions: Interactions, *positions: np.ndarray) -> UserMovies:
        """Collect the movies of the ratings at the given positions of `interactions`."""
        chosen = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        return cls.from_pairs(
            interactions.user[chosen], interactions.movie[chosen], interactions.n_users, interactions.n_movies
        )

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def counts(self) -> np.ndarray:
        """Return the number of movies of every user."""
        return np.diff(self.indptr)

    def movies_of(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def rows_and_columns(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (row in `users`, movie index) of every movie of the given users."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        rows = np.repeat(np.arange(len(users)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return rows, self.indices[np.repeat(starts, lengths) + offsets]
