import sys

from nbml.cli import main

sys.exit(main())
