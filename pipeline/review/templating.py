"""The review page's and desk's HTML, from Jinja2 templates with autoescape: a file or folder
name (``<img src=x onerror=alert(1)>.jpg``, ``"><script>``) is always text, never markup."""

from __future__ import annotations

from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["ASSETS", "asset_bytes", "render"]

ASSETS = ("review.css", "review.js")  # the page's script and style, in pipeline/review/assets

_TEMPLATES = Environment(
    loader=PackageLoader("pipeline.review", "templates"),
    autoescape=True,  # every template, whatever its name: none of them is meant to hold markup
    undefined=StrictUndefined,  # a value the code forgot to pass fails loudly, in the tests
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **values: object) -> str:
    """``template`` (a file in pipeline/review/templates) with ``values``, escaped."""
    return _TEMPLATES.get_template(template).render(**values)


def asset_bytes(name: str) -> bytes:
    """One of ASSETS, as shipped."""
    if name not in ASSETS:
        raise KeyError(name)
    return (resources.files("pipeline.review") / "assets" / name).read_bytes()
