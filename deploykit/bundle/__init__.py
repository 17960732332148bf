"""Bundle writing: atomic staging, deterministic files, manifest with checksums, templates."""
