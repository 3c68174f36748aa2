"""Import Paddle once, quietly."""

from __future__ import annotations

import warnings
from types import ModuleType


def import_paddle() -> ModuleType:
    """Return the paddle module, hiding its import-time warning about a missing ccache.

    Paddle 3.3 warns on every import that ccache is absent, which only matters when
    compiling custom C++ operators, something towhee_recsys never does.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    return paddle
