"""Read/convert: pick the channels a pipeline needs, by role, from a ``ZCYX`` stack."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.errors import InvalidImageError
from overnight.imaging.stack import ImageStack


class ChannelRoles(BaseModel):
    """Which channel index holds which signal (from config; the file order varies by lab)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, int] = Field(
        default_factory=lambda: {"cell": 0, "pnp": 1},
        description="role → channel index in the file, e.g. {cell: 0, pnp: 1}",
    )


def select_channel(stack: ImageStack, role: str, roles: ChannelRoles) -> np.ndarray:
    """The channel playing ``role`` as ``ZYX`` float32.

    Raises :class:`InvalidImageError` when the stack has too few channels for the roles.
    """
    index = roles.channels[role]
    n_channels = stack.shape_zcyx[1]
    if index >= n_channels:
        needed = max(roles.channels.values()) + 1
        described = ", ".join(f"{r}={i}" for r, i in roles.channels.items())
        raise InvalidImageError(
            stack.source,
            f"has {n_channels} channel{'s' if n_channels != 1 else ''}; the pipeline needs "
            f"{needed} ({described}) — check the channel settings",
        )
    return np.asarray(stack.data[:, index], dtype=np.float32)
