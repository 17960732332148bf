"""deploykit as a build system: a project file (``deploykit.toml`` or ``[tool.deploykit]`` in
``pyproject.toml``) lists models and the targets/precisions to build them for; ``deploykit build``
without a model builds that matrix incrementally (content-addressed keys, a local bundle cache),
in parallel child processes on this machine or as tasks on a Ray cluster.

Modules: ``project`` (the file and its validation), ``fingerprint`` (bundle keys), ``cache`` (the
local bundle cache), ``child`` (one build in an isolated process), ``local`` and ``ray_executor``
(executors), ``matrix`` (plan, run, install into ``dist/``), ``report`` (``matrix.json`` and
``matrix.html``). Nothing here is imported by ``deploykit --help``.
"""
