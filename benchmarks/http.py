"""HTTP node benchmark, by the name the project's docs use: ``python benchmarks/http.py``.

The benchmark itself is ``node_http.py`` (same options, see ``--help``). This file only runs it
with the benchmarks directory taken off ``sys.path``: a script named ``http.py`` would
otherwise shadow the standard library's ``http`` package for everything it imports.
"""

import os
import runpy
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
runpy.run_path(os.path.join(here, "node_http.py"), run_name="__main__")
