"""What a traceback recorder (as Sentry's) would show of an error: for the tests that the write key
and URL passwords show nowhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
import types

import cdp_logging
from cdp_logging.secret import Secret


def texts_reachable_from(error: BaseException, frames: list[str] | None = None) -> Iterator[str]:
    """What a traceback recorder (as Sentry's) would show of ``error``: every exception in its
    chain, every frame's locals and their attributes one level down. With ``frames``, only
    cdp_logging's frames, whose names are added to it (the caller's own hold the key)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield repr(current)
        yield str(current)
        yield from describe_object(current)
        pending.extend(item for item in (current.__cause__, current.__context__, getattr(current, "cause", None),
                                         *current.args) if isinstance(item, BaseException))
        traceback = current.__traceback__
        while traceback is not None:
            frame = traceback.tb_frame
            traceback = traceback.tb_next
            if frames is not None:
                if not frame.f_code.co_filename.startswith(_PACKAGE):
                    continue
                frames.append(f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}")
            for value in frame.f_locals.values():
                yield _safe_repr(value)
                yield from describe_object(value)


def _safe_repr(value: Any) -> str:
    # As recorders do: an object half made when its constructor raised may have no repr.
    try:
        return repr(value)
    except Exception as err:
        return f"<repr raised {err!r}>"


_PACKAGE = str(Path(cdp_logging.__file__).parent)


def describe_object(value: Any, depth: int = 1) -> Iterator[str]:
    """The reprs of ``value``'s attributes, and of theirs down to ``depth`` levels, as a
    recorder that expands objects shows them (no attribute is named: all are looked at)."""
    # A Secret is the one holder of the key, by design: what shows of it is its repr.
    if depth < 1 or isinstance(value, (str, bytes, int, float, types.ModuleType, type, Secret)) or value is None:
        return
    names = list(getattr(value, "__dict__", {}))
    for klass in type(value).__mro__:
        names += list(getattr(klass, "__slots__", ()))
    for name in names:
        try:
            attribute = getattr(value, name)
        except Exception:  # an unset slot
            continue
        yield _safe_repr(attribute)
        yield from describe_object(attribute, depth - 1)
