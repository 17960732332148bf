"""Built-in plugin: NVIDIA TensorRT backend for Jetson targets (jetson-nano, jetson-orin-nano).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
"""

from deploykit.hookspecs import hookimpl

from deploykit_tensorrt.backend import TensorRtBackend

__version__ = "0.1.0"


@hookimpl
def register_backends(register):
    register(TensorRtBackend)
