"""The API token: where it comes from, and comparing it without leaking timing."""

from __future__ import annotations

import hmac

from overnight.errors import ConfigError
from overnight_ingest.core.config import IngestSettings


def load_token(settings: IngestSettings) -> str:
    """Return the token writes need: ``OVERNIGHT_API_TOKEN`` or ``OVERNIGHT_API_TOKEN_FILE``.

    Raises
    ------
    ConfigError
        When neither is set, the file cannot be read, or the token is shorter than 16
        characters: the service does not start without a real secret.
    """
    if settings.api_token_file is not None:
        try:
            token = settings.api_token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(
                f"cannot read OVERNIGHT_API_TOKEN_FILE {settings.api_token_file}: {err}"
            ) from err
    elif settings.api_token is not None:
        token = settings.api_token.get_secret_value().strip()
    else:
        raise ConfigError("no API token: set OVERNIGHT_API_TOKEN or OVERNIGHT_API_TOKEN_FILE")
    if len(token) < 16:
        raise ConfigError("the API token must have at least 16 characters")
    return token


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
