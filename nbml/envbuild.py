"""Build and cache virtual environments on this machine, once per environment hash."""

from __future__ import annotations

import fcntl
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from nbml._progress import Progress
from nbml.compute.base import EnvSpec, LogFn
from nbml.errors import EnvironmentBuildError

READY = ".nbml-ready"


def _parent_site_dirs() -> list[str]:
    """Site folders of the submitting interpreter, layered under a built env so its packages stay usable."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # pragma: no cover - old virtualenv
        pass
    seen: list[str] = []
    for d in dirs:
        if d and os.path.isdir(d) and d not in seen:
            seen.append(d)
    return seen


# Installer output lines that mean one more package (pip: "Collecting x", uv: " + x==1.0").
_PACKAGE_LINE = ("Collecting ", " + ")


def _run(cmd: list[str], log: LogFn, env: dict[str, str] | None = None,
         progress: Progress | None = None) -> tuple[int, str]:
    log("$ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        log(line.rstrip("\n"))
        if progress is not None:
            progress.note(line.strip()[:60], step=line.startswith(_PACKAGE_LINE))
    return proc.wait(), "\n".join(lines[-40:])


def ensure_local_env(envs_root: Path, spec: EnvSpec, log: LogFn) -> str:
    """Return the python executable for `spec`, building its venv under envs_root/<hash> if needed.

    User-managed specs use the given interpreter (or this one). Built envs are layered over this
    interpreter's site-packages (a .pth file), so packages already installed here are reused, not downloaded
    again; only what is missing or pinned differently is installed. Uses `uv` when on PATH, else venv + pip.
    A failed build removes its folder, so nothing half-built is ever reused.
    """
    if spec.user_managed or not spec.pip:
        python = spec.interpreter_path or sys.executable
        if not (os.path.isfile(python) and os.access(python, os.X_OK)) and shutil.which(python) is None:
            raise EnvironmentBuildError(f"interpreter_path {python!r} doesn't exist or isn't executable; point "
                                        "python.interpreter_path at a Python on this machine.")
        return python
    envs_root.mkdir(parents=True, exist_ok=True)
    env_dir = envs_root / spec.hash
    python = str(env_dir / "bin" / "python")
    if (env_dir / READY).exists():
        return python
    with open(envs_root / f"{spec.hash}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same env: wait for it
        if (env_dir / READY).exists():
            return python
        if env_dir.exists():
            shutil.rmtree(env_dir)
        try:
            _build(env_dir, spec, log)
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        (env_dir / READY).write_text(" ".join(spec.pip))
    return python


def _build(env_dir: Path, spec: EnvSpec, log: LogFn) -> None:
    uv = shutil.which("uv") or (str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").exists()
                                else None)
    log(f"Building environment {spec.name!r} ({spec.hash}) with {'uv' if uv else 'venv + pip'}: {' '.join(spec.pip)}")
    if not uv and subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        raise EnvironmentBuildError(
            f"Building environment {spec.name!r} needs uv or pip, and this Python ({sys.executable}) has neither: "
            "install uv (pip install uv, or see docs.astral.sh/uv) or pip (python -m ensurepip), then submit again."
        )
    if uv:
        code, tail = _run([uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)], log)
    else:
        code, tail = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], log)
    if code != 0:
        raise EnvironmentBuildError(f"Could not create the virtual environment {env_dir}:\n{tail}")
    python = env_dir / "bin" / "python"
    purelib = subprocess.check_output([str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                      text=True).strip()
    Path(purelib, "_nbml_parent.pth").write_text("\n".join(_parent_site_dirs()) + "\n")
    if uv:
        cmd = [uv, "pip", "install", "--python", str(python), *spec.pip]
    else:
        cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check", *spec.pip]
    with Progress(f"Building environment {spec.name}", unit="packages") as progress:
        code, tail = _run(cmd, log, progress=progress)
    if code != 0:
        raise EnvironmentBuildError(
            f"Installing the packages of environment {spec.name!r} failed ({' '.join(spec.pip)}). The installer said:\n"
            f"{tail}\nFix the package name or version in the environment's dependencies and submit again."
        )
