"""Built-in target profiles, one TOML per device, registered like any plugin's profiles."""

from pathlib import Path

from deploykit.hookspecs import hookimpl
from deploykit.targets import load_profiles_from_dir

__version__ = "0.1.0"


@hookimpl
def register_targets(register):
    for profile in load_profiles_from_dir(Path(__file__).parent):
        register(profile)
