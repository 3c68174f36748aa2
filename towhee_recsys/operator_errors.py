"""Carry the original exception of an operator through a Towhee pipeline.

Towhee 1.1.3 catches any exception raised inside a node and re-raises a bare
``RuntimeError`` whose text contains the message and a formatted traceback, so the
exception's type is lost. Our operators park the original exception here under a
random key and raise an `OperatorFailure` whose message starts with that key; the
pipeline wrappers find the key in Towhee's text and re-raise the original.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from towhee_recsys.errors import RecsysError

_MAX_PARKED = 1024
_KEY_PATTERN = re.compile(r"towhee_recsys-error-([0-9a-f]{32})")

_parked: OrderedDict[str, BaseException] = OrderedDict()
_lock = threading.Lock()


class OperatorFailure(RuntimeError):
    """Raised inside a Towhee node in place of the operator's original exception."""


def park(operator_name: str, error: BaseException) -> OperatorFailure:
    """Store `error` and return the exception to raise inside the Towhee node."""
    if not isinstance(error, RecsysError):
        wrapped = RecsysError(f"Operator {operator_name} failed: {type(error).__name__}: {error}")
        wrapped.__cause__ = error
        error = wrapped
    key = uuid.uuid4().hex
    with _lock:
        _parked[key] = error
        while len(_parked) > _MAX_PARKED:
            _parked.popitem(last=False)
    return OperatorFailure(f"towhee_recsys-error-{key}: {error}")


def original_error(error: BaseException) -> BaseException | None:
    """Return the parked exception whose key appears in `error`'s text, removing it."""
    found = None
    for key in _KEY_PATTERN.findall(str(error)):
        with _lock:
            parked = _parked.pop(key, None)
        found = found or parked
    return found


def guard_against_pool_deadlock(towhee_pipeline: Any) -> Any:
    """Give a Towhee pipeline's operator pool a re-entrant lock, and return the pipeline.

    In towhee 1.1.3, `OperatorPool.acquire_op` holds a plain lock while it loads an
    operator. A garbage collection that runs at that moment may free the nodes of an
    earlier failed call, whose `__del__` calls `release_op`, which waits for the same
    lock in the same thread forever. With an RLock the nested release goes through; for
    our operators, which Towhee marks shareable, that release changes nothing.
    """
    pool = getattr(towhee_pipeline, "_operator_pool", None)
    if pool is not None and hasattr(pool, "_lock"):
        pool._lock = threading.RLock()
    return towhee_pipeline


@contextmanager
def original_errors() -> Iterator[None]:
    """Re-raise our operators' own exceptions from a Towhee pipeline call.

    Wrap a call of any Towhee pipeline that uses towhee_recsys operators::

        with original_errors():
            result = my_pipe(user).get()
    """
    try:
        yield
    except RuntimeError as error:
        original = original_error(error)
        if original is None:
            raise
        # Hide Towhee's RuntimeError (its text repeats the traceback) but keep the
        # original's own cause chain.
        original.__suppress_context__ = True
        raise original  # noqa: B904 - the original carries its own cause
