"""Run a bundle's own runner inside the emulated device root, on the device's CPU model.

Each run is a private mount + pid namespace (``unshare``): ``/proc`` of that namespace, the
device's cpuinfo bind-mounted over ``/proc/cpuinfo``, ``/dev``, and a work folder holding a copy of
the bundle, the samples and :mod:`deploykit.emulate.driver`. ``/sys`` is not the host's (with it
LiteRT crashes under QEMU, facts/arm64-emulation.md trap 3) but a tree of the device's CPU lists
only (``devices/system/cpu/{possible,present,online}``): without those, LiteRT's CPU detection
fails and it silently runs without XNNPACK even with the right cpuinfo (measured: ai-edge-litert
2.3.0 on an emulated Cortex-A72/A76). QEMU runs every arm64 program with ``QEMU_CPU=<device core>``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from deploykit.devenv import DeviceEnv
from deploykit.emulate.cpus import arm_cpu
from deploykit.emulate.root import DeviceRoot, root_env
from deploykit.errors import DeployError

WORK_MOUNT = "/mnt/work"
# host sh: mounts in the new namespace, then chroot; every path is a positional argument, never code
_NAMESPACE_SCRIPT = (
    'set -e; r="$1"; c="$2"; y="$3"; w="$4"; shift 4; '
    'mount -t proc proc "$r/proc"; '
    'if [ -n "$c" ]; then mount --bind "$c" "$r/proc/cpuinfo"; fi; '
    'if [ -n "$y" ]; then mkdir -p "$r/sys"; mount --bind -o ro "$y" "$r/sys"; fi; '
    'mount --rbind /dev "$r/dev"; '
    'if [ -n "$w" ]; then mount --bind "$w" "$r' + WORK_MOUNT + '"; fi; '
    'exec chroot "$r" "$@"'
)
RUN_TIMEOUT = 3600


class Emulator:
    """Runs commands inside the root of one :class:`DeviceEnv` as its device would."""

    def __init__(self, env: DeviceEnv, cores: int = 4, log: Callable[[str], None] = lambda m: None,
                 cache: Path | None = None, device_cpuinfo: bool = True):
        self.env = env
        self.cpu = arm_cpu(env.cpu)
        self.root = DeviceRoot(env, cache=cache, log=log)
        self.cores = cores
        self.log = log
        self.device_cpuinfo = device_cpuinfo  # False only to show what trap 3 does (tests)

    def _cpuinfo_file(self) -> str:
        return str(self.cpu.cpuinfo_file(self.root.dir, self.cores)) if self.device_cpuinfo else ""

    def _sys_tree(self) -> str:
        """A /sys holding only the device's CPU lists (what LiteRT's CPU detection reads)."""
        if not self.device_cpuinfo:
            return ""
        top = self.root.dir / f"sys-{self.cores}"
        cpu = top / "devices" / "system" / "cpu"
        if not (cpu / "online").is_file():
            cpu.mkdir(parents=True, exist_ok=True)
            for name in ("possible", "present", "online"):
                (cpu / name).write_text(f"0-{self.cores - 1}\n" if self.cores > 1 else "0\n")
        return str(top)

    def command(self, cmd: Sequence[str], work: Path | None = None) -> list[str]:
        return ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "/bin/sh", "-c", _NAMESPACE_SCRIPT,
                "sh", str(self.root.path), self._cpuinfo_file(), self._sys_tree(), str(work) if work else "", *cmd]

    def prepare(self) -> str:
        """The root and the venv for the environment's requirements (cached); the venv's path in the root."""
        self.root.ensure()
        return self.root.venv(self.command)

    def run_bundle(self, bundle: Path, feeds: Sequence[Mapping[str, np.ndarray]], input_names: list[str],
                   output_names: list[str]) -> tuple[list[dict[str, np.ndarray]], dict]:
        """The bundle's runner on ``feeds`` inside the root: (outputs per sample, what the driver saw)."""
        venv = self.prepare()
        with tempfile.TemporaryDirectory(prefix="deploykit-emulate-") as tmp:
            work = Path(tmp)
            shutil.copytree(bundle, work / "bundle", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copyfile(Path(__file__).with_name("driver.py"), work / "driver.py")
            arrays = {"count": np.asarray(len(feeds))}
            for s, feed in enumerate(feeds):
                for i, name in enumerate(input_names):
                    arrays[f"s{s}_i{i}"] = np.asarray(feed[name])
            np.savez(work / "feeds.npz", **arrays)
            part = f"{self.cpu.part:#05x}"
            cmd = self.command([f"{venv}/bin/python", f"{WORK_MOUNT}/driver.py", WORK_MOUNT, part], work)
            self.log(f"running the bundle's runner on {len(feeds)} sample(s) in the emulated {self.cpu.name} root")
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=root_env(self.env), timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired as e:
                raise DeployError(f"the bundle's runner took more than {RUN_TIMEOUT} s in the emulated root") from e
            info = _read_json(work / "info.json")
            if info.get("error") == "cpuinfo":
                raise DeployError(
                    f"the emulated root does not see the device's /proc/cpuinfo (CPU part {info.get('cpu_part') or 'missing'}, "
                    f"expected {part} of the {self.cpu.name}): QEMU shows emulated programs the host's cpuinfo, on which "
                    "LiteRT silently runs without XNNPACK; the device's cpuinfo must be bind-mounted over /proc/cpuinfo "
                    "(run as root, with /proc not read-only)")
            if proc.returncode != 0 or not (work / "outputs.npz").is_file():
                lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
                raise DeployError(f"the bundle's runner failed in the emulated {self.cpu.name} root (exit {proc.returncode}): "
                                  f"{(lines[-1] if lines else 'no output')[:300]}")
            with np.load(work / "outputs.npz", allow_pickle=False) as data:
                outs = [{name: data[f"s{s}_o{o}"] for o, name in enumerate(output_names)} for s in range(len(feeds))]
            info["packages"] = self.root.installed(venv)
            info["stderr"] = [ln for ln in proc.stderr.splitlines() if ln.startswith("runner: ")][:5]
        return outs, info


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
