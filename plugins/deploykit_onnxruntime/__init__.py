"""Built-in plugin: the generic ONNX Runtime backend (target ``host`` and any ARM/x86 Linux board).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
"""

from deploykit.backend import LazyBackend
from deploykit.hookspecs import hookimpl

__version__ = "0.1.0"

# what `deploykit doctor` says a build on this machine does without the device
HOST_NOTE = "builds, runs and verifies here (ONNX Runtime on this CPU)"


@hookimpl
def register_backends(register):
    # by path: the backend module imports onnx_ir, which `deploykit targets` and `doctor` never need
    register(LazyBackend("onnxruntime", "deploykit_onnxruntime.backend:OnnxRuntimeBackend",
                         host_modules=("onnxruntime",), host_note=HOST_NOTE))
