"""Tests of split_title and title_words."""

from __future__ import annotations

import unicodedata

import pytest

from towhee_recsys.data import Movie, split_title
from towhee_recsys.data.titles import title_words

TITLE_CASES = [
    ("Seven (Se7en) (1995)", "Seven (Se7en)", 1995),
    ("2001: A Space Odyssey (1968)", "2001: A Space Odyssey", 1968),
    ("1-900 (1994)", "1-900", 1994),
    (
        "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)",
        "Shanghai Triad (Yao a yao yao dao waipo qiao)",
        1995,
    ),
    ("Misérables, Les (1995)", "Misérables, Les", 1995),
    ("Heat (1995)  ", "Heat", 1995),
    ("Heat (1995)\n", "Heat", 1995),
    ("Heat(1995)", "Heat", 1995),
    ("Untitled", "Untitled", None),
    ("Untitled  ", "Untitled", None),
    ("Film (2000s)", "Film (2000s)", None),
    ("Film (95)", "Film (95)", None),
    ("Film (19955)", "Film (19955)", None),
    ("Film (1995) Redux", "Film (1995) Redux", None),
    ("(1995)", "(1995)", None),
    ("", "", None),
]


@pytest.mark.parametrize(("title", "name", "year"), TITLE_CASES)
def test_split_title_name(title: str, name: str, year: int | None) -> None:
    assert split_title(title)[0] == name


@pytest.mark.parametrize(("title", "name", "year"), TITLE_CASES)
def test_split_title_year(title: str, name: str, year: int | None) -> None:
    assert split_title(title)[1] == year


def test_split_title_year_is_int() -> None:
    assert type(split_title("Heat (1995)")[1]) is int


def test_movie_name_drops_year() -> None:
    movie = Movie(movie_id=1, title="Seven (Se7en) (1995)", year=1995)

    assert movie.name == "Seven (Se7en)"


WORD_CASES = [
    ("Misérables, Les", ["misérables", "les"]),
    ("2001: A Space Odyssey", ["2001", "a", "space", "odyssey"]),
    ("Children's Hour", ["children", "s", "hour"]),
    ("Seven (Se7en)", ["seven", "se7en"]),
    ("1-900", ["1", "900"]),
    ("snake_case  and--dashes", ["snake", "case", "and", "dashes"]),
    ("ÉCOLE Straße", ["école", "straße"]),
    ("  -- !! ", []),
    ("", []),
]


@pytest.mark.parametrize(("name", "words"), WORD_CASES)
def test_title_words_tokens(name: str, words: list[str]) -> None:
    assert title_words(name) == words


def test_title_words_decomposed_accent() -> None:
    decomposed = unicodedata.normalize("NFD", "Misérables")

    assert title_words(decomposed) == ["misérables"]

