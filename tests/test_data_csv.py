"""Tests of load_csv_dataset, the own-dataset CSV format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from towhee_recsys.data import load_csv_dataset
from towhee_recsys.errors import DatasetError

RATINGS_CSV = "user_id,movie_id,rating,timestamp\n1,10,5,1000\n1,20,3.5,1100\n2,10,2,1200\n"
MOVIES_CSV = (
    'movie_id,title,genres\n10,"Harbor Lights, The (1994)",Drama|Romance\n20,Quiet Hours,\n'
)
USERS_CSV = "user_id,gender,age,occupation\n1,F,25,teacher\n2,,,\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "ratings": write(tmp_path / "ratings.csv", RATINGS_CSV),
        "movies": write(tmp_path / "movies.csv", MOVIES_CSV),
        "users": write(tmp_path / "users.csv", USERS_CSV),
    }


def load_with(tmp_path: Path, ratings: str = RATINGS_CSV, movies: str = MOVIES_CSV, users=None):
    """Write the given texts to tmp_path and load them."""
    users_path = write(tmp_path / "users.csv", users) if users is not None else None
    return load_csv_dataset(
        write(tmp_path / "ratings.csv", ratings), write(tmp_path / "movies.csv", movies), users_path
    )


def error_of(tmp_path: Path, **texts: str) -> str:
    with pytest.raises(DatasetError) as caught:
        load_with(tmp_path, **texts)
    return str(caught.value)


# --- Valid files --------------------------------------------------------------------


def test_csv_int_ids_with_users(files: dict[str, Path]) -> None:
    dataset = load_csv_dataset(files["ratings"], files["movies"], files["users"])

    assert dataset.name == "custom"
    assert dataset.ratings.user_id.tolist() == [1, 1, 2]
    assert dataset.ratings.movie_id.tolist() == [10, 20, 10]
    assert list(dataset.movies) == [10, 20]
    assert list(dataset.users) == [1, 2]


def test_csv_int_id_types(files: dict[str, Path]) -> None:
    dataset = load_csv_dataset(files["ratings"], files["movies"], files["users"])

    assert dataset.ratings.user_id.dtype == np.int64
    assert dataset.ratings.movie_id.dtype == np.int64
    assert type(next(iter(dataset.movies))) is int
    assert type(dataset.movies[10].movie_id) is int
    assert type(dataset.users[1].user_id) is int


def test_csv_array_ids_find_records(files: dict[str, Path]) -> None:
    dataset = load_csv_dataset(files["ratings"], files["movies"], files["users"])

    assert dataset.movies[dataset.ratings.movie_id[1]].title == "Quiet Hours"
    assert dataset.users[dataset.ratings.user_id[2]].user_id == 2


def test_csv_rating_columns(files: dict[str, Path]) -> None:
    ratings = load_csv_dataset(files["ratings"], files["movies"]).ratings

    assert ratings.rating.dtype == np.float32
    assert ratings.rating.tolist() == [5.0, 3.5, 2.0]
    assert ratings.timestamp is not None
    assert ratings.timestamp.dtype == np.int64
    assert ratings.timestamp.tolist() == [1000, 1100, 1200]


def test_csv_without_users(files: dict[str, Path]) -> None:
    dataset = load_csv_dataset(files["ratings"], files["movies"])

    assert dataset.users == {}
    assert len(dataset.ratings) == 3


def test_csv_demographics(files: dict[str, Path]) -> None:
    users = load_csv_dataset(files["ratings"], files["movies"], files["users"]).users

    assert users[1].gender == "F"
    assert users[1].age == "25"
    assert users[1].occupation == "teacher"


def test_csv_missing_demographics(files: dict[str, Path]) -> None:
    user = load_csv_dataset(files["ratings"], files["movies"], files["users"]).users[2]

    assert user.gender is None
    assert user.age is None
    assert user.occupation is None


def test_csv_movie_fields(files: dict[str, Path]) -> None:
    movies = load_csv_dataset(files["ratings"], files["movies"]).movies

    assert movies[10].title == "Harbor Lights, The (1994)"
    assert movies[10].genres == ("Drama", "Romance")
    assert movies[10].year == 1994


def test_csv_missing_genres_and_year(files: dict[str, Path]) -> None:
    movie = load_csv_dataset(files["ratings"], files["movies"]).movies[20]

    assert movie.genres == ()
    assert movie.year is None


def test_csv_year_column(tmp_path: Path) -> None:
    movies = "movie_id,title,genres,year\n10,Harbor Lights (1994),Drama,1990\n20,Quiet Hours,,\n"

    catalog = load_with(tmp_path, movies=movies).movies

    assert catalog[10].year == 1990
    assert catalog[20].year is None


def test_csv_empty_year_cell_uses_title(tmp_path: Path) -> None:
    movies = "movie_id,title,genres,year\n10,Harbor Lights (1994),Drama,\n20,Quiet Hours,,\n"

    catalog = load_with(tmp_path, movies=movies).movies

    assert catalog[10].year == 1994


def test_csv_string_ids(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\nalice,tt010,4\nbob,tt020,2\n"
    movies = "movie_id,title,genres\ntt010,Harbor Lights (1994),Drama\ntt020,Quiet Hours,\n"

    dataset = load_with(tmp_path, ratings=ratings, movies=movies)

    assert dataset.ratings.user_id.dtype == object
    assert dataset.ratings.movie_id.dtype == object
    assert dataset.ratings.user_id.tolist() == ["alice", "bob"]
    assert list(dataset.movies) == ["tt010", "tt020"]
    assert dataset.movies["tt020"].movie_id == "tt020"


def test_csv_one_string_id_makes_all_strings(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\n1,7,4\n2,x8,2\n"
    movies = "movie_id,title,genres\n7,Harbor Lights (1994),Drama\nx8,Quiet Hours,\n"

    dataset = load_with(tmp_path, ratings=ratings, movies=movies)

    assert dataset.ratings.movie_id.tolist() == ["7", "x8"]
    assert list(dataset.movies) == ["7", "x8"]
    assert dataset.ratings.user_id.tolist() == [1, 2]


def test_csv_string_user_ids_in_users_file(tmp_path: Path) -> None:
    users = "user_id,gender,age,occupation\n1,F,25,\nu2,M,,\n"
    ratings = "user_id,movie_id,rating\n1,10,4\nu2,20,2\n"

    dataset = load_with(tmp_path, ratings=ratings, users=users)

    assert dataset.ratings.user_id.tolist() == ["1", "u2"]
    assert list(dataset.users) == ["1", "u2"]


def test_csv_int_ids_written_differently_match(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\n+1,010,4\n-2,20,2\n"

    dataset = load_with(tmp_path, ratings=ratings)

    assert dataset.ratings.movie_id.tolist() == [10, 20]
    assert dataset.ratings.user_id.tolist() == [1, -2]


def test_csv_id_beyond_int64_stays_string(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\n99999999999999999999,10,4\n"

    dataset = load_with(tmp_path, ratings=ratings)

    assert dataset.ratings.user_id.tolist() == ["99999999999999999999"]


def test_csv_without_timestamp_column(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\n1,10,4\n"

    assert load_with(tmp_path, ratings=ratings).ratings.timestamp is None


def test_csv_empty_timestamps(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating,timestamp\n1,10,4,\n2,20,3,\n"

    assert load_with(tmp_path, ratings=ratings).ratings.timestamp is None


def test_csv_header_order_case_and_bom(tmp_path: Path) -> None:
    ratings = "\ufeffRating, Movie_ID ,USER_ID\n4,10,1\n"

    ratings_columns = load_with(tmp_path, ratings=ratings).ratings

    assert ratings_columns.user_id.tolist() == [1]
    assert ratings_columns.movie_id.tolist() == [10]
    assert ratings_columns.rating.tolist() == [4.0]


def test_csv_blank_lines_skipped(tmp_path: Path) -> None:
    ratings = "user_id,movie_id,rating\n1,10,4\n\n2,20,3\n\n"

    assert len(load_with(tmp_path, ratings=ratings).ratings) == 2


def test_csv_latin1_encoding(tmp_path: Path) -> None:
    movies = "movie_id,title,genres\n10,Misérables (1995),Drama\n20,Quiet Hours,\n"
    movies_path = write(tmp_path / "movies.csv", movies, encoding="latin-1")
    ratings_path = write(tmp_path / "ratings.csv", RATINGS_CSV)

    dataset = load_csv_dataset(ratings_path, movies_path, encoding="latin-1")

    assert dataset.movies[10].title == "Misérables (1995)"


# --- Invalid files ------------------------------------------------------------------


def test_csv_wrong_encoding(tmp_path: Path) -> None:
    movies = "movie_id,title,genres\n10,Misérables (1995),Drama\n20,Quiet Hours,\n"
    movies_path = write(tmp_path / "movies.csv", movies, encoding="latin-1")
    ratings_path = write(tmp_path / "ratings.csv", RATINGS_CSV)

    with pytest.raises(DatasetError) as caught:
        load_csv_dataset(ratings_path, movies_path)

    message = str(caught.value)
    assert str(movies_path) in message
    assert "utf-8" in message
    assert "encoding=" in message


def test_csv_unknown_encoding(files: dict[str, Path]) -> None:
    with pytest.raises(DatasetError, match="Unknown encoding 'no-such-codec'"):
        load_csv_dataset(files["ratings"], files["movies"], encoding="no-such-codec")


def test_csv_missing_file(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(DatasetError, match="absent.csv"):
        load_csv_dataset(files["ratings"], tmp_path / "absent.csv")


def test_csv_empty_file(tmp_path: Path) -> None:
    message = error_of(tmp_path, movies="")

    assert "movies.csv is empty" in message
    assert "movie_id,title,genres[,year]" in message


INVALID_CASES = [
    ("ratings", "user_id,rating\n1,4\n", 1, "missing column(s) movie_id"),
    ("ratings", "user_id,movie_id,rating,stars\n1,10,4,5\n", 1, "unknown column(s) stars"),
    ("ratings", "user_id,movie_id,rating,rating\n1,10,4,5\n", 1, "repeated column(s) rating"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n1,20\n", 3, "expected 3 columns"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n1,20,4,9\n", 3, "found 4"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n,20,4\n", 3, "user_id is empty"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n1,,4\n", 3, "movie_id is empty"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n,,\n", 3, "user_id is empty"),
    ("ratings", "user_id,movie_id,rating\n1,10,good\n", 2, "rating 'good' is not a finite number"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n1,20,\n", 3, "rating '' is not a finite"),
    ("ratings", "user_id,movie_id,rating\n1,10,nan\n", 2, "rating 'nan' is not a finite"),
    ("ratings", "user_id,movie_id,rating\n1,10,inf\n", 2, "rating 'inf' is not a finite"),
    ("ratings", "user_id,movie_id,rating,timestamp\n1,10,4,99\n1,20,3,\n", 3, "timestamp is empty"),
    ("ratings", "user_id,movie_id,rating,timestamp\n1,10,4,noon\n", 2, "timestamp 'noon'"),
    ("ratings", "user_id,movie_id,rating\n1,10,4\n1,30,4\n", 3, "movie_id '30' is not in"),
    ("ratings", "user_id,movie_id,rating\n", 0, "contains no ratings"),
    ("movies", "movie_id,title\n10,Heat\n", 1, "missing column(s) genres"),
    ("movies", "movie_id,title,genres\n10,Heat,\n20,Echo,\n10,Echo II,\n", 4, "duplicate movie_id"),
    ("movies", "movie_id,title,genres\n10,Heat,\n20,,\n", 3, "title is empty"),
    ("movies", "movie_id,title,genres,year\n10,Heat,,ninety\n20,Echo,,\n", 2, "year 'ninety'"),
    ("movies", "movie_id,title,genres\n10,Heat,\n\n20,Echo,Drama,extra\n", 4, "found 4"),
]


@pytest.mark.parametrize(("file_kind", "text", "line_number", "reason"), INVALID_CASES)
def test_csv_invalid_file_message(
    tmp_path: Path, file_kind: str, text: str, line_number: int, reason: str
) -> None:
    message = error_of(tmp_path, **{file_kind: text})

    assert f"{file_kind}.csv" in message
    assert reason in message
    if line_number:
        assert f"line {line_number}:" in message


def test_csv_duplicate_movie_first_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, movies="movie_id,title,genres\n10,Heat,\n20,Echo,\n10,Echo II,\n")

    assert "first on line 2" in message
    assert "Keep one row per id" in message


def test_csv_unknown_movie_names_fix(tmp_path: Path) -> None:
    message = error_of(tmp_path, ratings="user_id,movie_id,rating\n1,10,4\n1,30,4\n")

    assert "movies.csv" in message
    assert "remove the rating" in message


def test_csv_user_missing_from_users_file(tmp_path: Path) -> None:
    users = "user_id,gender,age,occupation\n1,F,25,\n"

    message = error_of(tmp_path, users=users)

    assert "ratings.csv line 4:" in message
    assert "user_id '2' is not in" in message
    assert "users.csv" in message


def test_csv_duplicate_user(tmp_path: Path) -> None:
    users = "user_id,gender,age,occupation\n1,F,25,\n2,M,,\n1,F,,\n"

    message = error_of(tmp_path, users=users)

    assert "users.csv line 4:" in message
    assert "duplicate user_id 1" in message


def test_csv_unclosed_quote(tmp_path: Path) -> None:
    movies = 'movie_id,title,genres\n10,"Heat,Drama\n'

    message = error_of(tmp_path, movies=movies)

    assert "movies.csv line 2:" in message
    assert "invalid CSV" in message
