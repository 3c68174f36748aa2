"""Load an own dataset from CSV files: ratings, a movie catalog and optional demographics.

Each file starts with a header line, and columns may come in any order:

    ratings.csv  user_id,movie_id,rating[,timestamp]
    movies.csv   movie_id,title,genres[,year]     (genres separated by "|", may be empty)
    users.csv    user_id,gender,age,occupation    (optional, demographics may be empty)

Ids of one kind (user or movie) are ints when every such id in every file is an
integer, and strings otherwise. docs/dataset-format.md describes the format for users.
"""

from __future__ import annotations

import codecs
import csv
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from towhee_recsys.data.dataset import Dataset, Id, Movie, Ratings, User
from towhee_recsys.data.titles import split_title
from towhee_recsys.errors import DatasetError

PathLike = str | os.PathLike[str]
T = TypeVar("T")

_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class _Layout:
    """Header columns of one CSV file."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def describe(self) -> str:
        return ",".join(self.required) + "".join(f"[,{name}]" for name in self.optional)


_RATINGS = _Layout(("user_id", "movie_id", "rating"), ("timestamp",))
_MOVIES = _Layout(("movie_id", "title", "genres"), ("year",))
_USERS = _Layout(("user_id", "gender", "age", "occupation"))


@dataclass
class _Table:
    """Stripped cells of one CSV file by column, with the file line of each row."""

    path: Path
    lines: list[int] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    def line_error(self, row: int, problem: str, fix: str) -> DatasetError:
        """Build the error for data row `row`, naming the file and its line."""
        return DatasetError(f"{self.path} line {self.lines[row]}: {problem}. {fix}")

    def convert(self, column: str, parse: Callable[[str], T], problem: str, fix: str) -> list[T]:
        """Apply `parse` to every cell of `column`, turning a ValueError into a DatasetError."""
        values = []
        for row, cell in enumerate(self.columns[column]):
            try:
                values.append(parse(cell))
            except ValueError as error:
                raise self.line_error(row, problem.format(cell=cell), fix) from error
        return values


def load_csv_dataset(
    ratings: PathLike, movies: PathLike, users: PathLike | None = None, *, encoding: str = "utf-8"
) -> Dataset:
    """Read an own dataset from CSV files into a Dataset named ``"custom"``.

    Args:
        ratings: ratings file with header ``user_id,movie_id,rating[,timestamp]``.
        movies: catalog with header ``movie_id,title,genres[,year]``. Without a year
            cell the year is split from the title, as in ``"Heat (1995)"``.
        users: optional demographics with header ``user_id,gender,age,occupation``.
            When given, it must list every user that has ratings.
        encoding: text encoding of all three files.

    Returns:
        Movies and users in file order, ratings in file order as NumPy columns. Ids are
        ints (int64 arrays) when every id of their kind is an integer, else strings
        (object arrays). Demographics are stripped strings, None where empty.

    Raises:
        DatasetError: a file is missing or malformed. The message names the file, the
            line (the header is line 1) and the fix.
    """
    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise DatasetError(
            f"Unknown encoding {encoding!r}. Pass a Python codec name such as 'utf-8'."
        ) from error

    rating_table = _read_table(Path(ratings), _RATINGS, encoding)
    movie_table = _read_table(Path(movies), _MOVIES, encoding)
    user_table = _read_table(Path(users), _USERS, encoding) if users is not None else None

    movie_id_type = _id_type(rating_table.columns["movie_id"], movie_table.columns["movie_id"])
    user_columns = [rating_table.columns["user_id"]]
    if user_table is not None:
        user_columns.append(user_table.columns["user_id"])
    user_id_type = _id_type(*user_columns)

    movie_catalog = _build_movies(movie_table, movie_id_type)
    user_catalog = _build_users(user_table, user_id_type) if user_table is not None else {}
    rating_columns = _build_ratings(rating_table, user_id_type, movie_id_type)

    _check_known(rating_table, "movie_id", movie_id_type, movie_catalog, movie_table.path)
    if user_table is not None:
        _check_known(rating_table, "user_id", user_id_type, user_catalog, user_table.path)
    return Dataset(ratings=rating_columns, movies=movie_catalog, users=user_catalog, name="custom")


# --- Reading ------------------------------------------------------------------------


def _read_table(path: Path, layout: _Layout, encoding: str) -> _Table:
    """Read a CSV file into columns, skipping blank lines."""
    try:
        with path.open(newline="", encoding=encoding) as file:
            reader = csv.reader(file, strict=True)
            try:
                return _read_rows(reader, path, layout)
            except UnicodeDecodeError as error:
                raise DatasetError(
                    f"{path} is not valid {encoding} text ({error.reason}) at line "
                    f"{reader.line_num + 1} or later. Pass encoding= with the file's encoding, "
                    f"for example encoding='latin-1'."
                ) from error
            except csv.Error as error:
                raise DatasetError(
                    f"{path} line {reader.line_num}: invalid CSV ({error}). An unclosed quote "
                    f"may start on an earlier line. End every quoted cell with a double quote, "
                    f"and write a double quote inside a cell as two."
                ) from error
    except OSError as error:
        raise DatasetError(f"Failed to read {path}: {error.strerror or error}.") from error


def _read_rows(reader: Any, path: Path, layout: _Layout) -> _Table:
    """Collect the rows of a csv.reader, with the line number of each from `reader.line_num`."""
    header = next(reader, None)
    if header is None:
        raise DatasetError(f"{path} is empty. Its line 1 must be the header {layout.describe()}.")
    names = _check_header(header, path, layout)

    table = _Table(path, columns={name: [] for name in names})
    targets = [table.columns[name] for name in names]
    for row in reader:
        line = reader.line_num
        is_blank_line = len(row) == 0 or (len(row) == 1 and not row[0].strip())
        if is_blank_line:
            continue
        if len(row) != len(names):
            raise DatasetError(
                f"{path} line {line}: expected {len(names)} columns as in the header, found "
                f"{len(row)}. Quote cells that contain commas, for example \"Heat, The\"."
            )
        table.lines.append(line)
        for target, cell in zip(targets, row, strict=True):
            target.append(cell.strip())
    return table


def _check_header(header: list[str], path: Path, layout: _Layout) -> list[str]:
    """Return the normalized column names of `header`, raising if it does not fit `layout`."""
    names = [cell.strip().lstrip("\ufeff").strip().lower() for cell in header]
    expected = f"The header must be {layout.describe()}, in any order."
    missing = [name for name in layout.required if name not in names]
    if missing:
        raise DatasetError(f"{path} line 1: missing column(s) {', '.join(missing)}. {expected}")

    allowed = layout.required + layout.optional
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise DatasetError(f"{path} line 1: unknown column(s) {', '.join(unknown)}. {expected}")

    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(f"{path} line 1: repeated column(s) {', '.join(repeated)}. {expected}")
    return names


# --- Ids ----------------------------------------------------------------------------


def _id_type(*columns: list[str]) -> type[int] | type[str]:
    """Return int if every cell of `columns` is an int64 integer, else str."""
    for column in columns:
        for cell in column:
            try:
                _parse_int(cell)
            except ValueError:
                return str
    return int


def _convert_ids(table: _Table, column: str, id_type: type[int] | type[str]) -> list[Id]:
    for row, cell in enumerate(table.columns[column]):
        if not cell:
            raise table.line_error(row, f"{column} is empty", f"Give every row a {column}.")
    return [id_type(cell) for cell in table.columns[column]]


def _id_array(ids: list[Id], id_type: type[int] | type[str]) -> np.ndarray:
    if id_type is int:
        return np.array(ids, dtype=np.int64)
    array = np.empty(len(ids), dtype=object)
    array[:] = ids
    return array


# --- Building records ---------------------------------------------------------------


def _build_movies(table: _Table, id_type: type[int] | type[str]) -> dict[Id, Movie]:
    if len(table) == 0:
        raise DatasetError(f"{table.path} contains no movies. Add one row per movie.")
    ids = _convert_ids(table, "movie_id", id_type)
    _check_unique(table, "movie_id", ids)
    years = _movie_years(table)

    movies: dict[Id, Movie] = {}
    for row, movie_id in enumerate(ids):
        title = table.columns["title"][row]
        if not title:
            raise table.line_error(row, "title is empty", "Give every movie a title.")
        genres = tuple(genre.strip() for genre in table.columns["genres"][row].split("|"))
        movies[movie_id] = Movie(
            movie_id=movie_id,
            title=title,
            genres=tuple(genre for genre in genres if genre),
            year=years[row],
        )
    return movies


def _movie_years(table: _Table) -> list[int | None]:
    """Return each movie's year: the year cell if filled, else the year split from the title."""
    from_titles = [split_title(title)[1] for title in table.columns["title"]]
    if "year" not in table.columns:
        return from_titles

    cells = table.convert(
        "year",
        lambda cell: _parse_int(cell) if cell else None,
        "year {cell!r} is not an integer",
        "Write the year as digits, such as 1995, or leave the cell empty.",
    )
    return [cell if cell is not None else title for cell, title in zip(cells, from_titles, strict=True)]


def _build_users(table: _Table, id_type: type[int] | type[str]) -> dict[Id, User]:
    ids = _convert_ids(table, "user_id", id_type)
    _check_unique(table, "user_id", ids)
    columns = table.columns
    return {
        user_id: User(
            user_id=user_id,
            gender=columns["gender"][row] or None,
            age=columns["age"][row] or None,
            occupation=columns["occupation"][row] or None,
        )
        for row, user_id in enumerate(ids)
    }


def _build_ratings(
    table: _Table, user_id_type: type[int] | type[str], movie_id_type: type[int] | type[str]
) -> Ratings:
    if len(table) == 0:
        raise DatasetError(f"{table.path} contains no ratings. Add one row per rating.")
    user_ids = _convert_ids(table, "user_id", user_id_type)
    movie_ids = _convert_ids(table, "movie_id", movie_id_type)
    ratings = table.convert(
        "rating",
        _parse_finite_float,
        "rating {cell!r} is not a finite number",
        "Write the rating as a number, such as 4 or 3.5.",
    )
    return Ratings(
        user_id=_id_array(user_ids, user_id_type),
        movie_id=_id_array(movie_ids, movie_id_type),
        rating=np.array(ratings, dtype=np.float32),
        timestamp=_timestamps(table),
    )


def _parse_int(cell: str) -> int:
    """Convert an int64 integer, rejecting "1_000" and non-ASCII digits that int() accepts."""
    if not _INTEGER.fullmatch(cell) or not _INT64_MIN <= int(cell) <= _INT64_MAX:
        raise ValueError(f"{cell!r} is not an int64 integer")
    return int(cell)


def _parse_finite_float(cell: str) -> float:
    value = float(cell)
    if not math.isfinite(value):
        raise ValueError(f"{cell!r} is not finite")
    return value


def _timestamps(table: _Table) -> np.ndarray | None:
    """Return int64 timestamps, or None if the column is absent or empty in every row."""
    cells = table.columns.get("timestamp")
    if cells is None or not any(cells):
        return None
    if not all(cells):
        row = cells.index("")
        raise table.line_error(
            row,
            "timestamp is empty but other rows have one",
            "Fill in every timestamp, or leave the column empty in every row.",
        )
    values = table.convert(
        "timestamp",
        _parse_int,
        "timestamp {cell!r} is not an integer",
        "Write timestamps as whole seconds since 1970-01-01 UTC.",
    )
    return np.array(values, dtype=np.int64)


# --- Consistency checks -------------------------------------------------------------


def _check_unique(table: _Table, column: str, ids: list[Id]) -> None:
    first_rows: dict[Id, int] = {}
    for row, key in enumerate(ids):
        if key in first_rows:
            raise table.line_error(
                row,
                f"duplicate {column} {key!r}, first on line {table.lines[first_rows[key]]}",
                "Keep one row per id.",
            )
        first_rows[key] = row


def _check_known(
    table: _Table,
    column: str,
    id_type: type[int] | type[str],
    known: Mapping[Id, object],
    defining_path: Path,
) -> None:
    """Raise DatasetError at the first rating whose id is not a key of `known`."""
    for row, cell in enumerate(table.columns[column]):
        if id_type(cell) not in known:
            raise table.line_error(
                row,
                f"{column} {cell!r} is not in {defining_path}",
                f"Add a row for it to {defining_path} or remove the rating.",
            )
