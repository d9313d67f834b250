"""``overnight config``: every setting, its environment variable, default and meaning."""

from __future__ import annotations

import importlib

import click

from overnight.config import CommonSettings, settings_table

#: Settings classes of each entry point, imported lazily (some need optional services code).
SETTINGS_CLASSES = {
    "common": "overnight.config:CommonSettings",
    "run": "overnight.cli.run:RunSettings",
    "ingest": "overnight_ingest.core.config:IngestSettings",
    "qc-web": "overnight_qc.core.config:QcSettings",
    "dispatch": "overnight.dispatch.settings:DispatchSettings",
    "models": "overnight.models.loading:ModelSettings",
}


def _load(target: str) -> type[CommonSettings] | None:
    module_name, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None


@click.command()
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in the README).")
def config(markdown: bool) -> None:
    """List every setting: OVERNIGHT_* variable, default, description.

    Each may also be a key (lower case, without the prefix) in the --config YAML file;
    a section named after the service (e.g. `ingest:`) overrides the top level for it.
    """
    seen: set[str] = set()
    if markdown:
        click.echo("| variable | default | used by | meaning |\n| --- | --- | --- | --- |")
    for service, target in SETTINGS_CLASSES.items():
        cls = _load(target)
        if cls is None:
            continue
        for variable, default, description in settings_table(cls):
            if variable in seen:
                continue
            seen.add(variable)
            if markdown:
                click.echo(f"| `{variable}` | `{default}` | {service} | {description} |")
            else:
                click.echo(f"{variable:<34} {service:<8} default={default!r}\n    {description}")
