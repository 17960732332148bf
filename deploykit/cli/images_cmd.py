"""``deploykit images``: local base images for offline / air-gapped image builds (no registry needed)."""

from __future__ import annotations

from typing import List, Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, err_console, out_console, print_json

images_app = typer.Typer(
    help="Local base images for building deploykit's Dockerfiles without a container registry.",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None)


@images_app.command("bootstrap")
@cli_errors
def images_bootstrap(
    names: Optional[List[str]] = typer.Argument(
        None, help="Base image names to make [default: every python:* base the Dockerfiles name].", show_default=False),
    engine: Optional[str] = typer.Option(
        None, "--engine", help="Import into docker or podman [default: as for build --docker]. Only podman holds "
        "a local multi-architecture list; docker gets the host's architecture only."),
    arch: Optional[List[str]] = typer.Option(None, "--arch", help="Only these architectures (amd64, arm64) [default: each base's]."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Make the base images the Dockerfiles name (python:3.11-slim-bookworm, ...) from the Debian package registry.

    mmdebstrap makes a minimal Debian root with Debian's python3, the engine imports it per architecture and a
    manifest list under the upstream name holds them, so unmodified Dockerfiles build offline (build with
    DEPLOYKIT_PULL=never). The result is Debian's Python, NOT the upstream python image: e.g. the stand-in for
    python:3.10-slim-bookworm runs Python 3.11. Needs root (or user namespaces), mmdebstrap and, for arm64,
    qemu-user-static with binfmt. Roots are cached under $XDG_CACHE_HOME/deploykit/images.
    """
    from deploykit.docker.bases import LOCAL_BASES, bootstrap
    from deploykit.docker.engine import choose_engine
    from deploykit.errors import DeployError

    eng = choose_engine(engine).name
    with err_console.status("making local base images…", spinner="dots") as status:
        results = bootstrap(list(names or []) or None, engine=eng, archs=list(arch or []) or None,
                            log=lambda m: status.update(m))
    if json_out:
        print_json([r.to_json() for r in results])
    else:
        for r in results:
            for a, ref in r.archs.items():
                state = ref if ref.startswith("failed") else f"ok ({ref}, {r.seconds[a]:.0f} s)"
                out_console.print(f"{r.name} {a}: {state}", markup=False, highlight=False)
            if not r.error or len(r.archs) > 1:
                out_console.print(f"  note: {r.note}", markup=False, highlight=False)
    failed = [r for r in results if r.error]
    if failed:
        raise DeployError("; ".join(f"{r.name}: {r.error}" for r in failed)[:1500])
    if not json_out:
        err_console.print("done: build with DEPLOYKIT_PULL=never (podman: --pull=never) so nothing is pulled; these are "
                          f"Debian's python3 ({', '.join(sorted({b.debian_python for b in LOCAL_BASES.values()}))}), "
                          "not the upstream python images", markup=False, highlight=False)
