"""Built-in plugin: the generic ONNX Runtime backend (target ``host`` and any ARM/x86 Linux board).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
"""

from deploykit.hookspecs import hookimpl

from deploykit_onnxruntime.backend import OnnxRuntimeBackend

__version__ = "0.1.0"


@hookimpl
def register_backends(register):
    register(OnnxRuntimeBackend)
