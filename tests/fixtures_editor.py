"""Shared by the QC-web editor's browser tests: where an image pixel is on the screen."""

from __future__ import annotations

from typing import Any


def screen_point(page: Any, y: float, x: float) -> tuple[float, float]:
    """Screen position of image pixel (y, x) on ``#stage-live`` (pixel centres at integers)."""
    box = page.locator("#stage-live").bounding_box()
    width = float(page.get_attribute("#stage-live", "data-width"))
    height = float(page.get_attribute("#stage-live", "data-height"))
    return (
        box["x"] + (x + 0.5) * box["width"] / width,
        box["y"] + (y + 0.5) * box["height"] / height,
    )
