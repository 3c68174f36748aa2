"""Datasets: MovieLens 1M and an own CSV format, loaded into one in-memory Dataset."""

from towhee_recsys.data.csv_format import load_csv_dataset
from towhee_recsys.data.dataset import Dataset, Movie, Ratings, User
from towhee_recsys.data.movielens import load_movielens
from towhee_recsys.data.titles import split_title

__all__ = [
    "Dataset",
    "Movie",
    "Ratings",
    "User",
    "load_csv_dataset",
    "load_movielens",
    "split_title",
]
