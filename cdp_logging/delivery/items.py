"""What the queue holds: an encoded event, or one with its callback; their sizes and ids; and
which threads are the library's own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from threading import get_ident
from typing import Any, Literal, Union
from collections.abc import Callable, Sequence

import orjson


logger = logging.getLogger("cdp_logging")


#: A queued event: its encoded bytes, or the bytes with the caller's callback.
Item = Union[bytes, tuple[bytes, Callable[..., Any]]]  # noqa: UP007 - a runtime alias; X | Y on a subscripted generic needs 3.10 types at import


Overflow = Literal["drop", "wait"]


#: Room kept in every body for ``{"batch":[`` and ``],"sentAt":"...Z"}``.
BODY_OVERHEAD = 64


# Why put() refused an event.
QUEUE_FULL = "queue full"


QUEUE_BYTES_FULL = "queue byte limit reached"


CLOSED = "client is closed"


def is_plain(items: list[Item]) -> bool:
    """True when no item carries a callback: each is the encoded event itself (bytes).

    Example::

        >>> is_plain([b'{"type":"track"}', (b'{"type":"identify"}', print)])
        False
    """
    return tuple not in set(map(type, items))


def item_bytes(item: Item) -> bytes:
    """The encoded message of a queued item."""
    return item if type(item) is bytes else item[0]  # type: ignore[return-value]


@contextmanager
def own_thread(idents: set[int]) -> Iterator[None]:
    """Count the current thread in ``idents`` (a batcher's ``own_threads``) while the block
    runs; a thread's ident may be reused once it ends, so it is taken out as it finishes.

    Example::

        with own_thread(batcher.own_threads):
            deliver_everything()
    """
    ident = get_ident()
    idents.add(ident)
    try:
        yield
    finally:
        idents.discard(ident)


def message_ids(items: Sequence[Item]) -> list[str]:
    """The messageIds of queued items, for reports ("?" where one cannot be read)."""
    ids = []
    for item in items:
        try:
            ids.append(orjson.loads(item_bytes(item))["messageId"])
        except Exception:
            ids.append("?")
    return ids
