"""Run ``deploykit`` CLI from another source tree (``run.py --deploykit-src DIR``).

    python _dk_launch.py SRC build MODEL ...

SRC is a checkout/export of the repository (``deploykit/``, ``plugins/``, ``targets/``), e.g. the
last commit for a baseline: ``git archive HEAD deploykit plugins targets | tar -x -C SRC``.
Puts SRC's packages ahead of the installed (editable) ones, including the profiles plugin, whose
package ``deploykit_profiles`` lives in ``targets/``.
"""

import importlib.util
import runpy
import sys
from pathlib import Path

src = Path(sys.argv[1]).resolve()
sys.argv = ["deploykit", *sys.argv[2:]]
sys.path[:0] = [str(src), str(src / "plugins")]
init = src / "targets" / "__init__.py"
if init.exists():
    spec = importlib.util.spec_from_file_location("deploykit_profiles", init,
                                                  submodule_search_locations=[str(init.parent)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["deploykit_profiles"] = mod
    spec.loader.exec_module(mod)
runpy.run_module("deploykit.cli.app", run_name="__main__", alter_sys=True)
