"""Jinja2 templates with autoescaping on for every template, and the filters pages use."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi.templating import Jinja2Templates

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


def format_number(value: Any, digits: int = 2) -> str:
    """Integers as they are, other numbers rounded; NaN and None as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def with_query(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` with ``changes`` applied (None or "" removes a key).

    An empty string when nothing is left, so links stay clean.
    """
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


@jinja2.pass_context
def path_for(context: Any, name: str, /, **params: Any) -> str:
    """The path (not the absolute URL) of route ``name``: right behind any reverse proxy."""
    return str(context["request"].app.url_path_for(name, **params))


def make_templates() -> Jinja2Templates:
    """The service's templates; autoescape is forced on (metadata may hold markup)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.globals["with_query"] = with_query
    env.globals["path_for"] = path_for
    return Jinja2Templates(env=env)
