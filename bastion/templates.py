"""Rendering of the files in top-level `templates/` (shipped in the wheel as bastion/templates).

Jinja2 runs with StrictUndefined so a missing value is an error, never an empty string;
every value passed in was validated before it got here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


def template_dir() -> Path:
    """Inside a wheel the templates sit in the package; in a checkout, beside it."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # 20-30 ms: loaded where a template is first needed (or prepared)

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def prepare(*templates: str) -> None:
    """Load and compile templates ahead of `render` (jinja2 keeps them compiled)."""
    for template in templates:
        _environment().get_template(template)
