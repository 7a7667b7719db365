"""IPython magics: ``%ml_compute``, ``%ml_submit`` and ``%%ml_submit`` (load with ``%load_ext nbml``).

They only parse arguments and call the public API; every user mistake raises ``UsageError`` with the fix.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments, parse_argstring

from nbml.errors import NbmlError

DEFAULT_EXPERIMENT = "notebook"
DEFAULT_CELL_SCRIPT = "ml_submit_cell.py"
_WRAPPED = "_nbml_tracks_writefile"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (readable in any frontend and in logs)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _api(name: str) -> Any:
    """A public nbml name, or a UsageError saying which part of nbml is missing."""
    import nbml

    try:
        return getattr(nbml, name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"nbml.{name} is not available in this installation ({exc}); upgrade nbml or use a "
                         "target kind that is installed (`%ml_compute list` shows the ones you have).") from None


def _workspace() -> Any:
    try:
        return _api("Workspace").from_config()
    except NbmlError as exc:
        raise UsageError(str(exc)) from None


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show nbml's own errors (which already say how to fix them) without a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NbmlError as exc:
            raise UsageError(str(exc)) from None

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


class _SubParser(MagicArgumentParser):
    """A sub-command parser whose errors carry the usage line."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}\nUsage: {self.usage}")


def _sub_parser(prog: str, usage: str) -> MagicArgumentParser:
    return _SubParser(prog=prog, usage=usage, add_help=False)


def _split_script_args(line: str) -> tuple[str, list[str]]:
    """Split ``... -- a b`` into the magic's own part and the script's arguments."""
    try:
        tokens = shlex.split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"Could not parse {line!r}: {exc}. Check the quotes.") from None
    if "--" in tokens:
        i = tokens.index("--")
        return shlex.join(tokens[:i]), tokens[i + 1:]
    return line, []


def _environment(env_file: str | None) -> Any:
    if not env_file:
        return None
    path = Path(env_file).expanduser()
    if not path.is_file():
        raise UsageError(f"--env {env_file!r}: no such file. Pass a conda .yml or a pip requirements .txt file.")
    env_cls = _api("Environment")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem) or "notebook-env"
    if path.suffix in (".yml", ".yaml"):
        return env_cls.from_conda_specification(name, str(path))
    if path.suffix == ".txt":
        return env_cls.from_pip_requirements(name, str(path))
    raise UsageError(f"--env {env_file!r}: use a conda specification (.yml) or a pip requirements file (.txt).")


@magics_class
class NbmlMagics(Magics):
    """Run scripts and manage compute targets of the current workspace from a notebook."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.ip: Any = shell
        self.last_written: Path | None = None
        self.show_details = True

    # -- %%writefile tracking --------------------------------------------------------------------
    def track_writefile(self) -> None:
        """Wrap IPython's ``%%writefile`` so that ``%ml_submit`` knows the file it wrote last."""
        cell_magics = self.ip.magics_manager.magics["cell"]
        if getattr(cell_magics.get("writefile"), _WRAPPED, False):
            return
        # The registered entry may be a lazy loader that looks itself up again; wrap the real method.
        os_magics = self.ip.magics_manager.registry.get("OSMagics")
        original = getattr(os_magics, "writefile", None)
        if original is None:
            return

        def writefile(line: str, cell: str) -> Any:
            result = original(line, cell)
            try:
                args = parse_argstring(original, line)
                name = args.filename
                if re.match(r"^(\'.*\')|(\".*\")$", name):
                    name = name[1:-1]
                # After %reload_ext the registered instance is a new one: record on the current one.
                current = self.ip.magics_manager.registry.get("NbmlMagics", self)
                current.last_written = Path(os.path.expanduser(name)).resolve()
            except UsageError:
                pass
            return result

        writefile.__doc__ = original.__doc__
        setattr(writefile, _WRAPPED, True)
        writefile.parser = getattr(original, "parser", None)  # type: ignore[attr-defined]
        cell_magics["writefile"] = writefile

    def _last_writefile_in_history(self) -> Path | None:
        """The target of the newest ``%%writefile`` cell in this kernel's input history.

        Covers files written before ``%load_ext nbml`` (the wrapper only sees later ones). Variables in the
        file name (``$project_folder``) are expanded with their current values.
        """
        history = getattr(self.ip.history_manager, "input_hist_raw", None) or []
        for cell in reversed(history):
            first = cell.lstrip().split("\n", 1)[0].strip()
            if not first.startswith("%%writefile"):
                continue
            line = self.ip.var_expand(first[len("%%writefile"):].strip())
            try:
                tokens = [t for t in shlex.split(line) if t not in ("-a", "--append")]
            except ValueError:
                continue
            if tokens:
                return Path(os.path.expanduser(tokens[0])).resolve()
        return None

    # -- %ml_submit ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("script", nargs="?", help="Script to run; default: the file last written by %%writefile.")
    @argument("--compute", "-c", default=None, help="Compute target name (default: local).")
    @argument("--experiment", "-e", default=DEFAULT_EXPERIMENT, help="Experiment name.")
    @argument("--env", default=None, help="Environment file: conda .yml or pip requirements .txt.")
    @argument("--source-directory", "-s", default=None,
              help="Folder snapshotted with the script (default: the script's folder).")
    @argument("--warm", action="store_true",
              help="Run in a warm worker that consecutive runs on the target share (run_config.warm_worker).")
    @argument("--no-details", action="store_true", help="Don't show the RunDetails widget.")
    @line_magic
    @_user_errors
    def ml_submit(self, line: str) -> Any:
        """Submit a script as a run: ``%ml_submit [SCRIPT] [--compute NAME] [--experiment EXP] [--env FILE] [--warm] [-- ARGS]``.

        With no SCRIPT, submits the file most recently written by ``%%writefile`` in this kernel; its folder
        is the source directory. Returns the Run and shows its RunDetails.
        """
        own, script_args = _split_script_args(line)
        args = parse_argstring(self.ml_submit, own)
        last = self.last_written or self._last_writefile_in_history()
        if args.script:
            script_path = Path(os.path.expanduser(args.script)).resolve()
        elif last is not None:
            script_path = last
        else:
            raise UsageError("%ml_submit needs a script: write one with %%writefile train.py first, or pass it: "
                             "%ml_submit train.py")
        if not script_path.is_file():
            raise UsageError(f"Script {str(script_path)!r} does not exist; check the path or write it with "
                             f"%%writefile {script_path.name}.")
        return self._submit(script_path, script_args, args)

    @magic_arguments(name="ml_submit")
    @argument("script", nargs="?", default=DEFAULT_CELL_SCRIPT,
              help=f"File name to write the cell to (default: {DEFAULT_CELL_SCRIPT}).")
    @argument("--compute", "-c", default=None, help="Compute target name (default: local).")
    @argument("--experiment", "-e", default=DEFAULT_EXPERIMENT, help="Experiment name.")
    @argument("--env", default=None, help="Environment file: conda .yml or pip requirements .txt.")
    @argument("--source-directory", "-s", default=None,
              help="Project folder the cell is written to and snapshotted (default: the folder of the last "
                   "%%writefile, else the working directory).")
    @argument("--warm", action="store_true",
              help="Run in a warm worker that consecutive runs on the target share (run_config.warm_worker).")
    @argument("--no-details", action="store_true", help="Don't show the RunDetails widget.")
    @cell_magic("ml_submit")  # type: ignore[arg-type]
    @_user_errors
    def ml_submit_cell(self, line: str, cell: str) -> Any:
        """Write the cell to the project folder and submit it: ``%%ml_submit [SCRIPT] [options] [-- ARGS]``."""
        own, script_args = _split_script_args(line)
        args = parse_argstring(self.ml_submit_cell, own)
        if not cell.strip():
            raise UsageError("%%ml_submit needs the script's code in the cell body, below the magic line.")
        if args.source_directory:
            folder = Path(os.path.expanduser(args.source_directory)).resolve()
        elif (last := self.last_written or self._last_writefile_in_history()) is not None:
            folder = last.parent
        else:
            folder = Path.cwd()
        script_path = Path(os.path.expanduser(args.script))
        script_path = (script_path if script_path.is_absolute() else folder / script_path).resolve()
        script_path.parent.mkdir(parents=True, exist_ok=True)
        script_path.write_text(cell if cell.endswith("\n") else cell + "\n")
        args.source_directory = str(folder)
        return self._submit(script_path, script_args, args)

    def _submit(self, script_path: Path, script_args: list[str], args: argparse.Namespace) -> Any:
        source = Path(args.source_directory).resolve() if args.source_directory else script_path.parent
        if source not in script_path.parents:
            raise UsageError(f"{script_path} is not inside the source directory {source}; pass a folder that "
                             "holds the script with --source-directory.")
        ws = _workspace()
        config = _api("ScriptRunConfig")(
            source_directory=str(source), script=script_path.relative_to(source).as_posix(), arguments=script_args,
            compute_target=args.compute or "local", environment=_environment(args.env),
        )
        if getattr(args, "warm", False):
            config.run_config.warm_worker = True
        run = _api("Experiment")(ws, args.experiment).submit(config)
        print(f"Submitted {script_path.name} to {args.compute or 'local'} as run {run.id} "
              f"(experiment {args.experiment!r}).")
        if self.show_details and not args.no_details:
            _api("RunDetails")(run).show()
        return run

    # -- %ml_compute -----------------------------------------------------------------------------
    @magic_arguments()
    @argument("action", choices=["list", "show", "attach", "create", "detach"], help="What to do.")
    @argument("rest", nargs=argparse.REMAINDER, help="The action's arguments.")
    @line_magic
    @_user_errors
    def ml_compute(self, line: str) -> Any:
        """Manage compute targets.

        ``%ml_compute list | show NAME | attach ssh|spark NAME --address A --user U [--port P] [--key FILE]
        [--password] [--master M] [--spark-home DIR] | create cluster NAME [--min-nodes 0] [--max-nodes 4] [--idle-seconds S]
        [--scheduler ADDRESS] | detach NAME``
        """
        args = parse_argstring(self.ml_compute, line)
        return getattr(self, "_compute_" + args.action)(args.rest)

    def _compute_list(self, rest: list[str]) -> None:
        if rest:
            raise UsageError("`%ml_compute list` takes no arguments.")
        ws = _workspace()
        rows = [["local", "local", "Succeeded", "this machine"]]
        for rec in ws.store.list_compute():
            rows.append([rec["name"], rec["kind"], rec["state"], _describe(rec["kind"], rec["config"])])
        print(format_table(["Name", "Kind", "State", "Details"], rows))

    def _compute_show(self, rest: list[str]) -> None:
        parser = _sub_parser("%ml_compute show", "%ml_compute show NAME")
        parser.add_argument("name")
        ns = parser.parse_args(rest)
        target = _api("ComputeTarget")(_workspace(), ns.name)
        info = target.serialize()
        rows: list[list[Any]] = [["Name", info["name"]], ["Kind", info["kind"]], ["State", info["state"]]]
        rows += [[k, v] for k, v in sorted(info.get("config", {}).items()) if "password" not in k.lower()]
        try:
            status = target.get_status()
        except Exception as exc:  # an unreachable target still shows its record
            status = {"error": f"{type(exc).__name__}: {exc}"}
        rows += [[f"status.{k}", v] for k, v in sorted(status.items())]
        print(format_table(["Property", "Value"], rows))

    def _compute_attach(self, rest: list[str]) -> Any:
        usage = ("%ml_compute attach ssh NAME --address HOST --user USER [--port 22] [--key FILE] [--password] "
                 "[--python PATH] [--trust-host-key]\n       %ml_compute attach spark|hdinsight NAME (the same) "
                 "[--master yarn|spark://H:7077|local[N]] [--spark-home DIR] [--java-home DIR] [--spark-option ARG]")
        parser = _sub_parser("%ml_compute attach", usage)
        parser.add_argument("kind", choices=["ssh", "spark", "hdinsight"])
        parser.add_argument("name")
        parser.add_argument("--address", required=True)
        parser.add_argument("--user", required=True)
        parser.add_argument("--port", type=int, default=22)
        parser.add_argument("--key", default=None, help="Private key file (default: your SSH agent or ~/.ssh keys).")
        parser.add_argument("--password", action="store_true", help="Ask for a password (never stored).")
        parser.add_argument("--python", default=None, help="The host's Python (default python3).")
        parser.add_argument("--trust-host-key", action="store_true", help="Record an unknown host's key.")
        spark = parser.add_argument_group("Spark (spark, hdinsight)")
        spark.add_argument("--master", default=None, help="Spark master (default: the host's own).")
        spark.add_argument("--spark-home", default=None, help="Where Spark is on the host, if not in SPARK_HOME.")
        spark.add_argument("--java-home", default=None, help="The host's Java, if not in JAVA_HOME or on the PATH.")
        spark.add_argument("--spark-option", action="append", default=[], metavar="ARG",
                           help="An extra spark-submit argument (repeat it: --spark-option=--driver-memory "
                                "--spark-option=2g).")
        ns = parser.parse_args(rest)
        is_spark = ns.kind in ("spark", "hdinsight")
        if not is_spark and (ns.master or ns.spark_home or ns.java_home or ns.spark_option):
            raise UsageError("--master, --spark-home, --java-home and --spark-option are for Spark hosts: "
                             "`%ml_compute attach spark NAME ...`.")
        if ns.key and not Path(os.path.expanduser(ns.key)).is_file():
            raise UsageError(f"--key {ns.key!r}: no such file. Pass the private key's path, e.g. ~/.ssh/id_ed25519.")
        remote = _api("HDInsightCompute" if is_spark else "RemoteCompute")
        kwargs: dict[str, Any] = {"address": ns.address, "ssh_port": ns.port, "username": ns.user}
        if ns.python:
            kwargs["python"] = ns.python
        if ns.trust_host_key:
            kwargs["trust_host_key"] = True
        if is_spark:
            kwargs.update(master=ns.master, spark_home=ns.spark_home, java_home=ns.java_home,
                          spark_submit_options=list(ns.spark_option))
        if ns.key:
            kwargs["private_key_file"] = os.path.expanduser(ns.key)
        if ns.password:
            kwargs["password"] = getpass.getpass(f"Password for {ns.user}@{ns.address}: ")
        config = remote.attach_configuration(**kwargs)
        target = _api("ComputeTarget").attach(_workspace(), ns.name, config)
        what = f"Spark host (master {ns.master or 'the host default'})" if is_spark else "compute target"
        print(f"Attached {ns.user}@{ns.address}:{ns.port} as {what} {ns.name!r}.")
        return target

    def _compute_create(self, rest: list[str]) -> Any:
        usage = ("%ml_compute create cluster NAME [--min-nodes 0] [--max-nodes 4] [--idle-seconds 120] "
                 "[--scheduler tcp://HOST:8786]")
        parser = _sub_parser("%ml_compute create", usage)
        parser.add_argument("kind", choices=["cluster"])
        parser.add_argument("name")
        parser.add_argument("--min-nodes", type=int, default=0)
        parser.add_argument("--max-nodes", type=int, default=4)
        parser.add_argument("--idle-seconds", type=int, default=None)
        parser.add_argument("--scheduler", default=None, help="Address of an existing Dask scheduler.")
        ns = parser.parse_args(rest)
        if ns.min_nodes < 0 or ns.max_nodes < 1 or ns.min_nodes > ns.max_nodes:
            raise UsageError(f"--min-nodes {ns.min_nodes} / --max-nodes {ns.max_nodes}: need 0 <= min-nodes <= "
                             "max-nodes and max-nodes >= 1, e.g. --min-nodes 0 --max-nodes 4.")
        kwargs: dict[str, Any] = {"min_nodes": ns.min_nodes, "max_nodes": ns.max_nodes}
        if ns.idle_seconds is not None:
            kwargs["idle_seconds_before_scaledown"] = ns.idle_seconds
        if ns.scheduler:
            kwargs["scheduler_address"] = ns.scheduler
        config = _api("AmlCompute").provisioning_configuration(**kwargs)
        target = _api("ComputeTarget").create(_workspace(), ns.name, config)
        print(f"Created cluster {ns.name!r} ({ns.min_nodes} to {ns.max_nodes} nodes).")
        return target

    def _compute_detach(self, rest: list[str]) -> None:
        parser = _sub_parser("%ml_compute detach", "%ml_compute detach NAME")
        parser.add_argument("name")
        ns = parser.parse_args(rest)
        if ns.name == "local":
            raise UsageError("'local' is built in and can't be detached.")
        _api("ComputeTarget")(_workspace(), ns.name).detach()
        print(f"Detached compute target {ns.name!r} (the machine itself is untouched).")


def _describe(kind: str, config: dict[str, Any]) -> str:
    if kind in ("ssh", "spark"):
        where = f"{config.get('username', '?')}@{config.get('address', '?')}:{config.get('ssh_port', 22)}"
        return where + (f", master {config.get('master') or 'host default'}" if kind == "spark" else "")
    if kind == "dask":
        where = config.get("scheduler_address") or "local cluster"
        return f"{where}, {config.get('min_nodes', 0)}-{config.get('max_nodes', '?')} nodes"
    if kind == "docker":
        return str(config.get("base_url") or config.get("address") or "local engine")
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if "password" not in k.lower())[:80]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and start tracking ``%%writefile``."""
    magics = NbmlMagics(ipython)
    ipython.register_magics(magics)
    magics.track_writefile()
