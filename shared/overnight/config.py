"""Settings: environment variables ``OVERNIGHT_*`` over a config file over defaults.

Each service has one settings class (a subclass of :class:`CommonSettings`), built once at
the entry point with :func:`load_settings` and passed down; nothing reads the environment
later. The config file (``--config`` or ``OVERNIGHT_CONFIG``) is YAML or JSON with the same
names as the settings, lower case and without the prefix, e.g. ``storage_url: s3://lab/raw``.
A section named like the service (``ingest:``, ``worker:``) overrides the top level for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from overnight.errors import ConfigError

ENV_PREFIX = "OVERNIGHT_"
CONFIG_ENV_VAR = "OVERNIGHT_CONFIG"
DEFAULT_STORAGE_URL = "file://./overnight-data"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_config_file: ContextVar[Path | None] = ContextVar("overnight_config_file", default=None)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a dict, with errors that name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {err}") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    return values


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the config file in force (lower priority than the environment)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns everything at once

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None and os.environ.get(CONFIG_ENV_VAR):
            path = Path(os.environ[CONFIG_ENV_VAR])
        if path is None:
            return {}
        values = read_config_file(path)
        section = getattr(self.settings_cls, "config_section", None)
        merged = {k: v for k, v in values.items() if not isinstance(v, dict) or k in self._fields}
        if section and isinstance(values.get(section), dict):
            merged.update(values[section])
        return {k: v for k, v in merged.items() if k in self._fields}

    @property
    def _fields(self) -> set[str]:
        return set(self.settings_cls.model_fields)


class CommonSettings(BaseSettings):
    """Settings every entry point shares."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )
    config_section: ClassVar[str | None] = None

    storage_url: str = Field(
        DEFAULT_STORAGE_URL,
        description="Where inputs and results live: a folder (file:///nas/lab or a plain path) "
        "or an S3/MinIO bucket (s3://bucket/prefix).",
    )
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint host[:port] for s3:// URLs (MinIO); None means AWS."
    )
    s3_access_key: SecretStr | None = Field(None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_secure: bool = Field(True, description="Use HTTPS for the S3 endpoint.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="Redis for the queue (redis://, rediss:// for TLS; password in the URL).",
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token for writes to the ingest API and QC verdicts."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log records shown."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="'json' gives one structured record per line (for services)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: explicit arguments > environment > config file > defaults."""
        return (init_settings, env_settings, _ConfigFileSource(settings_cls), file_secret_settings)


S = TypeVar("S", bound=CommonSettings)


@contextmanager
def _using_config_file(path: Path | None) -> Iterator[None]:
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def load_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """Build ``cls`` from overrides, ``OVERNIGHT_*`` variables, the config file and defaults.

    Raises :class:`ConfigError` naming every invalid setting.
    """
    with _using_config_file(config_file):
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as err:
            problems = "; ".join(
                f"{ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in err.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from err


def settings_table(cls: type[CommonSettings]) -> list[tuple[str, str, str]]:
    """(environment variable, default, description) rows, for docs and ``--help``."""
    rows = [(CONFIG_ENV_VAR, "", "YAML/JSON config file with any of these settings (or --config).")]
    for name, field in cls.model_fields.items():
        value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        default = (
            "" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)
        )
        if isinstance(value, SecretStr):
            default = "(secret)"
        rows.append((f"{ENV_PREFIX}{name.upper()}", default, field.description or ""))
    return rows
