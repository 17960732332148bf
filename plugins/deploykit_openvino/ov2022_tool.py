"""Runs INSIDE a Python <= 3.10 environment with ``openvino==2022.3.1`` (and, for ``mo``,
``openvino-dev==2022.3.1``); started by :mod:`deploykit_openvino.legacy` as a subprocess.

Standalone on purpose: imports only the 2022.3 API, numpy and the standard library.

    python ov2022_tool.py run  MODEL.xml IN.npz OUT.npz     # read + compile on CPU + infer
    python ov2022_tool.py mo   MODEL.onnx OUT.xml           # convert with 2022.3 Model Optimizer (FP16)
"""

import json
import sys

import numpy as np


def _run(xml, inputs_npz, outputs_npz):
    from openvino.runtime import Core, get_version

    core = Core()
    model = core.read_model(xml)
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "1",
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    feeds = np.load(inputs_npz)
    n_in = len(compiled.inputs)
    samples = sorted({k.split("/")[0] for k in feeds.files})
    out = {}
    for s in samples:
        request.infer({i: feeds["%s/%d" % (s, i)] for i in range(n_in)})
        for j in range(len(compiled.outputs)):
            out["%s/%d" % (s, j)] = np.array(request.get_output_tensor(j).data)
    np.savez(outputs_npz, **out)
    print(json.dumps({"version": get_version(), "devices": list(core.available_devices),
                      "layers": len(model.get_ordered_ops())}))


def _mo(onnx_path, xml_out):
    from openvino.runtime import serialize
    from openvino.tools.mo import convert_model

    model = convert_model(onnx_path, compress_to_fp16=True)
    serialize(model, xml_out, xml_out[: -len(".xml")] + ".bin")
    print(json.dumps({"converter": "openvino-dev mo"}))


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "run":
        _run(*args)
    elif cmd == "mo":
        _mo(*args)
    else:
        raise SystemExit("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
