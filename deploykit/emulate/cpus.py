"""The arm64 CPUs deploykit emulates, and the ``/proc/cpuinfo`` a program on that device reads.

QEMU user mode shows an emulated program the *host's* x86 ``/proc/cpuinfo``. LiteRT reads it to
pick XNNPACK's kernels: with the host's file its parsing fails and LiteRT silently runs without
XNNPACK (facts/arm64-emulation.md, trap 3). The emulated root therefore gets the device's own
file, bind-mounted over ``/proc/cpuinfo``, and QEMU emulates the same core (``QEMU_CPU``), never
``max`` (trap 4: it offers SME, on which XNNPACK's int8 results are wrong).

Values: the ``CPU part``/``variant``/``revision`` and feature flags Linux prints on each board.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmCpu:
    """:ivar qemu: QEMU's CPU model name. :ivar part: MIDR part number (``CPU part``)."""

    qemu: str
    name: str
    part: int
    variant: int
    revision: int
    features: tuple[str, ...]

    def cpuinfo(self, cores: int) -> str:
        """The ``/proc/cpuinfo`` of a ``cores``-core board with this CPU (arm64 Linux's format)."""
        block = (
            "processor\t: {n}\n"
            "BogoMIPS\t: 108.00\n"
            f"Features\t: {' '.join(self.features)}\n"
            "CPU implementer\t: 0x41\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {self.variant:#x}\n"
            f"CPU part\t: {self.part:#05x}\n"
            f"CPU revision\t: {self.revision}\n\n"
        )
        return "".join(block.format(n=n) for n in range(max(1, cores)))

    def cpuinfo_file(self, folder, cores: int):
        """:meth:`cpuinfo` as a file in ``folder`` (written when missing or different; atomically), to bind-mount."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cpuinfo-{self.qemu}-{cores}"
        text = self.cpuinfo(cores)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        return path


_BASE = ("fp", "asimd", "evtstrm", "crc32", "cpuid")
_CRYPTO = ("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "cpuid")
# A76: Armv8.2-A with fp16 arithmetic (fphp, asimdhp) and the dot product (asimddp)
_A76 = ("fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp",
        "cpuid", "asimdrdm", "lrcpc", "dcpop", "asimddp")

ARM_CPUS: dict[str, ArmCpu] = {
    c.qemu: c
    for c in (
        ArmCpu("cortex-a53", "Cortex-A53 r0p4", 0xD03, 0x0, 4, _CRYPTO),   # i.MX 8M (Coral Dev Board)
        ArmCpu("cortex-a72", "Cortex-A72 r0p3", 0xD08, 0x0, 3, _BASE),     # BCM2711 (Pi 4): no crypto extension
        ArmCpu("cortex-a76", "Cortex-A76 r4p1", 0xD0B, 0x4, 1, _A76),      # BCM2712 (Pi 5)
    )
}


def arm_cpu(qemu_name: str) -> ArmCpu:
    from deploykit.errors import DeployError

    if qemu_name.split(",")[0] == "max":
        raise DeployError("QEMU's CPU 'max' offers SME, which no edge board has, and XNNPACK's int8 results on it are "
                          "wrong: emulate the device's own core (e.g. cortex-a72 for a Raspberry Pi 4)")
    if qemu_name not in ARM_CPUS:
        raise DeployError(f"no cpuinfo known for emulated CPU {qemu_name!r}; known: {', '.join(sorted(ARM_CPUS))}")
    return ARM_CPUS[qemu_name]


# an arm64 build machine that is no particular board (a toolchain container of a target without [emulation])
DEFAULT_BUILD_CPU = "cortex-a72"


def board_cpu(profile) -> ArmCpu:
    """The core QEMU emulates for ``profile``'s device (its ``[emulation] cpu``), else :data:`DEFAULT_BUILD_CPU`."""
    return arm_cpu((getattr(profile, "emulation", None) or {}).get("cpu", DEFAULT_BUILD_CPU))


def container_cpu_args(profile, workdir=None, cores: int | None = None) -> list[str]:
    """``run`` arguments for an arm64 container emulated on another host: the board's core
    (``QEMU_CPU``, read by the qemu binfmt handler) and its ``/proc/cpuinfo`` bind-mounted over the
    host's x86 one (LiteRT reads it to pick its kernels; with the host's it runs without XNNPACK
    or crashes). The cpuinfo file is written into ``workdir`` (default: the emulation cache)."""
    if workdir is None:
        from deploykit.emulate.root import cache_root

        workdir = cache_root() / "cpuinfo"
    cpu = board_cpu(profile)
    info = cpu.cpuinfo_file(workdir, cores or getattr(profile, "cores", 4) or 4)
    return ["-e", f"QEMU_CPU={cpu.qemu}", "-v", f"{info.absolute()}:/proc/cpuinfo:ro"]
