"""Input types that reject what PostgreSQL or the hashers would choke on.

JSON allows strings PostgreSQL `text` cannot store: NUL characters and lone
UTF-16 surrogates (`"\\ud800"` decodes to a Python str that cannot be encoded
as UTF-8). Rejecting them at validation turns what would be a 500 from the
database driver into a 422 that names the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


StorableText = Annotated[str, AfterValidator(_storable)]
