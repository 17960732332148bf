"""The Ray executor: each build is a Ray task on a cluster (``pip install 'deploykit[ray]'``).

``--executor ray`` joins the cluster of ``RAY_ADDRESS`` (or starts a local one for the run, shut
down at its end); ``--executor ray://HOST:PORT`` goes through Ray Client. Ray is imported only here.

- **Inputs travel by content hash.** The driver puts every distinct input file (model, external
  data, calibration, eval data) into the object store once, keyed by its sha256; a task gets the
  hashes and fetches only files its node does not hold yet (a per-node store under the temp
  folder), then lays them out under their original names, so the bundle is byte-identical to a
  local build.
- **Toolchains by resource.** A task asks for the custom resource ``deploykit_<backend>``
  (e.g. ``deploykit_openvino``): a node that lacks a backend's toolchain never gets its builds.
  Start worker nodes with ``ray start --resources "$(python -m deploykit.buildsys.ray_executor)"``
  (prints the resources of the backends installed there); a local cluster declares them itself.
  A task also checks that its node runs the same deploykit, plugin and toolchain versions as the
  driver (else the bundle would not match its key) and fails with the difference.
- **Bundles come back** as a tar stream, are unpacked on the driver and then checked, cached and
  installed like a local build's.
- **Failures and retries per build.** A build that fails (a bad model, a missing runtime) is
  reported once; a task lost to the cluster (worker crash, node death, object loss) is
  resubmitted up to ``retries`` times and every attempt's reason is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from deploykit.bundle.files import sha256_file
from deploykit.errors import DeployError, ToolchainError

RESOURCE_PREFIX = "deploykit_"
RETRYABLE = ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError", "ObjectFetchTimedOutError",
             "RaySystemError", "LocalRayletDiedError", "OutOfMemoryError", "TaskUnschedulableError")
_SERVER = None  # one build server per Ray worker process


def toolchain_resources(registry=None) -> dict[str, float]:
    """Ray custom resources for the backends whose toolchains are installed on this machine."""
    from deploykit.plugins import default_registry

    reg = registry or default_registry()
    return {f"{RESOURCE_PREFIX}{name}": 1000.0 for name, cls in sorted(reg.backends.items()) if cls.is_installed()}


def retryable(exc: BaseException) -> bool:
    """Whether a task failed because of the cluster (worth another attempt), not because of its build."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & set(RETRYABLE))


# ------------------------------------------------------------------------------ driver side


def transport_plan(spec: dict[str, Any], model_files: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """(roles, files by sha256) of a job spec: ``roles[role] = {"kind": "file"|"dir", "name", "files": {rel: sha}}``."""
    from deploykit.buildsys.fingerprint import tree_files

    by_sha: dict[str, Path] = {}
    roles: dict[str, Any] = {}

    def add(role: str, kind: str, name: str, files: dict[str, Path]) -> None:
        shas = {}
        for rel, path in files.items():
            sha = sha256_file(path)
            by_sha[sha] = path
            shas[rel] = sha
        roles[role] = {"kind": kind, "name": name, "files": shas}

    add("model", "model", Path(spec["model"]).name, model_files)
    for role, key in (("calibration", "calibration"), ("eval", "eval_data"), ("compress", "compress")):
        value = spec.get(key)
        if value and (role != "compress" or value.endswith((".toml", ".json"))):
            p = Path(value)
            add(role, "dir" if p.is_dir() else "file", p.name, tree_files(p))
    metric = spec.get("metric") or ""
    if ".py:" in metric:
        file, func = metric.rsplit(":", 1)
        add("metric", "file", Path(file).name, tree_files(Path(file)))
        roles["metric"]["function"] = func
    return roles, by_sha


def unpack_bundle(data: bytes, dest: Path) -> None:
    """Extract a bundle tar into ``dest``: plain files and folders only, nothing outside ``dest``."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise DeployError(f"a Ray worker sent back a bundle with an unsafe entry {member.name!r}")
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with open(target, "wb") as f:
                shutil.copyfileobj(src, f)
            os.chmod(target, member.mode & 0o755 | 0o644)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None, keep_going: bool = False,
                 workdir: Path | None = None, retries: int = 2):
        self.loopback = _loopback(address or os.environ.get("RAY_ADDRESS") or "")
        if self.loopback:
            # A cluster bound to 127.0.0.1: Ray replaces a loopback address by the machine's own
            # address unless its single-machine mode is on (read when ray is imported), then waits
            # for ever for a head that does not listen there.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ToolchainError("--executor ray needs Ray on this machine: pip install 'deploykit[ray]'") from None
        self.address = address
        self.jobs = jobs
        self.keep_going = keep_going
        self.retries = retries
        self.workdir = workdir

    def describe(self) -> str:
        where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray cluster started for this run"
        return f"ray ({where})"

    def _connect(self) -> bool:
        """Connect (or start a local cluster); True when this run started Ray and must shut it down."""
        import logging

        import ray

        if ray.is_initialized():
            return False
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.loopback:
            quiet["_node_ip_address"] = "127.0.0.1"
        try:
            if self.address:
                ray.init(address=self.address, **quiet)
            elif os.environ.get("RAY_ADDRESS"):
                ray.init(**quiet)
            else:
                from deploykit.buildsys.local import usable_cores

                ray.init(num_cpus=self.jobs or usable_cores(), resources=toolchain_resources(), include_dashboard=False,
                         **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise DeployError(f"cannot reach the Ray cluster {self.address or os.environ.get('RAY_ADDRESS') or '(local)'}: "
                              f"{' '.join(str(e).split())[:300]}") from e
        return True

    def run(self, tasks: list, events) -> dict[str, dict[str, Any]]:
        import ray

        started_here = self._connect()
        try:
            return self._run(ray, tasks, events)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, tasks: list, events) -> dict[str, dict[str, Any]]:
        offered = {k for k, v in ray.cluster_resources().items() if k.startswith(RESOURCE_PREFIX) and v > 0}
        limit = self.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        memory_cap = 0.5 * float(ray.cluster_resources().get("memory", 0))  # never ask for what no node has
        remote = ray.remote(build_task)
        refs: dict[str, Any] = {}  # sha256 -> ObjectRef: every distinct input file goes to the object store once
        pending = list(tasks)
        running: dict[Any, Any] = {}  # ObjectRef -> task
        history: dict[str, list[str]] = {}
        results: dict[str, dict[str, Any]] = {}
        stop = False

        def finish(task, result: dict[str, Any]) -> None:
            nonlocal stop
            result["attempts"] = task.attempts
            if history.get(task.job.id):
                result["retries"] = history[task.job.id]
                result.setdefault("warnings", []).append(
                    f"retried on the cluster: {'; '.join(history[task.job.id])}")
            results[task.job.id] = result
            events.finished(task, result)
            if result.get("status") != "built" and not self.keep_going:
                stop = True

        while pending or running:
            while pending and not stop and len(running) < limit:
                task = pending.pop(0)
                resource = RESOURCE_PREFIX + task.extra["backend"]
                if resource not in offered:
                    task.attempts = 0
                    finish(task, {"status": "failed", "exit_code": 3, "error": (
                        f"no Ray node offers the {task.extra['backend']!r} toolchain (resource {resource}); start a node "
                        "that has it with: ray start --address HEAD:PORT --resources \"$(python -m deploykit.buildsys.ray_executor)\"")})
                    continue
                roles, files = transport_plan(task.spec, task.extra["model_files"])
                for sha, path in files.items():
                    if sha not in refs:
                        refs[sha] = ray.put(path.read_bytes())
                payload = {"id": task.job.id, "spec": task.spec, "roles": roles, "software": task.extra["software"],
                           "backend": task.extra["backend"]}
                options = {"num_cpus": 1, "resources": {resource: 0.001}, "max_retries": 0}
                if task.estimate_mb and memory_cap:
                    options["memory"] = int(min(task.estimate_mb * 2**20, memory_cap))
                task.attempts += 1
                ref = remote.options(**options).remote(payload, [[sha, refs[sha]] for sha in files])
                running[ref] = task
                if task.attempts == 1:
                    events.started(task)
            if stop and pending:
                for task in pending:
                    finish(task, {"status": "skipped", "error": "not started: an earlier build failed (pass --keep-going "
                                  "to build the rest)"})
                pending.clear()
            if not running:
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in done:
                task = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a lost task is retried, anything else is this build's failure
                    reason = f"attempt {task.attempts}: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
                    history.setdefault(task.job.id, []).append(reason)
                    if retryable(e) and task.attempts <= self.retries:
                        pending.insert(0, task)
                        continue
                    finish(task, {"status": "failed", "exit_code": 1, "error": f"Ray task failed ({reason})"})
                    continue
                bundle = result.pop("bundle_tar", None)
                if result.get("status") == "built" and bundle is not None:
                    unpack_bundle(bundle, Path(task.spec["output"]))
                if result.get("log"):
                    Path(task.spec["log"]).parent.mkdir(parents=True, exist_ok=True)
                    Path(task.spec["log"]).write_text(result.pop("log"), encoding="utf-8")
                finish(task, result)
        return results


# ------------------------------------------------------------------------------ worker side


def _node_store() -> Path:
    store = Path(tempfile.gettempdir()) / f"deploykit-ray-inputs-{os.getuid()}"
    store.mkdir(mode=0o700, exist_ok=True)
    return store


def _fetch(sha: str, ref, store: Path) -> Path:
    """The input file of ``sha`` on this node, fetched from the object store only the first time."""
    path = store / sha
    if path.is_file() and sha256_file(path) == sha:
        return path
    import ray

    data = ray.get(ref)
    if hashlib.sha256(data).hexdigest() != sha:
        raise DeployError(f"input {sha[:12]} arrived damaged from the object store")
    tmp = store / f".{sha}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def materialize(payload: dict[str, Any], refs: dict[str, Any], work: Path) -> dict[str, Any]:
    """Lay the inputs out under ``work`` with their original names; returns the job spec rewritten to them."""
    store = _node_store()
    spec = dict(payload["spec"])
    for role, info in payload["roles"].items():
        base = work / role
        root = base / info["name"] if info["kind"] == "dir" else base
        for rel, sha in info["files"].items():
            _place(_fetch(sha, refs[sha], store), root / rel)
        where = str(root if info["kind"] == "dir" else base / info["name"])
        if role == "model":
            spec["model"] = str(base / info["name"])
        elif role == "calibration":
            spec["calibration"] = where
        elif role == "eval":
            spec["eval_data"] = where
        elif role == "compress":
            spec["compress"] = where
        elif role == "metric":
            spec["metric"] = f"{where}:{info['function']}"
    spec.update({"output": str(work / "out" / "bundle"), "log": str(work / "build.log"), "result": str(work / "result.json")})
    return spec


def _software_difference(expected: dict[str, Any], backend: str) -> str | None:
    from deploykit.buildsys.fingerprint import Fingerprinter, HashMemo
    from deploykit.plugins import default_registry

    mine = Fingerprinter(default_registry(), HashMemo()).software(backend)
    if mine == expected:
        return None
    flat_mine, flat_expected = _flatten(mine), _flatten(expected)
    diffs = [f"{k}: driver {flat_expected.get(k)!r}, worker {flat_mine.get(k)!r}"
             for k in sorted(set(flat_mine) | set(flat_expected)) if flat_mine.get(k) != flat_expected.get(k)]
    return "; ".join(diffs[:4])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for p in sorted(folder.rglob("*")):
            if "__pycache__" in p.parts:
                continue
            tar.add(p, arcname=p.relative_to(folder).as_posix(), recursive=False)
    return buf.getvalue()


def build_task(payload: dict[str, Any], ref_pairs: list) -> dict[str, Any]:
    """A Ray task: fetch the inputs, build in a child process of this worker's build server, send the bundle back."""
    global _SERVER
    import ray

    from deploykit.buildsys.child import BuildServer, run_one

    node = ray.get_runtime_context().get_node_id()[:12]
    difference = _software_difference(payload["software"], payload["backend"])
    if difference:
        return {"status": "failed", "exit_code": 3, "worker": node, "error": (
            f"this Ray node builds with different software than the driver ({difference}); install the same "
            "deploykit, plugins and toolchains on every node")}
    work = Path(tempfile.mkdtemp(prefix="deploykit-ray-job-"))
    try:
        spec = materialize(payload, {sha: ref for sha, ref in ref_pairs}, work)
        if _SERVER is None or _SERVER.process.poll() is not None:
            _SERVER = BuildServer()
        result = run_one(_SERVER, payload["id"], spec)
        result["worker"] = node
        if result.get("status") == "built":
            result["bundle_tar"] = _tar(Path(spec["output"]))
        try:
            result["log"] = Path(spec["log"]).read_text(encoding="utf-8", errors="replace")[-200_000:]
        except OSError:
            pass
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # print this machine's toolchain resources for `ray start --resources`
    sys.stdout.write(json.dumps(toolchain_resources()) + "\n")


def _loopback(address: str) -> bool:
    """``ray://127.0.0.1:10001``, ``localhost:6379``, ``127.0.0.1:6379``: a cluster on this machine's
    loopback interface."""
    if not address:
        return False
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"
