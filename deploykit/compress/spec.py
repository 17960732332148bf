"""``--compress`` specifications: ``prune=0.3,lowrank=auto,cluster=64``, ``auto``, or a config file.

Keys (each optional; steps run in the fixed order prune -> sparsity -> lowrank -> cluster):

``prune``     structured channel pruning: a fraction of output channels to remove from every
              prunable layer (``0`` .. ``0.9``), or ``auto`` (per-layer ratios from a sensitivity
              scan under the accuracy budget).
``sparsity``  unstructured magnitude pruning: fraction of weights set to zero (``0`` .. ``0.99``).
``lowrank``   SVD factorization: an energy threshold (``0.5`` .. ``1``: keep that share of the
              squared singular values) or ``auto`` (per-layer ranks under the accuracy budget).
``cluster``   k-means weight sharing: clusters per layer (``16`` .. ``256``) or ``auto`` (the
              fewest clusters that keep the budget).
``budget``    accuracy budget, cosine of the outputs vs fp32 (``0.5`` .. ``1``); overrides the
              caller's default.

``auto`` / ``default`` alone means :data:`DEFAULT_SPEC`: every budget-guarded technique on ``auto``.
A ``.toml`` / ``.json`` file holds the same keys as a table / object.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploykit.errors import DeployError

KEYS = ("prune", "sparsity", "lowrank", "cluster", "budget")
DEFAULT_TEXT = "prune=auto,lowrank=auto,cluster=auto"


@dataclass(frozen=True)
class CompressionSpec:
    """What to apply. ``None`` = technique off; ``"auto"`` = chosen under the accuracy budget."""

    prune: float | str | None = None
    sparsity: float | None = None
    lowrank: float | str | None = None
    cluster: int | str | None = None
    budget: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, k) is None for k in ("prune", "sparsity", "lowrank", "cluster"))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.to_json().items()) or "none"


def _number(key: str, value: Any, lo: float, hi: float, *, allow_auto: bool, integer: bool = False):
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            if allow_auto:
                return "auto"
            raise DeployError(f"--compress {key}=auto is not supported; give a number between {lo:g} and {hi:g}")
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            auto = " or auto" if allow_auto else ""
            raise DeployError(f"--compress {key}={value!r} is not {kind}; use {kind} between {lo:g} and {hi:g}{auto}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise DeployError(f"--compress {key}={value!r} must be {'an integer' if integer else 'a number'} between {lo:g} and {hi:g}")
    if not lo <= value <= hi:
        raise DeployError(f"--compress {key}={value} is out of range; use a value between {lo:g} and {hi:g}")
    return int(value) if integer else float(value)


def spec_from_dict(data: dict[str, Any], source: str = "--compress") -> CompressionSpec:
    """Validate a key -> value mapping (from the text form or a config file)."""
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise DeployError(f"{source}: unknown key {unknown[0]!r}; use {', '.join(KEYS)} (e.g. prune=0.3,lowrank=auto,cluster=64)")
    spec = CompressionSpec(
        prune=_number("prune", data["prune"], 0.0, 0.9, allow_auto=True) if "prune" in data else None,
        sparsity=_number("sparsity", data["sparsity"], 0.0, 0.99, allow_auto=False) if "sparsity" in data else None,
        lowrank=_number("lowrank", data["lowrank"], 0.5, 1.0, allow_auto=True) if "lowrank" in data else None,
        cluster=_number("cluster", data["cluster"], 16, 256, allow_auto=True, integer=True) if "cluster" in data else None,
        budget=_number("budget", data["budget"], 0.5, 1.0, allow_auto=False) if "budget" in data else None,
    )
    if spec.is_empty():
        raise DeployError(f"{source}: nothing to do; give at least one of prune, sparsity, lowrank, cluster (or 'auto')")
    return spec


def _parse_text(text: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DeployError(f"--compress: {part!r} is not KEY=VALUE; write e.g. prune=0.3,lowrank=auto,cluster=64 (or 'auto')")
        key, value = (s.strip() for s in part.split("=", 1))
        if key in data:
            raise DeployError(f"--compress: key {key!r} given twice")
        data[key] = value
    return data


def _read_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            import tomllib

            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise DeployError(f"cannot read compression config {path.name!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if isinstance(data, dict) and isinstance(data.get("compress"), dict):
        data = data["compress"]  # allow a [compress] table
    if not isinstance(data, dict):
        raise DeployError(f"compression config {path.name!r} must hold a table/object of {', '.join(KEYS)}")
    return data


def parse_spec(text: str) -> CompressionSpec:
    """Parse ``--compress``: ``auto``/``default``, ``key=value,...``, or a ``.toml``/``.json`` file path."""
    if text is None or not str(text).strip():
        raise DeployError("--compress is empty; write e.g. prune=0.3,lowrank=auto,cluster=64 (or 'auto')")
    text = str(text).strip()
    if text.lower() in ("auto", "default"):
        return spec_from_dict(_parse_text(DEFAULT_TEXT))
    if text.lower().endswith((".toml", ".json")):
        path = Path(text)
        if not path.is_file():
            raise DeployError(f"compression config {text!r} does not exist")
        return spec_from_dict(_read_file(path), f"compression config {path.name}")
    return spec_from_dict(_parse_text(text))


DEFAULT_SPEC = parse_spec(DEFAULT_TEXT)
