"""Griffe extension for the docs build: read ``Example:`` as the ``Examples:`` section.

The package's docstrings introduce doctests with ``Example:``. Griffe's Google
parser knows only ``Examples:`` as a section and would render ``Example:`` as an
admonition of plain Markdown, where doctest lines become prose and ``x["key"]``
reads as a reference link. Renaming the header before parsing renders them as
Python code, without touching the source.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _HEADER.sub(r"\1Examples:", docstring.value)
