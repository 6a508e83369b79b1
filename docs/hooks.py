"""MkDocs hook: show the docstrings' Sphinx roles (:class:`~pkg.Name`) the way Sphinx would, as `Name`.

The docstrings keep the Sphinx/Lightning convention; mkdocstrings renders the role's name and the tilde as
text, so this drops the role and, after a tilde, the dotted prefix.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(?=<code>)")
TILDE = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")


def on_page_content(html: str, **kwargs: Any) -> str:
    return TILDE.sub(r"<code>\1</code>", ROLE.sub("", html))
