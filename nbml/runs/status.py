"""Re-export of the run states, which live in the leaf module :mod:`nbml.status` (the store imports them)."""

from nbml.status import *  # noqa: F403
from nbml.status import ACTIVE, ORDER, TERMINAL, is_terminal  # noqa: F401
