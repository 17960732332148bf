"""The ``deploykit`` typer application."""

from __future__ import annotations

if __name__ == "__main__":  # python -m deploykit.cli.app: an interrupt during the imports exits quietly
    from deploykit.signals import exit_on_signal

    exit_on_signal()

import sys

import typer

from deploykit import __version__
from deploykit.cli.build import build_command
from deploykit.cli.compare_cmd import compare_command
from deploykit.cli.docker_cmd import package_command
from deploykit.cli.doctor_cmd import doctor_command
from deploykit.cli.images_cmd import images_app
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
app.add_typer(images_app, name="images")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deploykit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")) -> None:
    """Build verified, ready-to-run bundles of ONNX models for named edge devices."""


def main() -> None:
    """Run the app; usage errors (unknown option, missing argument, bad value) are one
    ``error: ...`` line too, and a closed stdout pipe (``| head``) ends the output quietly."""
    try:  # typer >= 0.20 vendors click
        from typer._click import exceptions as click_exceptions
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions as click_exceptions

    try:
        rv = app(standalone_mode=False)
    except (typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)):
        sys.stderr.write("error: interrupted (SIGINT)\n")
        sys.exit(130)
    except click_exceptions.ClickException as e:
        from deploykit.cli.common import one_line

        if type(e).__name__ == "NoArgsIsHelpError":  # bare 'deploykit': the help, as before
            e.show()
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"error: {one_line(e.format_message()).rstrip('.')}{where}\n")
        sys.exit(e.exit_code)
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
