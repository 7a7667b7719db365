"""Stream a run's output to a text stream while it runs (wait_for_completion(show_output=True), CLI logs -f)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from nbml.compute.base import DRIVER_LOG
from nbml.runs.status import TERMINAL

if TYPE_CHECKING:
    from nbml.runs.run import Run

PREPARE_LOG = "nbml-logs/prepare_log.txt"


def idle(seconds: float) -> None:
    """Sleep in a blocking wait, first updating this kernel's live RunDetails widgets (they are patched on the
    thread that runs the kernel's event loop, which this wait blocks)."""
    widgets = sys.modules.get("nbml.widgets.run_details")
    if widgets is not None:
        widgets.pump()
    time.sleep(seconds)


def follow_logs(run: Run, out: TextIO, deadline: float | None = None, poll: float = 0.2,
                driver_log: str = DRIVER_LOG) -> None:
    """Print the environment build log, then the driver log (or one rank's), as they grow, until the run ends."""
    offsets = {PREPARE_LOG: 0, driver_log: 0}
    current = None
    while True:
        status = run.get_status()
        for rel in (PREPARE_LOG, driver_log):
            path = run.run_dir / rel
            if not path.exists():
                continue
            with open(path, "rb") as fh:
                fh.seek(offsets[rel])
                data = fh.read()
            # Print complete lines only, except at the end, so lines never break in the middle.
            cut = len(data) if status in TERMINAL else data.rfind(b"\n") + 1
            if cut > 0:
                if current != rel:
                    out.write(f"\nStreaming {rel}\n{'=' * (10 + len(rel))}\n\n")
                    current = rel
                out.write(data[:cut].decode(errors="replace"))
                out.flush()
                offsets[rel] += cut
        if status in TERMINAL:
            return
        if deadline is not None and time.monotonic() > deadline:
            return
        idle(poll)
