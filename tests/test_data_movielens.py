"""Tests of load_movielens on tiny invented files, plus one test on the real MovieLens 1M."""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from towhee_recsys.data import load_movielens
from towhee_recsys.data.movielens import _parse_ratings_by_line, _parse_ratings_fast
from towhee_recsys.errors import DatasetError
from towhee_recsys.settings import CACHE_ENV

ML1M_ENV = "TOWHEE_RECSYS_ML1M"


def make_zip(folder: Path, archive: Path, prefix: str = "ml-1m/") -> Path:
    """Pack the three .dat files of `folder` into `archive` under `prefix`."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in ("users.dat", "movies.dat", "ratings.dat"):
            bundle.write(folder / name, prefix + name)
    return archive


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- Folder input -------------------------------------------------------------------


def test_load_folder_counts(movielens_folder: Path) -> None:
    dataset = load_movielens(movielens_folder)

    assert len(dataset.ratings) == 5
    assert len(dataset.users) == 3
    assert len(dataset.movies) == 4
    assert dataset.name == "ml-1m"


def test_load_latin1_title_round_trip(movielens_folder: Path) -> None:
    movie = load_movielens(movielens_folder).movies[20]

    assert movie.title == "Misérables, Les (1995)"
    assert movie.year == 1995
    assert movie.name == "Misérables, Les"


def test_load_movie_fields(movielens_folder: Path) -> None:
    movies = load_movielens(movielens_folder).movies

    assert movies[10].genres == ("Drama", "Romance")
    assert movies[40].title == "Seven Steps (Se7en) (1999)"
    assert movies[40].year == 1999
    assert movies[40].movie_id == 40


def test_load_movie_without_year_or_genres(movielens_folder: Path) -> None:
    movie = load_movielens(movielens_folder).movies[30]

    assert movie.genres == ()
    assert movie.year is None


def test_load_file_order(movielens_folder: Path) -> None:
    dataset = load_movielens(movielens_folder)

    assert list(dataset.movies) == [10, 20, 30, 40]
    assert list(dataset.users) == [1, 2, 3]


def test_load_user_fields(movielens_folder: Path) -> None:
    user = load_movielens(movielens_folder).users[2]

    assert user.user_id == 2
    assert user.gender == "M"
    assert user.age == 35
    assert user.occupation == 7


def test_load_rating_columns(movielens_folder: Path) -> None:
    ratings = load_movielens(movielens_folder).ratings

    assert ratings.user_id.tolist() == [1, 1, 2, 3, 2]
    assert ratings.movie_id.tolist() == [10, 20, 30, 40, 10]
    assert ratings.rating.tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert ratings.timestamp is not None
    assert ratings.timestamp.tolist() == [978300000, 978300100, 978300200, 978300300, 978300400]


def test_load_rating_dtypes(movielens_folder: Path) -> None:
    ratings = load_movielens(movielens_folder).ratings

    assert ratings.user_id.dtype == np.int64
    assert ratings.movie_id.dtype == np.int64
    assert ratings.rating.dtype == np.float32
    assert ratings.timestamp is not None
    assert ratings.timestamp.dtype == np.int64


def test_load_parent_of_ml1m_folder(movielens_folder: Path) -> None:
    dataset = load_movielens(movielens_folder.parent)

    assert len(dataset.ratings) == 5


def test_load_string_path(movielens_folder: Path) -> None:
    dataset = load_movielens(str(movielens_folder))

    assert len(dataset.movies) == 4


def test_load_trailing_blank_lines(tmp_path: Path, movielens_writer, movielens_texts) -> None:
    folder = movielens_writer(
        tmp_path,
        users=movielens_texts["users.dat"] + "\n",
        movies=movielens_texts["movies.dat"] + "\n\n",
        ratings=movielens_texts["ratings.dat"] + "\n \n",
    )

    dataset = load_movielens(folder)

    assert len(dataset.ratings) == 5
    assert len(dataset.movies) == 4


def test_load_crlf_line_endings(tmp_path: Path, movielens_writer, movielens_texts) -> None:
    folder = movielens_writer(
        tmp_path,
        users=movielens_texts["users.dat"].replace("\n", "\r\n"),
        movies=movielens_texts["movies.dat"].replace("\n", "\r\n"),
        ratings=movielens_texts["ratings.dat"].replace("\n", "\r\n"),
    )

    dataset = load_movielens(folder)

    assert dataset.movies[40].genres == ("Thriller",)
    assert dataset.ratings.timestamp is not None
    assert dataset.ratings.timestamp[-1] == 978300400


def test_load_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_movielens(tmp_path / "absent")


def test_load_folder_missing_file(movielens_folder: Path) -> None:
    (movielens_folder / "users.dat").unlink()

    with pytest.raises(DatasetError, match="users.dat"):
        load_movielens(movielens_folder)


# --- Zip input ----------------------------------------------------------------------


def test_load_zip_with_folder_prefix(movielens_folder: Path, tmp_path: Path) -> None:
    archive = make_zip(movielens_folder, tmp_path / "ml-1m.zip")

    dataset = load_movielens(archive)

    assert dataset.movies[20].title == "Misérables, Les (1995)"
    assert len(dataset.ratings) == 5


def test_load_zip_without_prefix(movielens_folder: Path, tmp_path: Path) -> None:
    archive = make_zip(movielens_folder, tmp_path / "flat.zip", prefix="")

    dataset = load_movielens(archive)

    assert len(dataset.users) == 3


def test_load_zip_missing_member(movielens_folder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "partial.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(movielens_folder / "users.dat", "ml-1m/users.dat")

    with pytest.raises(DatasetError, match="movies.dat"):
        load_movielens(archive)


def test_load_file_not_zip(tmp_path: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(b"not a zip archive")

    with pytest.raises(DatasetError, match="zip archive"):
        load_movielens(archive)


# --- Malformed lines ----------------------------------------------------------------

FIRST_RATING = "1::10::5::978300000\n"
FIRST_USER = "1::F::25::4::12345\n"
FIRST_MOVIE = "10::Harbor Lights (1994)::Drama\n"

# (file, content, line number of the bad line, expected reason)
MALFORMED_CASES = [
    ("ratings.dat", FIRST_RATING + "1::20::3\n", 2, "expected 4 fields"),
    ("ratings.dat", FIRST_RATING + "1::x20::3::978300100\n", 2, "MovieID 'x20' is not an integer"),
    ("ratings.dat", FIRST_RATING + "1::20::6::978300100\n", 2, "Rating 6 is outside 1..5"),
    ("ratings.dat", FIRST_RATING + "1::20::0::978300100\n", 2, "Rating 0 is outside 1..5"),
    ("ratings.dat", FIRST_RATING + "1::20::3.5::978300100\n", 2, "Rating '3.5' is not a whole"),
    ("ratings.dat", FIRST_RATING + "\n1::20::3::978300100\n", 2, "the line is empty"),
    ("ratings.dat", FIRST_RATING + "1::20::3::1_000\n", 2, "Timestamp '1_000' is not an integer"),
    ("ratings.dat", FIRST_RATING + "1::20::3::99999999999999999999\n", 2, "outside the int64"),
    ("ratings.dat", FIRST_RATING * 2 + "1::30::4::97830:0200\n", 3, "Timestamp '97830:0200'"),
    ("users.dat", FIRST_USER + "2::M::old::7::54321\n", 2, "Age 'old' is not an integer"),
    ("users.dat", FIRST_USER + "2::M::35::7\n", 2, "expected 5 fields"),
    ("users.dat", FIRST_USER + "1::M::35::7::54321\n", 2, "UserID 1 repeats line 1"),
    ("movies.dat", FIRST_MOVIE + "10::Echo (1996)::Drama\n", 2, "MovieID 10 repeats line 1"),
    ("movies.dat", FIRST_MOVIE + "20::A::B (1996)::Drama\n", 2, "expected 3 fields"),
    ("movies.dat", FIRST_MOVIE + "20::   ::Drama\n", 2, "Title is empty"),
]


@pytest.mark.parametrize(("file_name", "content", "line_number", "reason"), MALFORMED_CASES)
def test_load_malformed_line_message(
    tmp_path: Path, movielens_writer, file_name: str, content: str, line_number: int, reason: str
) -> None:
    folder = movielens_writer(tmp_path)
    (folder / file_name).write_bytes(content.encode("latin-1"))
    bad_line = content.split("\n")[line_number - 1]

    with pytest.raises(DatasetError) as caught:
        load_movielens(folder)

    message = str(caught.value)
    assert str(folder / file_name) in message
    assert f"line {line_number} " in message
    assert reason in message
    assert repr(bad_line) in message


def test_load_long_line_truncated(tmp_path: Path, movielens_writer) -> None:
    long_title = "A" * 300
    folder = movielens_writer(tmp_path, movies=f"10::{long_title} (1994)\n")

    with pytest.raises(DatasetError) as caught:
        load_movielens(folder)

    message = str(caught.value)
    assert "..." in message
    assert long_title not in message


def test_load_malformed_zip_member_named(movielens_folder: Path, tmp_path: Path) -> None:
    (movielens_folder / "ratings.dat").write_bytes(b"1::10::5::978300000\n1::20::9::978300100\n")
    archive = make_zip(movielens_folder, tmp_path / "ml-1m.zip")

    with pytest.raises(DatasetError, match=r"line 2 of ml-1m/ratings.dat in .*ml-1m.zip"):
        load_movielens(archive)


def test_load_empty_ratings(tmp_path: Path, movielens_writer) -> None:
    folder = movielens_writer(tmp_path, ratings="\n")

    with pytest.raises(DatasetError, match="contains no ratings"):
        load_movielens(folder)


def test_load_rating_unknown_movie(tmp_path: Path, movielens_writer) -> None:
    ratings = "1::10::5::978300000\n1::77::3::978300100\n2::78::4::978300200\n"
    folder = movielens_writer(tmp_path, ratings=ratings)

    with pytest.raises(DatasetError) as caught:
        load_movielens(folder)

    message = str(caught.value)
    assert "2 ratings refer to 2 MovieIDs missing from" in message
    assert "77 on line 2" in message
    assert "movies.dat" in message


def test_load_rating_unknown_user(tmp_path: Path, movielens_writer) -> None:
    folder = movielens_writer(tmp_path, ratings="1::10::5::978300000\n9::20::3::978300100\n")

    with pytest.raises(DatasetError, match="9 on line 2"):
        load_movielens(folder)


def test_ratings_fast_and_line_parse_agree(movielens_texts) -> None:
    data = movielens_texts["ratings.dat"].encode("latin-1")

    fast = _parse_ratings_fast(data)
    by_line = _parse_ratings_by_line("ratings.dat", data)

    assert fast is not None
    assert np.array_equal(fast, by_line)


def test_ratings_fast_rejects_blank_middle_line() -> None:
    assert _parse_ratings_fast(b"1::10::5::978300000\n\n1::20::3::978300100\n") is None


# --- Cache and download -------------------------------------------------------------


@pytest.fixture
def served_zip(movielens_folder: Path, tmp_path: Path) -> Path:
    """Return a MovieLens-format zip outside the cache, for download through file://."""
    served = tmp_path / "served"
    served.mkdir()
    return make_zip(movielens_folder, served / "ml-1m.zip")


def test_download_good_checksum(served_zip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    dataset = load_movielens(
        cache_dir=cache, url=served_zip.as_uri(), sha256=sha256_of(served_zip), show_progress=False
    )

    assert len(dataset.ratings) == 5
    assert (cache / "ml-1m.zip").read_bytes() == served_zip.read_bytes()
    assert sorted(path.name for path in cache.iterdir()) == ["ml-1m.zip"]


def test_download_with_progress_bar(served_zip: Path, tmp_path: Path) -> None:
    dataset = load_movielens(
        cache_dir=tmp_path / "cache", url=served_zip.as_uri(), sha256=sha256_of(served_zip)
    )

    assert len(dataset.movies) == 4


def test_download_bad_checksum(served_zip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    expected = "0" * 64

    with pytest.raises(DatasetError) as caught:
        load_movielens(
            cache_dir=cache, url=served_zip.as_uri(), sha256=expected, show_progress=False
        )

    message = str(caught.value)
    assert expected in message
    assert sha256_of(served_zip) in message
    assert list(cache.iterdir()) == []


def test_download_network_failure(tmp_path: Path) -> None:
    url = (tmp_path / "absent.zip").as_uri()

    with pytest.raises(DatasetError) as caught:
        load_movielens(cache_dir=tmp_path / "cache", url=url, show_progress=False)

    message = str(caught.value)
    assert url in message
    assert CACHE_ENV in message
    assert "path=" in message
    assert isinstance(caught.value.__cause__, OSError)


def test_download_logged_at_info(
    served_zip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="towhee_recsys.data.movielens")

    load_movielens(
        cache_dir=tmp_path / "cache",
        url=served_zip.as_uri(),
        sha256=sha256_of(served_zip),
        show_progress=False,
    )

    assert any(served_zip.as_uri() in record.getMessage() for record in caplog.records)


def test_cache_second_load_skips_download(served_zip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digest = sha256_of(served_zip)
    load_movielens(cache_dir=cache, url=served_zip.as_uri(), sha256=digest, show_progress=False)
    served_zip.unlink()

    dataset = load_movielens(cache_dir=cache, url=served_zip.as_uri(), sha256=digest)

    assert len(dataset.users) == 3


def test_cache_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="download=False"):
        load_movielens(cache_dir=tmp_path, download=False)


def test_cache_folder_from_env(
    served_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(served_zip.parent))

    dataset = load_movielens(download=False, sha256=sha256_of(served_zip))

    assert len(dataset.ratings) == 5


def test_cache_checksum_mismatch_keeps_file(served_zip: Path) -> None:
    with pytest.raises(DatasetError, match="Checksum mismatch"):
        load_movielens(cache_dir=served_zip.parent, download=False)

    assert served_zip.exists()


# --- Real MovieLens 1M --------------------------------------------------------------


@pytest.fixture
def ml1m_folder() -> Path:
    folder = os.environ.get(ML1M_ENV)
    if not folder:
        pytest.skip(f"{ML1M_ENV} is not set; point it at the MovieLens 1M folder to run this test")
    if not (Path(folder) / "ratings.dat").is_file():
        pytest.skip(f"{ML1M_ENV}={folder} does not contain ratings.dat")
    return Path(folder)


def test_real_ml1m(ml1m_folder: Path) -> None:
    dataset = load_movielens(ml1m_folder)

    assert len(dataset.ratings) == 1_000_209
    assert len(dataset.users) == 6_040
    assert len(dataset.movies) == 3_883
    assert dataset.movies[1].title == "Toy Story (1995)"
    assert dataset.movies[1].year == 1995
    assert dataset.movies[1].genres == ("Animation", "Children's", "Comedy")
    assert any("Misérables" in movie.title for movie in dataset.movies.values())
