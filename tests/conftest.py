"""Shared fixtures: tiny MovieLens-format files with invented data, written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# Invented records in the MovieLens 1M layout. Movie 20 has a Latin-1 title, movie 30
# has no year and no genres, movie 40 has a parenthesised group before its year.
USERS_DAT = "1::F::25::4::12345\n2::M::35::7::54321\n3::F::18::0::99999\n"
MOVIES_DAT = (
    "10::Harbor Lights (1994)::Drama|Romance\n"
    "20::Misérables, Les (1995)::Drama\n"
    "30::Untitled Project::\n"
    "40::Seven Steps (Se7en) (1999)::Thriller\n"
)
RATINGS_DAT = (
    "1::10::5::978300000\n"
    "1::20::3::978300100\n"
    "2::30::4::978300200\n"
    "3::40::1::978300300\n"
    "2::10::2::978300400\n"
)

MovieLensWriter = Callable[..., Path]


def write_movielens(
    folder: Path,
    *,
    users: str = USERS_DAT,
    movies: str = MOVIES_DAT,
    ratings: str = RATINGS_DAT,
) -> Path:
    """Write users.dat, movies.dat and ratings.dat, Latin-1 encoded, into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.dat").write_bytes(users.encode("latin-1"))
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    (folder / "ratings.dat").write_bytes(ratings.encode("latin-1"))
    return folder


@pytest.fixture
def movielens_writer() -> MovieLensWriter:
    """Return `write_movielens`, so tests can write files with their own contents."""
    return write_movielens


@pytest.fixture
def movielens_texts() -> dict[str, str]:
    """Return the default contents of users.dat, movies.dat and ratings.dat by file name."""
    return {"users.dat": USERS_DAT, "movies.dat": MOVIES_DAT, "ratings.dat": RATINGS_DAT}


@pytest.fixture
def movielens_folder(tmp_path: Path) -> Path:
    """Return a folder with the default tiny users.dat, movies.dat and ratings.dat."""
    return write_movielens(tmp_path / "ml-1m")


@pytest.fixture(scope="session", autouse=True)
def collect_towhee_graphs():
    """Free Towhee pipeline graphs before interpreter shutdown.

    towhee 1.1.3 releases operators in `Node.__del__`, which fails with an ignored
    AttributeError when it runs during shutdown, after module globals are cleared.
    """
    yield
    import gc

    gc.collect()

