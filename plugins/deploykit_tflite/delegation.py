"""Which operators of a written .tflite XNNPACK takes, measured in LiteRT on the build host.

Every op XNNPACK refuses runs on LiteRT's built-in kernels and splits the graph into one more
delegate partition (facts §2, §4): an int8 model with a few refused ops can be slower than fp32.
The refusal rules (scale ratios, denormal scales, op types) are many and version-dependent, so the
build asks the interpreter instead of predicting them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Delegation:
    """:ivar partitions: XNNPACK delegate nodes (1 = the whole graph in one partition).
    :ivar undelegated: op name -> count of ops left on the built-in kernels.
    :ivar examples: a few of those ops with their first output tensor's name."""

    partitions: int
    undelegated: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.undelegated:
            return f"XNNPACK runs every op ({self.partitions} partition{'s' * (self.partitions != 1)})"
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.undelegated.items(), key=lambda kv: -kv[1]))
        return (f"XNNPACK leaves {sum(self.undelegated.values())} op(s) on built-in kernels ({ops}) and splits "
                f"the graph into {self.partitions} partitions; e.g. {', '.join(self.examples[:3])}")

    def as_dict(self) -> dict:
        return {"partitions": self.partitions, "undelegated": dict(self.undelegated), "examples": self.examples[:10]}


def xnnpack_delegation(model_path: str | Path, threads: int = 1) -> Delegation:
    """Partitions and refused ops of ``model_path`` under LiteRT's default XNNPACK delegate.

    LiteRT lists the original ops and one ``DELEGATE`` op per partition; an original op belongs
    to a partition when it lies between that partition's inputs and outputs.
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path), num_threads=threads)
    it.allocate_tensors()
    ops = it._get_ops_details()  # noqa: SLF001 - the only public view of the node list
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {t: o for o in original for t in o["outputs"]}
    inside: set[int] = set()
    for d in delegates:
        stop, todo = set(d["inputs"]), list(d["outputs"])
        while todo:
            t = todo.pop()
            o = producer.get(t)
            if t in stop or o is None or o["index"] in inside:
                continue
            inside.add(o["index"])
            todo.extend(o["inputs"])
    left = [o for o in original if o["index"] not in inside]
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    return Delegation(
        partitions=len(delegates),
        undelegated=dict(Counter(o["op_name"] for o in left)),
        examples=[f"{o['op_name']} -> {names.get(int(o['outputs'][0]), '?')}" for o in left if len(o["outputs"])],
    )


def _probe(model_path: str, threads: int) -> dict:
    """Load, allocate and invoke once on zeros (the child process's work), then the delegation."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model_path, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
    return xnnpack_delegation(model_path, threads).as_dict()


def checked_delegation(model_path: str | Path, threads: int = 1, timeout: float = 600) -> Delegation:
    """:func:`xnnpack_delegation` in a child process that also runs the model once: LiteRT aborting
    (SIGABRT/SIGSEGV) on a model is a clean error, not the end of the build (issue 19: MiniLM int8)."""
    import json
    import signal
    import subprocess
    import sys

    from deploykit.errors import DeployError

    cmd = [sys.executable, "-m", "deploykit_tflite.delegation", str(model_path), str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"LiteRT did not finish loading and running the model once in {timeout:.0f} s") from None
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        detail = next((ln.strip() for ln in reversed(proc.stderr.splitlines()) if ln.strip() and "INFO:" not in ln), "")
        raise DeployError(f"LiteRT crashed ({name}) loading and running the lowered model on this host"
                          + (f": {detail[:300]}" if detail else "") + "; this is a lowering bug, please report it")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(last[-1] if last else f"exit code {proc.returncode}")
    d = json.loads(lines[-1])
    return Delegation(d["partitions"], d["undelegated"], d["examples"])


if __name__ == "__main__":
    import json as _json
    import sys as _sys

    print(_json.dumps(_probe(_sys.argv[1], int(_sys.argv[2]) if len(_sys.argv) > 2 else 1)))
