"""Baseline scorers that every protocol reports beside the model: random, popularity, demographics.

Each ranking baseline is a score-rows function for `ranking.exact_top_lists`: it takes an
array of user indices and returns one row of movie scores per user.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from towhee_recsys.data.dataset import Dataset, User

# A demographic group backs off to the next coarser one when it has fewer training users.
MIN_GROUP_USERS = 10
# Back-off chain of per-demographic popularity, finest first. The empty level () is all users.
DEMOGRAPHIC_LEVELS: tuple[tuple[str, ...], ...] = (("gender", "age", "occupation"), ("gender", "age"), ("age",), ())


class RandomScores:
    """Uniform random scores from a seeded generator, drawn anew for every call."""

    def __init__(self, n_movies: int, seed: int) -> None:
        self.n_movies = n_movies
        self.rng = np.random.default_rng(seed)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self.rng.random((len(users), self.n_movies), dtype=np.float32)


class PopularityScores:
    """The number of training ratings of each movie, the same for every user."""

    def __init__(self, train_movies: np.ndarray, n_movies: int) -> None:
        self.counts = np.bincount(train_movies, minlength=n_movies).astype(np.float32)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))


class DemographicPopularityScores:
    """Training-rating counts among users of the same gender, age group and occupation.

    A group with fewer than `min_group_users` training users backs off to (gender, age),
    then to age alone, then to all users. Within a group, ties are broken by global
    popularity. A missing demographic value forms its own group.

    Args:
        user_ids: id of each user index.
        users: demographics by user id. A user missing here has unknown demographics.
        train_users: user index of each training rating.
        train_movies: movie index of each training rating.
        n_movies: number of candidate movies.
    """

    def __init__(
        self,
        user_ids: np.ndarray,
        users: dict,
        train_users: np.ndarray,
        train_movies: np.ndarray,
        n_movies: int,
        min_group_users: int = MIN_GROUP_USERS,
    ) -> None:
        self.n_movies = n_movies
        self.min_group_users = min_group_users
        people = [users.get(user_id) or User(user_id) for user_id in user_ids.tolist()]
        global_counts = np.bincount(train_movies, minlength=n_movies).astype(np.float64)
        # Global popularity below 1 decides only between movies of equal group count.
        self._tie_break = global_counts / (global_counts.max() + 1.0)

        trained = np.unique(train_users)
        self._counts: dict[tuple, np.ndarray] = {}
        self._group_users: dict[tuple, int] = defaultdict(int)
        for level in DEMOGRAPHIC_LEVELS:
            keys = [_group_key(people[user], level) for user in trained.tolist()]
            for key in keys:
                self._group_users[key] += 1
            key_of_user = dict(zip(trained.tolist(), keys, strict=True))
            rating_keys = [key_of_user[user] for user in train_users.tolist()]
            self._accumulate(rating_keys, train_movies)

        self._row_of_user = np.zeros(len(people), dtype=np.int64)
        rows: dict[tuple, int] = {}
        for index, person in enumerate(people):
            key = self.group_of(person)
            self._row_of_user[index] = rows.setdefault(key, len(rows))
        self._scores = np.stack([self._counts[key] + self._tie_break for key in rows]).astype(np.float32)

    def _accumulate(self, keys: Sequence[tuple], train_movies: np.ndarray) -> None:
        by_key: dict[tuple, list[int]] = defaultdict(list)
        for position, key in enumerate(keys):
            by_key[key].append(position)
        for key, positions in by_key.items():
            self._counts[key] = np.bincount(train_movies[positions], minlength=self.n_movies).astype(np.float64)

    def group_of(self, user: User) -> tuple:
        """Return the finest demographic group of `user` with enough training users."""
        for level in DEMOGRAPHIC_LEVELS:
            key = _group_key(user, level)
            if self._group_users.get(key, 0) >= self.min_group_users or not level:
                return key
        raise AssertionError("the last back-off level covers every user")

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self._scores[self._row_of_user[users]]


def _group_key(user: User, level: tuple[str, ...]) -> tuple:
    return (level, *(getattr(user, name) for name in level))


def has_demographics(dataset: Dataset) -> bool:
    """Return True if any user of the dataset has a gender, age or occupation."""
    return any(
        value is not None for user in dataset.users.values() for value in (user.gender, user.age, user.occupation)
    )


def mean_ratings(train_movies: np.ndarray, train_ratings: np.ndarray, n_movies: int) -> tuple[float, np.ndarray]:
    """Return the global mean training rating and each movie's mean (the global mean if unrated)."""
    global_mean = float(np.mean(train_ratings))
    sums = np.bincount(train_movies, weights=train_ratings, minlength=n_movies)
    counts = np.bincount(train_movies, minlength=n_movies)
    movie_means = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
    return global_mean, movie_means
