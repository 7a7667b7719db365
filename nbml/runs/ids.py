"""Run ids in the SDK's shape: ``<experiment>_<unix time>_<8 hex>``; children ``<parent>_<n>``."""

from __future__ import annotations

import re
import time
import uuid


def new_run_id(experiment: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", experiment)[:60]
    return f"{safe}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def new_child_id(parent_id: str, n: int) -> str:
    return f"{parent_id}_{n}"
