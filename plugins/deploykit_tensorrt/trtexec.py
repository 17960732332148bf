"""trtexec command lines per TensorRT version, from a target profile's ``[options]`` (facts §4).

| flag                         | 8.2          | 8.4–8.6                  | 10.x                       |
|------------------------------|--------------|--------------------------|----------------------------|
| workspace                    | --workspace=N| --memPoolSize=workspace:N| --memPoolSize=workspace:NM |
| build without inference      | --buildOnly  | --buildOnly / --skipInference (8.6) | --skipInference |
| precision (weakly typed)     | --fp16, --int8 --fp16 (Q/DQ needs --int8; --fp16 for float layers) |
| DLA (only where present)     | --useDLACore=N --allowGPUFallback                                    |
| timing cache                 | --timingCacheFile=FILE                                               |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploykit_tensorrt.optable import parse_version


@dataclass(frozen=True)
class EngineSettings:
    """What an engine build needs, taken from the profile (shared by trtexec and the Python path)."""

    trt_version: str
    precision: str
    workspace_mb: int
    dla_cores: int
    trtexec: str
    has_fast_int8: bool

    @classmethod
    def from_profile(cls, profile, precision: str) -> EngineSettings:
        o: dict[str, Any] = dict(profile.options)
        return cls(
            trt_version=str(o.get("tensorrt_version", profile.runtime_version)),
            precision=precision,
            workspace_mb=int(o.get("workspace_mb", 1024)),
            dla_cores=int(o.get("dla_cores", 0)),
            trtexec=str(o.get("trtexec", "/usr/src/tensorrt/bin/trtexec")),
            has_fast_int8=bool(o.get("has_fast_int8", True)),
        )

    @property
    def version(self) -> tuple[int, int]:
        return parse_version(self.trt_version)


def precision_flags(precision: str, implicit: bool = False) -> list[str]:
    if precision == "fp16":
        return ["--fp16"]
    if precision == "int8":
        return ["--int8", "--fp16"] + (["--calib=calibration.cache"] if implicit else [])
    return []


def workspace_flag(version: tuple[int, int], mb: int) -> str:
    if version < (8, 4):
        return f"--workspace={mb}"
    if version < (10, 0):
        return f"--memPoolSize=workspace:{mb}"
    return f"--memPoolSize=workspace:{mb}M"


def build_only_flag(version: tuple[int, int]) -> str:
    return "--skipInference" if version >= (8, 6) else "--buildOnly"


def trtexec_args(s: EngineSettings, onnx_file: str, engine_file: str, timing_cache: str,
                 implicit: bool = False, keep_fp32: list[str] | None = None) -> list[str]:
    """trtexec arguments (no program name) to build ``engine_file`` from ``onnx_file``;
    ``keep_fp32``: layers (ONNX node names, which TensorRT's parser keeps) pinned to fp32 (TRT >= 8.4)."""
    args = [f"--onnx={onnx_file}", f"--saveEngine={engine_file}"]
    args += precision_flags(s.precision, implicit)
    if keep_fp32:
        args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in keep_fp32)]
    args.append(workspace_flag(s.version, s.workspace_mb))
    if s.dla_cores > 0 and s.precision in ("fp16", "int8"):
        args += ["--useDLACore=0", "--allowGPUFallback"]
    args.append(f"--timingCacheFile={timing_cache}")
    args.append(build_only_flag(s.version))
    return args
