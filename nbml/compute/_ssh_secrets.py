"""SSH passwords and key passphrases: held in process memory only, never written anywhere.

Where a secret comes from, first match wins:

1. given in this process (``RemoteCompute.attach(password=...)``) and kept in memory for its lifetime;
2. the environment: ``NBML_SSH_PASSWORD_<TARGET>`` / ``NBML_SSH_KEY_PASSPHRASE_<TARGET>`` (target name in
   upper case, ``-`` as ``_``), then ``NBML_SSH_PASSWORD`` / ``NBML_SSH_KEY_PASSPHRASE``;
3. a prompt (getpass) when a person is at a terminal or a notebook.

A run's supervisor is a separate process: `child_environ()` gives the variables that carry this process's
in-memory secrets to it (its environment only, never a file), and `adopt_environ()` takes them back out of
``os.environ`` there so that the training processes it starts don't inherit them.
"""

from __future__ import annotations

import getpass
import json
import os
import sys

PASSWORD = "password"
PASSPHRASE = "passphrase"
_ENV_BASE = {PASSWORD: "NBML_SSH_PASSWORD", PASSPHRASE: "NBML_SSH_KEY_PASSPHRASE"}
_CARRY = "NBML_SSH_SECRETS"
_memory: dict[tuple[str, str], str] = {}


def _suffix(target: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in target).upper()


def remember(target: str, kind: str, value: str | None) -> None:
    """Keep a secret for `target` in this process's memory."""
    if value:
        _memory[(target, kind)] = value


def forget(target: str) -> None:
    for key in [k for k in _memory if k[0] == target]:
        del _memory[key]


def lookup(target: str, kind: str) -> str | None:
    """The secret from memory or the environment, without prompting."""
    adopt_environ()
    if (target, kind) in _memory:
        return _memory[(target, kind)]
    base = _ENV_BASE[kind]
    return os.environ.get(f"{base}_{_suffix(target)}") or os.environ.get(base) or None


def can_prompt() -> bool:
    if "ipykernel" in sys.modules and getattr(getpass.getpass, "__module__", "getpass") != "getpass":
        return True  # a notebook kernel answers getpass through the frontend
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def obtain(target: str, kind: str, prompt: str) -> str | None:
    """The secret from memory, the environment or a prompt (then remembered); None if none can be had."""
    value = lookup(target, kind)
    if value is None and can_prompt():
        value = getpass.getpass(prompt) or None
        remember(target, kind, value)
    return value


def env_names(target: str, kind: str) -> str:
    base = _ENV_BASE[kind]
    return f"{base}_{_suffix(target)} or {base}"


def child_environ() -> dict[str, str]:
    """Environment variables that hand this process's in-memory secrets to a child (the supervisor)."""
    if not _memory:
        return {}
    return {_CARRY: json.dumps([[t, k, v] for (t, k), v in _memory.items()])}


def adopt_environ() -> None:
    """Move secrets handed over by a parent from os.environ into memory (so grandchildren don't see them)."""
    carried = os.environ.pop(_CARRY, None)
    if carried:
        for target, kind, value in json.loads(carried):
            _memory.setdefault((target, kind), value)
