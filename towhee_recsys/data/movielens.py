"""Load MovieLens 1M from its folder, its zip archive, or a checksummed download.

The three files are ``::``-separated and Latin-1 encoded:

    users.dat    UserID::Gender::Age::Occupation::Zip-code
    movies.dat   MovieID::Title::Genres        (genres separated by "|", may be empty)
    ratings.dat  UserID::MovieID::Rating::Timestamp
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from towhee_recsys.data.dataset import Dataset, Movie, Ratings, User
from towhee_recsys.data.titles import split_title
from towhee_recsys.errors import DatasetError
from towhee_recsys.settings import CACHE_ENV, default_cache_dir

logger = logging.getLogger(__name__)

ML_1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
# NOTE: this digest has not been checked against a fresh download, because the machine
# that wrote this module had no internet access.
ML_1M_SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
ML_1M_ARCHIVE = "ml-1m.zip"
DOWNLOAD_TIMEOUT_SECONDS = 60.0

_FILE_NAMES = ("users.dat", "movies.dat", "ratings.dat")
_USERS_FORMAT = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
_MOVIES_FORMAT = ("MovieID", "Title", "Genres")
_RATINGS_FORMAT = ("UserID", "MovieID", "Rating", "Timestamp")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_SHOWN_CHARS = 80
_CHUNK_BYTES = 1 << 16


def load_movielens(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    url: str = ML_1M_URL,
    sha256: str = ML_1M_SHA256,
) -> Dataset:
    """Read MovieLens 1M into a Dataset named ``"ml-1m"``, downloading the archive if needed.

    Args:
        path: a folder with users.dat, movies.dat and ratings.dat (directly or in an
            ``ml-1m/`` subfolder), or the ``ml-1m.zip`` archive, read without extracting.
            None uses ``ml-1m.zip`` in the cache folder.
        download: when the cached archive is missing, download it from `url`. If False,
            a missing archive raises DatasetError.
        cache_dir: cache folder. The default is ``settings.default_cache_dir()``:
            ``$TOWHEE_RECSYS_CACHE``, else ``~/.cache/towhee_recsys``.
        show_progress: show a tqdm progress bar in bytes while downloading.
        url: address of the archive to download.
        sha256: expected SHA-256 hex digest of the archive, checked after a download and
            on every load of the cached archive.

    Returns:
        Movies and users in file order, ratings in file order as NumPy columns.

    Raises:
        DatasetError: a file is missing or malformed, the download failed, the checksum
            differs, or ratings refer to users or movies that the other files lack.
    """
    if path is None:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = _cached_archive(
            folder, download=download, show_progress=show_progress, url=url, sha256=sha256
        )
    files = _read_files(Path(path).expanduser())

    users = _parse_users(*files["users.dat"])
    movies = _parse_movies(*files["movies.dat"])
    ratings = _parse_ratings(*files["ratings.dat"])
    ratings_source = files["ratings.dat"][0]
    _check_known_ids(ratings.user_id, users, "UserID", ratings_source, files["users.dat"][0])
    _check_known_ids(ratings.movie_id, movies, "MovieID", ratings_source, files["movies.dat"][0])
    return Dataset(ratings=ratings, movies=movies, users=users, name="ml-1m")


# --- Locating and reading the three files -------------------------------------------


def _read_files(path: Path) -> dict[str, tuple[str, bytes]]:
    """Read the three files from a folder or zip into {file name: (source label, bytes)}."""
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return _read_zip(path)
    raise DatasetError(
        f"MovieLens path not found: {path}. Pass the folder that contains users.dat, "
        f"movies.dat and ratings.dat, or the path of {ML_1M_ARCHIVE}."
    )


def _read_folder(folder: Path) -> dict[str, tuple[str, bytes]]:
    has_files = any((folder / name).exists() for name in _FILE_NAMES)
    if not has_files and (folder / "ml-1m").is_dir():
        folder = folder / "ml-1m"

    files = {}
    for name in _FILE_NAMES:
        file = folder / name
        try:
            files[name] = (str(file), file.read_bytes())
        except OSError as error:
            raise DatasetError(
                f"Failed to read {file}: {error.strerror or error}. A MovieLens 1M folder must "
                f"contain users.dat, movies.dat and ratings.dat."
            ) from error
    return files


def _read_zip(archive: Path) -> dict[str, tuple[str, bytes]]:
    files = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = set(bundle.namelist())
            for name in _FILE_NAMES:
                member = next((m for m in (f"ml-1m/{name}", name) if m in members), None)
                if member is None:
                    raise DatasetError(
                        f"{archive} contains neither ml-1m/{name} nor {name}. Pass the "
                        f"MovieLens 1M archive {ML_1M_ARCHIVE} or its unpacked folder."
                    )
                files[name] = (f"{member} in {archive}", bundle.read(member))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise DatasetError(
            f"Failed to read {archive} as a zip archive: {error}. Pass a folder or an intact "
            f"{ML_1M_ARCHIVE}. Delete a damaged cached archive to download it again."
        ) from error
    return files


# --- Cache and download -------------------------------------------------------------


def _cached_archive(
    folder: Path, *, download: bool, show_progress: bool, url: str, sha256: str
) -> Path:
    """Return the checked archive in `folder`, downloading it first when allowed."""
    archive = folder / ML_1M_ARCHIVE
    if archive.is_file():
        actual = _sha256_of_file(archive)
        if actual != sha256.lower():
            raise DatasetError(
                f"Checksum mismatch for {archive}: expected SHA-256 {sha256.lower()}, got "
                f"{actual}. Delete the file so that it is downloaded again, or pass the path of a "
                "local copy (path=, or --data on the command line)."
            )
        return archive

    if not download:
        raise DatasetError(
            f"{archive} not found and download=False. Pass path= (--data on the command line: "
            f"a MovieLens 1M folder or {ML_1M_ARCHIVE}), put {ML_1M_ARCHIVE} into {folder}, set {CACHE_ENV} to a "
            f"folder that contains it, or allow download=True."
        )
    _download(url, archive, sha256=sha256, show_progress=show_progress)
    return archive


def _download(url: str, target: Path, *, sha256: str, show_progress: bool) -> None:
    """Download `url` to `target` through a temporary file, renamed only if the checksum matches."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as error:
        raise DatasetError(
            f"Failed to create the cache folder {target.parent}: {error}. Set {CACHE_ENV} to a "
            f"writable folder or pass cache_dir=."
        ) from error

    temporary = Path(temporary_name)
    logger.info("Downloading %s to %s", url, target)
    try:
        with os.fdopen(descriptor, "wb") as output:
            actual = _copy_url(url, output, show_progress=show_progress)
        if actual != sha256.lower():
            raise DatasetError(
                f"Checksum mismatch for the download of {url}: expected SHA-256 "
                f"{sha256.lower()}, got {actual}. The file was deleted. Retry later, or "
                f"pass path= (--data on the command line) with a copy of {ML_1M_ARCHIVE} obtained elsewhere."
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("Downloaded %s (%d bytes, SHA-256 verified)", target, target.stat().st_size)


def _copy_url(url: str, output: BinaryIO, *, show_progress: bool) -> str:
    """Write the body of `url` to `output` and return its SHA-256 hex digest."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            progress = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=ML_1M_ARCHIVE,
                disable=not show_progress,
            )
            with progress:
                while chunk := response.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    output.write(chunk)
                    progress.update(len(chunk))
    except (OSError, http.client.HTTPException, ValueError) as error:
        # URLError wraps the cause, such as "[Errno 111] Connection refused", in its reason.
        is_wrapper = isinstance(error, urllib.error.URLError) and not isinstance(
            error, urllib.error.HTTPError
        )
        detail = error.reason if is_wrapper else error
        raise DatasetError(
            f"Download of {url} failed: {detail}. Pass a local path to {ML_1M_ARCHIVE} or to "
            f"its unpacked folder as path= (--data on the command line), or set {CACHE_ENV} to a "
            "folder that contains "
            f"{ML_1M_ARCHIVE}."
        ) from error
    return digest.hexdigest()


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- Line-level parsing -------------------------------------------------------------


def _line_error(source: str, number: int, line: str, problem: str) -> DatasetError:
    excerpt = line if len(line) <= _MAX_SHOWN_CHARS else line[: _MAX_SHOWN_CHARS - 3] + "..."
    return DatasetError(
        f"Invalid line {number} of {source}: {problem}. Line: {excerpt!r}. "
        f"Fix or remove this line."
    )


def _lines(data: bytes, source: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) of a Latin-1 file, ignoring trailing blank lines."""
    # str.splitlines() would also split at U+0085 and U+001C-U+001E, which Latin-1
    # decoding can produce inside a title, so split at "\n" only.
    lines = data.decode("latin-1").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()

    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            raise _line_error(source, number, line, "the line is empty")
        yield number, line


def _split_fields(line: str, layout: tuple[str, ...], source: str, number: int) -> list[str]:
    fields = line.split("::")
    if len(fields) != len(layout):
        raise _line_error(
            source,
            number,
            line,
            f"expected {len(layout)} fields {'::'.join(layout)}, found {len(fields)}",
        )
    return fields


def _parse_int(text: str, field: str, source: str, number: int, line: str) -> int:
    # The pattern rejects what int() would also accept: "1_000" and non-ASCII digits.
    if not _INTEGER.fullmatch(text.strip()):
        raise _line_error(source, number, line, f"{field} {text!r} is not an integer")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _line_error(source, number, line, f"{field} {value} is outside the int64 range")
    return value


def _parse_users(source: str, data: bytes) -> dict[int, User]:
    users: dict[int, User] = {}
    first_lines: dict[int, int] = {}
    for number, line in _lines(data, source):
        fields = _split_fields(line, _USERS_FORMAT, source, number)
        user_id, gender, age, occupation, _zip_code = fields
        key = _parse_int(user_id, "UserID", source, number, line)
        if key in users:
            raise _line_error(
                source, number, line, f"UserID {key} repeats line {first_lines[key]}"
            )
        first_lines[key] = number
        users[key] = User(
            user_id=key,
            gender=gender or None,
            age=_parse_int(age, "Age", source, number, line),
            occupation=_parse_int(occupation, "Occupation", source, number, line),
        )

    if not users:
        raise DatasetError(f"{source} contains no users. Pass an intact MovieLens 1M copy.")
    return users


def _parse_movies(source: str, data: bytes) -> dict[int, Movie]:
    movies: dict[int, Movie] = {}
    first_lines: dict[int, int] = {}
    for number, line in _lines(data, source):
        movie_id, title, genres = _split_fields(line, _MOVIES_FORMAT, source, number)
        key = _parse_int(movie_id, "MovieID", source, number, line)
        if key in movies:
            raise _line_error(
                source, number, line, f"MovieID {key} repeats line {first_lines[key]}"
            )
        if not title.strip():
            raise _line_error(source, number, line, "Title is empty")
        first_lines[key] = number
        movies[key] = Movie(
            movie_id=key,
            title=title,
            genres=tuple(genre for genre in genres.split("|") if genre),
            year=split_title(title)[1],
        )

    if not movies:
        raise DatasetError(f"{source} contains no movies. Pass an intact MovieLens 1M copy.")
    return movies


def _parse_ratings(source: str, data: bytes) -> Ratings:
    """Parse ratings.dat, validating line by line only when the fast parse fails."""
    table = _parse_ratings_fast(data)
    if table is None:
        logger.debug("Fast parse of %s failed, so it is validated line by line", source)
        table = _parse_ratings_by_line(source, data)
    return Ratings(
        user_id=np.ascontiguousarray(table[:, 0]),
        movie_id=np.ascontiguousarray(table[:, 1]),
        rating=table[:, 2].astype(np.float32),
        timestamp=np.ascontiguousarray(table[:, 3]),
    )


def _parse_ratings_fast(data: bytes) -> np.ndarray | None:
    """Return an int64 table (n, 4) in one NumPy call, or None if any line is unusual.

    Row i of the table is line i + 1 of the file, which the error messages rely on.
    """
    body = data.rstrip()
    if not body:
        return None
    line_count = body.count(b"\n") + 1
    try:
        table = np.loadtxt(
            io.BytesIO(body.replace(b"::", b",")),
            dtype=np.int64,
            delimiter=",",
            comments=None,
            ndmin=2,
        )
    except ValueError:
        return None

    # loadtxt skips blank lines, which would shift rows against line numbers.
    if table.shape != (line_count, len(_RATINGS_FORMAT)):
        return None
    if table[:, 2].min() < 1 or table[:, 2].max() > 5:
        return None
    return table


def _parse_ratings_by_line(source: str, data: bytes) -> np.ndarray:
    rows = []
    for number, line in _lines(data, source):
        user_id, movie_id, rating, timestamp = _split_fields(line, _RATINGS_FORMAT, source, number)
        rows.append(
            (
                _parse_int(user_id, "UserID", source, number, line),
                _parse_int(movie_id, "MovieID", source, number, line),
                _parse_rating(rating, source, number, line),
                _parse_int(timestamp, "Timestamp", source, number, line),
            )
        )

    if not rows:
        raise DatasetError(f"{source} contains no ratings. Pass an intact MovieLens 1M copy.")
    return np.array(rows, dtype=np.int64)


def _parse_rating(text: str, source: str, number: int, line: str) -> int:
    # MovieLens 1M has whole-star ratings only (its README, "RATINGS FILE DESCRIPTION").
    if not _INTEGER.fullmatch(text.strip()):
        raise _line_error(
            source, number, line, f"Rating {text!r} is not a whole number from 1 to 5"
        )
    value = int(text)
    if not 1 <= value <= 5:
        raise _line_error(source, number, line, f"Rating {value} is outside 1..5")
    return value


def _check_known_ids(
    ids: np.ndarray, known: Mapping[int, object], field: str, source: str, defining_source: str
) -> None:
    """Raise DatasetError if some `ids` are not keys of `known`, naming the first lines."""
    known_ids = np.fromiter(known.keys(), dtype=np.int64, count=len(known))
    unknown_rows = np.flatnonzero(~np.isin(ids, known_ids))
    if unknown_rows.size == 0:
        return

    distinct = np.unique(ids[unknown_rows]).size
    examples = ", ".join(f"{ids[row]} on line {row + 1}" for row in unknown_rows[:3])
    raise DatasetError(
        f"{source}: {unknown_rows.size} ratings refer to {distinct} {field}s missing from "
        f"{defining_source}, for example {examples}. Add them to {defining_source} or "
        f"remove those ratings."
    )
