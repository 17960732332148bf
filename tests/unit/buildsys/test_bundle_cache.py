"""The local bundle cache: store, re-verify by manifest, prune, clear."""

from __future__ import annotations

import os
import time

import pytest

from deploykit.buildsys.cache import BundleCache, default_root, parse_age, parse_size
from deploykit.bundle.files import write_json
from deploykit.bundle.manifest import hash_files
from deploykit.errors import DeployError

pytestmark = pytest.mark.unit
KEY_A, KEY_B = "a" * 64, "b" * 64


def fake_bundle(folder, payload: bytes = b"model"):
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    write_json(folder / "manifest.json", {"schema_version": 1, "files": hash_files(folder)})
    return folder


def test_store_get_verify(tmp_path):
    cache = BundleCache(tmp_path / "cache")
    assert cache.get(KEY_A) is None
    entry = cache.store(KEY_A, fake_bundle(tmp_path / "b1"), {"model": "m", "target": "host", "precision": "fp32"})
    got = cache.get(KEY_A)
    assert got is not None and got.meta["model"] == "m" and got.size > 0
    assert cache.verify(got) == []
    (entry.bundle / "model.onnx").write_bytes(b"tampered")
    assert any("sha256 mismatch" in p for p in cache.verify(got))
    (entry.bundle / "extra.txt").write_text("x")
    assert any("not listed" in p for p in cache.verify(got))
    with pytest.raises(DeployError, match="not a bundle key"):
        cache.get("../../etc")


def test_prune_by_age_and_size_and_clear(tmp_path):
    cache = BundleCache(tmp_path / "cache")
    old = cache.store(KEY_A, fake_bundle(tmp_path / "b1", b"x" * 1000), {})
    cache.store(KEY_B, fake_bundle(tmp_path / "b2", b"y" * 1000), {})
    past = time.time() - 40 * 86400
    os.utime(old.path / "entry.json", (past, past))
    assert [e.key for e in cache.prune(max_age_days=30)] == [KEY_A]
    assert [e.key for e in cache.entries()] == [KEY_B]
    cache.store(KEY_A, fake_bundle(tmp_path / "b3", b"z" * 1000), {})
    os.utime(cache.get(KEY_B).path / "entry.json", (past, past))  # B is the least recently used now
    removed = cache.prune(max_bytes=cache.get(KEY_A).size)
    assert [e.key for e in removed] == [KEY_B]
    assert [e.key for e in cache.clear()] == [KEY_A] and cache.entries() == []


def test_history_and_root(tmp_path, monkeypatch):
    cache = BundleCache(tmp_path / "cache")
    cache.record({"m|host|fp32": {"peak_rss_mb": 321.0}})
    assert cache.history()["m|host|fp32"]["peak_rss_mb"] == 321.0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "deploykit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert default_root().name == "deploykit" and default_root().is_absolute()


def test_sizes_and_ages():
    assert parse_size("2G") == 2 << 30 and parse_size("500MiB") == 500 << 20 and parse_size("100") == 100
    assert parse_age("12h") == 0.5 and parse_age("7") == 7.0 and parse_age("2w") == 14.0
    for bad in ("lots", "-1G"):
        with pytest.raises(DeployError):
            parse_size(bad)
