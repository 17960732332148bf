"""Unique tensor/node names for graph rewrites."""

from __future__ import annotations


def fresh_name(taken: set[str], base: str) -> str:
    """``base``, else ``base_1``, ``base_2``, ...: the first name not in ``taken``, which it joins."""
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name
