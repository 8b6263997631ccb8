"""A griffe extension for the API reference: the docstrings use Sphinx's roles
(``:class:`CDPError```, ``:meth:`flush```) and ``Example::`` blocks, which Markdown would show
as written; this turns a role into inline code and ``::`` into ``:`` before mkdocstrings
renders them. The docstrings stay as they are for ``help()`` and IDEs."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:meth|class|func|attr|mod|exc|data|obj|const):`~?([^`]+)`")
LITERAL_BLOCK = re.compile(r"(\S)::$", re.M)


class SphinxRoles(griffe.Extension):
    """Rewrite each object's docstring for Markdown once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = ROLE.sub(r"`\1`", obj.docstring.value)
            obj.docstring.value = LITERAL_BLOCK.sub(r"\1:", text)
