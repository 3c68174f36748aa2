"""Generated datasets with a planted preference, for tests, examples and benchmarks.

Every user has one favourite genre and rates its movies 5 and all others 1, and the
favourite genre also decides the user's occupation. A model that learns anything
must therefore rank a user's favourite genre first, for known users from their
ratings and for new users from their occupation.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from towhee_recsys.data.dataset import Dataset, Movie, Ratings, User

GENRES = ("Comedy", "Drama", "Horror", "Sci-Fi")
_WORDS = {
    "Comedy": ("laugh", "party", "wedding", "silly"),
    "Drama": ("river", "letters", "winter", "father"),
    "Horror": ("night", "blood", "cellar", "scream"),
    "Sci-Fi": ("planet", "robot", "orbit", "signal"),
}


def planted_dataset(
    users: int = 200,
    movies_per_genre: int = 40,
    ratings_per_user: int = 30,
    seed: int = 0,
) -> Dataset:
    """Return a MovieLens-shaped dataset in which each user loves exactly one genre.

    User ``u`` (1-based) loves ``GENRES[(u - 1) % 4]`` and has occupation equal to that
    genre's index; gender and age are random. Movie ids are 1-based, genre by genre.
    """
    rng = np.random.default_rng(seed)
    catalog = _movies(movies_per_genre, rng)
    people = {
        user_id: User(user_id, str(rng.choice(["F", "M"])), int(rng.choice([18, 25, 35])), (user_id - 1) % len(GENRES))
        for user_id in range(1, users + 1)
    }

    movie_ids = np.array(list(catalog), dtype=np.int64)
    genre_of = np.array([GENRES.index(catalog[m].genres[0]) for m in movie_ids.tolist()])
    rows = []
    for user_id in people:
        favourite = (user_id - 1) % len(GENRES)
        chosen = rng.choice(len(movie_ids), size=min(ratings_per_user, len(movie_ids)), replace=False)
        for index in chosen:
            rating = 5 if genre_of[index] == favourite else 1
            rows.append((user_id, movie_ids[index], rating, 1_000_000_000 + len(rows)))

    table = np.array(rows, dtype=np.int64)
    ratings = Ratings(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].astype(np.float32), table[:, 3].copy())
    return Dataset(ratings, catalog, people, name="planted")


def _movies(per_genre: int, rng: np.random.Generator) -> dict[int, Movie]:
    catalog: dict[int, Movie] = {}
    for genre in GENRES:
        for number in range(per_genre):
            movie_id = len(catalog) + 1
            year = int(rng.integers(1970, 2000))
            word = _WORDS[genre][number % len(_WORDS[genre])]
            catalog[movie_id] = Movie(movie_id, f"The {word.title()} {number} ({year})", (genre,), year)
    return catalog


def write_csv_dataset(dataset: Dataset, folder: str | os.PathLike) -> dict[str, Path]:
    """Write a dataset as ratings.csv, movies.csv and users.csv in the own-dataset format.

    Returns the three paths by name ("ratings", "movies", "users").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.csv" for name in ("ratings", "movies", "users")}
    ratings = dataset.ratings
    timestamps = ratings.timestamp if ratings.timestamp is not None else [None] * len(ratings)

    with open(paths["ratings"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "movie_id", "rating", "timestamp"])
        for row in zip(
            ratings.user_id.tolist(), ratings.movie_id.tolist(), ratings.rating.tolist(), list(timestamps), strict=True
        ):
            writer.writerow(["" if cell is None else cell for cell in row])
    with open(paths["movies"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["movie_id", "title", "genres", "year"])
        for movie in dataset.movies.values():
            writer.writerow(
                [movie.movie_id, movie.title, "|".join(movie.genres), "" if movie.year is None else movie.year]
            )
    with open(paths["users"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "gender", "age", "occupation"])
        for user in dataset.users.values():
            writer.writerow(
                ["" if value is None else value for value in (user.user_id, user.gender, user.age, user.occupation)]
            )
    return paths
