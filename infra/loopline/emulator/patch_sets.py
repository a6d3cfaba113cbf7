"""Several patches entered and undone as one (for a gap module that patches more than one moto name)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager


@contextmanager
def all_of(*patches: AbstractContextManager[object]) -> Iterator[None]:
    """Enter every patch; leaving undoes them all."""
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield
