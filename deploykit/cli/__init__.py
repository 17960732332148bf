"""The ``deploykit`` command line (typer + rich), one module per command group."""


def main() -> None:
    """Console entry point. Until a command runs, SIGINT/SIGTERM/SIGHUP end the process with one
    line: the heavy imports below take a few seconds, and an interrupt there leaves nothing behind."""
    from deploykit.signals import exit_on_signal

    exit_on_signal()
    from deploykit.cli.app import main as app_main

    app_main()
