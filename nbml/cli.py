"""``nbml`` command line: runs and compute targets outside notebooks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from nbml.runs.status import TERMINAL


def _ws(args: argparse.Namespace) -> Any:
    from nbml.workspace import Workspace

    return Workspace(path=args.workspace) if args.workspace else Workspace.from_config()


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _duration(rec: dict[str, Any]) -> str:
    if not rec.get("started_at"):
        return ""
    secs = (rec.get("ended_at") or time.time()) - rec["started_at"]
    return f"{secs:.1f}s" if secs < 120 else f"{secs / 60:.1f}m"


def cmd_runs_list(args: argparse.Namespace) -> int:
    from nbml.runs.recovery import recover_all

    ws = _ws(args)
    recover_all(ws.store)  # a run whose supervisor died gets a new one before it is listed
    recs = ws.store.list_runs(experiment=args.experiment, status=args.status, top_level=not args.all, limit=args.limit)
    rows = [[r["run_id"], r["experiment"], r["status"], r["compute_target"], time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"])), _duration(r)] for r in recs]
    print(_table(rows, ["RUN ID", "EXPERIMENT", "STATUS", "TARGET", "CREATED", "DURATION"]) if rows else "No runs.")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    ws = _ws(args)
    run = ws.get_run(args.run_id)
    details = run.get_details()
    details["metrics"] = run.get_metrics()
    details["files"] = run.get_file_names()
    print(json.dumps(details, indent=2, default=str))
    return 0


def cmd_runs_logs(args: argparse.Namespace) -> int:
    from nbml.runs.follow import follow_logs

    ws = _ws(args)
    run = ws.get_run(args.run_id)
    if args.rank is not None:  # one rank of a distributed run
        from nbml.compute._ranks import rank_log

        size = int(run.get_properties().get("nbml.process_count") or 1)
        if not 0 <= args.rank < size:
            print(f"{run.id} has ranks 0 to {size - 1}; --rank {args.rank} is not one of them.", file=sys.stderr)
            return 2
        args.file = rank_log(args.rank)
    if args.follow:
        follow_logs(run, sys.stdout, driver_log=args.file)
    else:
        path = run.run_dir / args.file
        if not path.exists():
            print(f"No {args.file} for {run.id} yet. Files: {', '.join(run.get_file_names()) or 'none'}", file=sys.stderr)
            return 1
        sys.stdout.write(path.read_text(errors="replace"))
    return 0


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    ws = _ws(args)
    run = ws.get_run(args.run_id)
    run.cancel()
    deadline = time.monotonic() + args.wait
    while args.wait and run.get_status() not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"{run.id}: {run.get_status()}")
    return 0


def cmd_runs_recover(args: argparse.Namespace) -> int:
    """Give every active run whose supervisor is gone a new one (done on its own by any reader too)."""
    from nbml.runs.recovery import recover_all

    ws = _ws(args)
    done = ws.recovered_runs + recover_all(ws.store)  # opening the workspace already recovers what it finds
    for run_id, action in done:
        print(f"{run_id}: {'a new supervisor adopts it' if action == 'adopted' else 'ended Failed (see its error)'}")
    if not done:
        print("Every active run has a live supervisor; nothing to recover.")
    return 0


def cmd_compute_list(args: argparse.Namespace) -> int:
    ws = _ws(args)
    rows = []
    for name, target in ws.compute_targets.items():
        cfg = target.config
        where = cfg.get("address") or cfg.get("scheduler_address") or cfg.get("docker_host") or ""
        rows.append([name, target.target_kind, target.provisioning_state, str(where)])
    print(_table(rows, ["NAME", "KIND", "STATE", "ADDRESS"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nbml", description="nbml runs and compute targets.")
    p.add_argument("--workspace", "-w", help="workspace folder (default: found from the working directory)")
    sub = p.add_subparsers(dest="group", required=True)
    runs = sub.add_parser("runs", help="list, show, follow and cancel runs").add_subparsers(dest="cmd", required=True)
    ls = runs.add_parser("list", help="list runs, newest first")
    ls.add_argument("--experiment", "-e")
    ls.add_argument("--status", "-s")
    ls.add_argument("--all", action="store_true", help="include child runs")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(fn=cmd_runs_list)
    show = runs.add_parser("show", help="details, metrics and files of a run")
    show.add_argument("run_id")
    show.set_defaults(fn=cmd_runs_show)
    logs = runs.add_parser("logs", help="print a run's output")
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the run ends")
    logs.add_argument("--file", default="nbml-logs/driver_log.txt")
    logs.add_argument("--rank", type=int, default=None,
                      help="one rank's output of a distributed run (rank 0's is the default output)")
    logs.set_defaults(fn=cmd_runs_logs)
    cancel = runs.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id")
    cancel.add_argument("--wait", type=float, default=10.0, help="seconds to wait for it to stop")
    cancel.set_defaults(fn=cmd_runs_cancel)
    recover = runs.add_parser("recover", help="adopt runs whose supervisor is gone (after a crash or reboot)")
    recover.set_defaults(fn=cmd_runs_recover)
    compute = sub.add_parser("compute", help="compute targets").add_subparsers(dest="cmd", required=True)
    cl = compute.add_parser("list", help="list compute targets")
    cl.set_defaults(fn=cmd_compute_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from nbml.errors import NbmlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except NbmlError as exc:
        print(f"nbml: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
