"""The README's configuration reference is the model's."""

from __future__ import annotations

from pathlib import Path

from components.config import README_BEGIN as BEGIN
from components.config import README_END as END
from components.config import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_matches_the_model() -> None:
    text = README.read_text()
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert table == reference_markdown(), (
        "README.md's configuration reference is out of date: regenerate it with `python -m components.config --readme`"
    )
