"""Runs inside the emulated device root (the device's Python, numpy and runtime only; Python >= 3.6).

``python driver.py WORK``: imports the bundle's own ``runner.py`` from ``WORK/bundle``, runs it on
every sample of ``WORK/feeds.npz`` (keys ``s<sample>_i<input>`` in the manifest's input order)
and writes ``WORK/outputs.npz`` (``s<sample>_o<output>``) and ``WORK/info.json`` (runtime, CPU
seen in /proc/cpuinfo, Python and numpy versions). Exit 4 when /proc/cpuinfo is not the device's.
"""

import json
import os
import platform
import sys


def cpuinfo_fields():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
    except (IOError, OSError) as e:
        fields["error"] = str(e)
    return fields


def main(work, expected_part):
    info = {"machine": platform.machine(), "python": platform.python_version()}
    fields = cpuinfo_fields()
    info["cpu_part"] = fields.get("CPU part", "")
    info["cpu_features"] = fields.get("Features", "")
    if expected_part and info["cpu_part"].lower() != expected_part.lower():
        info["error"] = "cpuinfo"
        info["cpuinfo_first_line"] = next(iter(fields.items()), ("", ""))[1] if fields else ""
        with open(os.path.join(work, "info.json"), "w") as f:
            json.dump(info, f)
        return 4
    import numpy as np

    info["numpy"] = np.__version__
    bundle = os.path.join(work, "bundle")
    sys.path.insert(0, bundle)
    import runner as bundle_runner

    r = bundle_runner.Runner(bundle)
    info["runtime"] = str(r.runtime)
    info["xnnpack"] = getattr(r, "xnnpack", None)  # the tflite runner's own check: a delegate took ops
    info["threads"] = r.num_threads
    feeds = np.load(os.path.join(work, "feeds.npz"), allow_pickle=False)
    n = int(feeds["count"])
    outputs = {}
    for s in range(n):
        sample = dict((spec["name"], feeds["s%d_i%d" % (s, i)]) for i, spec in enumerate(r.inputs))
        result = r.run(sample)
        for o, spec in enumerate(r.outputs):
            outputs["s%d_o%d" % (s, o)] = np.asarray(result[spec["name"]])
    np.savez(os.path.join(work, "outputs.npz"), **outputs)
    with open(os.path.join(work, "info.json"), "w") as f:
        json.dump(info, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
