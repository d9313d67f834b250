"""The ``overnight`` command: one entry point, one module per subcommand.

Subcommands are imported only when used, so ``overnight --help`` stays fast and a missing
optional dependency of one command does not break the others.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import click

from overnight import __version__

# TensorFlow's C++ start-up chatter is noise to a user; our own logging says what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS: dict[str, str] = {
    "run": "overnight.cli.run:run",
    "synth": "overnight.cli.synth:synth",
    "train": "overnight.cli.train:train",
    "segment": "overnight.cli.segment:segment",
    "pk": "overnight.cli.pk:pk",
    "ingest": "overnight.cli.services:ingest",
    "worker": "overnight.cli.services:worker",
    "stack": "overnight.cli.stack:stack",
    "qc-web": "overnight.cli.qcweb:qc_web",
    "dispatch": "overnight.cli.dispatch:dispatch",
    "config": "overnight.cli.configcmd:config",
}


def service(module_name: str) -> ModuleType:
    """Import a service package's module by name (the CLI composes them; nothing imports it).

    Raises
    ------
    click.ClickException
        When the service package is not installed.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise click.ClickException(
                f"{module_name} is not installed (pip install the service package)"
            ) from err
        raise


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Names of the subcommands present in this checkout."""
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return one subcommand."""
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # not written yet in this checkout
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="overnight")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OVERNIGHT_CONFIG",
    help="YAML/JSON config file; OVERNIGHT_* environment variables override it.",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Automated microscopy image analysis that runs while the lab sleeps.

    Start with `overnight synth cytometry demo` and `overnight run demo/images --out results`.
    Every setting is an OVERNIGHT_* environment variable or a key in the --config file
    (`overnight config` lists them).
    """
    ctx.ensure_object(dict)
    ctx.obj["config_file"] = config
