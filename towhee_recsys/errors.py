"""Exception family of towhee_recsys.

Every error the library raises on purpose is a `RecsysError`, so callers can catch
one type. Subclasses name the part that failed, and the CLI maps each to an exit code.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error raised by towhee_recsys."""

    exit_code = 1


class InvalidParameterError(RecsysError, ValueError):
    """An argument has an invalid value; the message names it and the fix."""

    exit_code = 2


class DatasetError(RecsysError):
    """A dataset file is missing, malformed, or failed its checksum."""

    exit_code = 3


class ModelError(RecsysError):
    """A model directory is missing, incomplete, or of another format version."""

    exit_code = 4


class StoreError(RecsysError):
    """A vector store or metadata store failed or contains inconsistent data."""

    exit_code = 5


class StoreLockedError(StoreError):
    """Another process has locked the embedded store's file."""

    exit_code = 6


class UnknownUserError(RecsysError):
    """A user id is not in the catalog and no demographics were given."""

    exit_code = 7
