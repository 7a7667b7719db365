"""``python -m nbml.supervisor WORKSPACE RUN_ID`` (see nbml.runs.supervisor)."""

import sys

from nbml.runs.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
