"""Docker support: toolchain images to build in, device images to run bundles in.

``toolchain``  per-backend build images (Dockerfile rendered from ``templates/``) and the exact
               ``docker build`` / ``docker run`` command lines of ``deploykit build --docker``
``device``     ``docker buildx build`` of a bundle's own Dockerfile (``deploykit package --docker``)
``engine``     docker or podman (choice, command forms), what works here, runs commands; one-line errors
``needs``      what each target still needs here, and doctor's engine line
``bases``      local stand-ins for the base images, from the Debian registry (``deploykit images bootstrap``)
``imagecheck`` builds an image for real and checks what runs in it (tests/images, benchmarks/images)
"""

from deploykit.docker.engine import DockerStatus, docker_status
from deploykit.docker.toolchain import TOOLCHAIN_IMAGES, ToolchainImage, toolchain_for_backend

__all__ = ["DockerStatus", "TOOLCHAIN_IMAGES", "ToolchainImage", "docker_status", "toolchain_for_backend"]
