"""A value that must not show: the write key, held so that no repr, log line, error message or
traceback's locals shows it."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

_Value = TypeVar("_Value", bytes, str)


class Secret(Generic[_Value]):
    """A value kept out of ``repr``, and so out of logs and of tracebacks recorded with
    their locals (as Sentry records frames): the write key, and request heads carrying it.

    Example::

        >>> Secret(b"Authorization: Basic a2V5Og==")
        Secret(hidden)
    """

    __slots__ = ("value",)

    def __init__(self, value: _Value) -> None:
        self.value: _Value = value

    @classmethod
    def of(cls, value: Any) -> Secret[Any]:
        """``value`` hidden; a Secret's value hidden anew (a copy, which its new holder may
        change). A key handed on from one constructor to the next stays hidden all the way.

        Example::

            >>> key = Secret.of("WRITE_KEY")
            >>> Secret.of(key).value
            'WRITE_KEY'
        """
        return cls(value.value if isinstance(value, Secret) else value)

    def __repr__(self) -> str:
        return "Secret(hidden)"

    __str__ = __repr__
