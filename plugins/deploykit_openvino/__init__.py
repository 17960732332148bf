"""Built-in plugin: the OpenVINO backend (targets ``intel-cpu``, ``intel-npu`` and ``ncs2``).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
``openvino`` is imported lazily, inside the build steps.
"""

from deploykit.backend import LazyBackend
from deploykit.hookspecs import hookimpl

__version__ = "0.1.0"

# what `deploykit doctor` says a build on this machine does without the device
HOST_NOTE = ("builds OpenVINO IR and verifies it on the OpenVINO CPU plugin; NCS2 and NPU bundles run on "
             "their device")


@hookimpl
def register_backends(register):
    # by path: the backend module imports onnx_ir, which `deploykit targets` and `doctor` never need
    register(LazyBackend("openvino", "deploykit_openvino.backend:OpenVinoBackend",
                         host_modules=("openvino",), host_note=HOST_NOTE))
