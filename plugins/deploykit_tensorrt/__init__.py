"""Built-in plugin: NVIDIA TensorRT backend for Jetson targets (jetson-nano, jetson-orin-nano).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
"""

from deploykit.backend import LazyBackend
from deploykit.hookspecs import hookimpl

__version__ = "0.1.0"

# what `deploykit doctor` says a build on this machine does without the device
HOST_NOTE = ("builds the ONNX / QDQ ONNX and the engine script and verifies with the runner's ONNX Runtime "
             "fallback on this CPU; TensorRT engines are built and run only on the Jetson (no tensorrt "
             "needed here)")


@hookimpl
def register_backends(register):
    # by path: the backend module imports onnx_ir, which `deploykit targets` and `doctor` never need
    register(LazyBackend("tensorrt", "deploykit_tensorrt.backend:TensorRtBackend",
                         host_modules=("onnxruntime",), host_note=HOST_NOTE))
