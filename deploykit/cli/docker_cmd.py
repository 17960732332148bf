"""``deploykit build --docker`` (the build inside a toolchain image) and ``deploykit package --docker``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from deploykit.cli.common import DebugOption, cli_errors, err_console
from deploykit.errors import DeployError

# build options handled here, never forwarded into the container
_DOCKER_PARAMS = {"docker", "platform", "dry_run", "docker_context", "engine", "model", "output", "calibration"}


def _inner_args(ctx: Any) -> list[str]:
    """The user's remaining ``deploykit build`` options as command-line words (non-default values only)."""
    args: list[str] = []
    for param in ctx.command.params:
        if getattr(param, "param_type_name", "") != "option" or param.name in _DOCKER_PARAMS:
            continue
        value = ctx.params.get(param.name)
        if value is None or value == param.default or (param.multiple and not value):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                args.append(flag)
        elif param.multiple:
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def _default_output(model: Path, target: str, precision: Optional[str]) -> Path:
    from deploykit.pipeline import default_output
    from deploykit.plugins import default_registry

    if precision is None:
        precision = default_registry().target(target).default_precision
    return default_output(model, target, precision)


def print_commands(cmds: list[list[str]]) -> None:
    from deploykit.docker.engine import format_command

    for cmd in cmds:
        typer.echo(format_command(cmd))


def build_in_docker(ctx: Any, *, model: Path, target: str, output: Optional[Path], precision: Optional[str],
                    calibration: Optional[str], platform: Optional[str], dry_run: bool,
                    docker_context: Optional[Path], engine: Optional[str] = None) -> None:
    """``ctx``: the build command's typer context (its other options are forwarded).

    Write the toolchain image's context, then build it and run the build in it (docker or podman)."""
    from deploykit.docker.engine import choose_engine, last_fix, run_command
    from deploykit.docker.toolchain import plan_build, write_context
    from deploykit.plugins import default_registry

    if not model.is_file():
        raise DeployError(f"model file {model} not found")
    profile = default_registry().target(target)
    out = output if output is not None else _default_output(model, target, precision)
    calib = Path(calibration) if calibration else None
    if calib is not None and not calib.exists():
        raise DeployError(f"calibration data {calib} not found")
    env = {k: os.environ[k] for k in ("DEPLOYKIT_PLUGINS",) if os.environ.get(k)}
    eng = choose_engine(engine)
    plan = plan_build(engine=eng, backend=profile.backend, model=model, output=out, calibration=calib,
                      inner_args=_inner_args(ctx), platform=platform,
                      context_dir=docker_context, env=env, profile=profile)
    dockerfile = write_context(plan.image, plan.context_dir)
    if dry_run:
        err_console.print(f"toolchain image context written to {plan.context_dir} (dry run: nothing built)",
                          markup=False, highlight=False)
        print_commands([plan.build_cmd, plan.run_cmd])
        return
    eng.require(generated=dockerfile.parent)
    for d in plan.mkdirs:
        d.mkdir(parents=True, exist_ok=True)  # ours, not root's
    rc = run_command(plan.build_cmd)
    if rc != 0:
        raise DeployError(f"{eng.name} build of {plan.build_cmd[-2]} failed (exit {rc}); Dockerfile: {dockerfile}"
                          f"{last_fix()}")
    rc = run_command(plan.run_cmd)
    if rc != 0:
        fix = last_fix()
        if fix:  # the engine failed to start the container (the build's own errors end in their own line)
            raise DeployError(f"{eng.name} run failed (exit {rc}){fix}")
        raise typer.Exit(rc)


@cli_errors
def package_command(
    bundle: Path = typer.Argument(..., help="A bundle folder made by 'deploykit build'.", show_default=False),
    docker: bool = typer.Option(False, "--docker", help="Build the bundle's Dockerfile into a device image (docker buildx or podman)."),
    engine: Optional[str] = typer.Option(
        None, "--engine", help="Container engine, docker or podman [default: $DEPLOYKIT_ENGINE, else docker when its daemon "
        "answers, else podman]. DEPLOYKIT_PULL=never: use local base images only."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Image tag [default: deploykit-TARGET-PRECISION:MODELSHA]."),
    platform: Optional[str] = typer.Option(None, "--platform", help="Docker platform [default: the target profile's docker.platform]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the docker command; build nothing."),
    debug: bool = DebugOption,
) -> None:
    """Package a BUNDLE for its device: a docker image built from the bundle's Dockerfile."""
    from deploykit.docker.device import bundle_platform, default_tag, package_command as build_cmd, read_manifest
    from deploykit.docker.engine import choose_engine, emulation_hint, last_fix, run_command

    if not docker:
        raise DeployError("only container-image packaging exists so far: add --docker")
    manifest = read_manifest(bundle)
    plat = platform or bundle_platform(manifest)
    eng = choose_engine(engine)
    cmd = build_cmd(bundle, plat, tag or default_tag(manifest), engine=eng)
    if dry_run:
        print_commands([cmd])
        return
    status = eng.require(generated=bundle.absolute(), device=True)
    if not status.can_run(plat):
        err_console.print(f"warning: {emulation_hint(plat)}; the image builds only if {eng.name} can emulate {plat}",
                          markup=False, style="yellow")
    rc = run_command(cmd)
    if rc != 0:
        raise DeployError(f"{' '.join(cmd[:2 + (cmd[1] == 'buildx')])} failed (exit {rc}) for {bundle}{last_fix()}")
    err_console.print(f"image {cmd[cmd.index('-t') + 1]} ({plat}) built from {bundle / 'Dockerfile'}", markup=False, highlight=False)
