"""The ``deploykit`` typer application."""

from __future__ import annotations

import typer

from deploykit import __version__
from deploykit.cli.build import build_command
from deploykit.cli.compare_cmd import compare_command
from deploykit.cli.docker_cmd import package_command
from deploykit.cli.doctor_cmd import doctor_command
from deploykit.cli.inspect_cmd import inspect_command
from deploykit.cli.optimize_cmd import optimize_command
from deploykit.cli.project_cmd import cache_app
from deploykit.cli.run_cmd import run_command, verify_command
from deploykit.cli.targets_cmd import targets_command

app = typer.Typer(
    name="deploykit",
    help="Build verified, ready-to-run bundles of ONNX models for named edge devices.\n\n"
    "Example: deploykit build model.onnx --target rpi4 --precision int8 --calibration calib.npy -o out/",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("build")(build_command)
app.command("targets")(targets_command)
app.command("inspect")(inspect_command)
app.command("run")(run_command)
app.command("verify")(verify_command)
app.command("doctor")(doctor_command)
app.command("package")(package_command)
app.command("optimize")(optimize_command)
app.command("compare")(compare_command)
app.add_typer(cache_app, name="cache")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deploykit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")) -> None:
    """Build verified, ready-to-run bundles of ONNX models for named edge devices."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
