"""Runs INSIDE a Python <= 3.10 environment with ``openvino==2022.3.1``; started by
:mod:`deploykit_openvino.legacy` as a subprocess.

Standalone on purpose: imports only the 2022.3 API, numpy and the standard library.

    python ov2022_tool.py run  MODEL.xml IN.npz OUT.npz     # read + compile on CPU + infer
    python ov2022_tool.py mo   MODEL.onnx OUT.xml           # convert with OpenVINO 2022.3

``mo`` uses the Model Optimizer when ``openvino-dev==2022.3.1`` is installed; otherwise the same
conversion the Model Optimizer does for ONNX with the runtime wheel alone: 2022.3's ONNX frontend
(``Core.read_model``, which emits opset <= 10 layers) and its MOC transformations. The deploykit
side compresses the weights to FP16 when it saves the final IR.
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
    from openvino.runtime import Core, serialize

    try:
        from openvino.tools.mo import convert_model
    except ImportError:  # the runtime wheel only (no openvino-dev)
        from openvino._offline_transformations import apply_moc_transformations

        model = Core().read_model(onnx_path)
        apply_moc_transformations(model, False)
        converter = "openvino 2022.3 ONNX frontend"
    else:
        model = convert_model(onnx_path, compress_to_fp16=True)
        converter = "openvino-dev 2022.3 mo"
    serialize(model, xml_out, xml_out[: -len(".xml")] + ".bin")
    print(json.dumps({"converter": converter}))


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
