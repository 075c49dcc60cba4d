"""The Jinja2 environment both render functions share.

Undefined names fail the render instead of leaving a blank in a config file,
and values are inserted verbatim: the model validates everything that goes
into a template, and the few strings that need quoting go through `quote_*`.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from components.proxy.model import milliseconds

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
_ENVIRONMENT.globals["ms"] = milliseconds


def template(name: str) -> jinja2.Template:
    """The template `name` from this directory."""
    return _ENVIRONMENT.get_template(name)
