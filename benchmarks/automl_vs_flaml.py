"""nbml AutoML against FLAML: the old name of ``benchmarks/automl_vs_peers.py`` with ``--systems nbml,flaml``.

Everything (datasets, splits, scoring, the peers' own virtual environments, the report) lives in
automl_vs_peers.py; this name keeps working and compares with FLAML only unless ``--systems`` says otherwise.
``--flaml-python`` still names an interpreter that has FLAML instead of the cached environment.

Run: ``python benchmarks/automl_vs_flaml.py [--budgets 30 120] [--splits 3] [--datasets ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from automl_vs_peers import main

if __name__ == "__main__":
    sys.exit(main(default_systems="nbml,flaml"))
