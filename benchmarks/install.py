"""Install time and size of nbml's core and of nbml[all], each into a fresh venv with a cold package cache.

    python benchmarks/install.py [--wheel dist/nbml-0.1.0-py3-none-any.whl] [--installer uv|pip] [--warm]

Builds the wheel first unless --wheel names one (its build time, the labextension included, is printed
apart: it is the same for every set of extras). Each install gets a new, empty cache folder, so every
package is downloaded as on a fresh machine; --warm installs again from the cache just filled. Sizes are
the venv's files (uv copies out of its cache rather than hard-linking, so the venv stands alone).
Goals (issue 15): core under 60 s and 250 MB; before the extras, everything took 300 s and 1.6 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        sys.exit("uv is needed: pip install uv")
    return found


def folder_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                total += os.stat(full).st_size
    return total


def biggest(venv: Path, count: int = 5) -> list[tuple[str, int]]:
    site = next(venv.glob("lib/python*/site-packages"))
    sizes = [(p.name, folder_size(p) if p.is_dir() else p.stat().st_size) for p in site.iterdir()]
    return sorted(sizes, key=lambda e: -e[1])[:count]


def build_wheel(out: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    subprocess.run([uv(), "build", "--wheel", "--quiet", "-o", str(out), str(ROOT)], check=True)
    return next(out.glob("nbml-*.whl")), time.perf_counter() - start


def install(wheel: Path, extras: str, work: Path, installer: str, cache: Path) -> tuple[float, int, Path]:
    """(seconds, venv bytes, venv) of installing `wheel[extras]` into a new venv using `cache`."""
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir=work))
    requirement = f"{wheel}[{extras}]" if extras else str(wheel)
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "PIP_CACHE_DIR": str(cache), "UV_LINK_MODE": "copy"}
    start = time.perf_counter()
    if installer == "uv":
        subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
        subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), requirement],
                       check=True, env=env)
    else:  # what the README's quick start does: python -m venv, then pip install
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", requirement], check=True, env=env)
    seconds = time.perf_counter() - start
    return seconds, folder_size(venv), venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="an nbml wheel already built (default: build one now)")
    parser.add_argument("--installer", choices=["uv", "pip"], default="uv")
    parser.add_argument("--warm", action="store_true", help="also install again from the filled cache")
    parser.add_argument("--only", choices=["core", "all"], help="measure one of the two")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbml-install-bench-") as tmp:
        work = Path(tmp)
        if args.wheel:
            wheel = args.wheel.resolve()
        else:
            wheel, seconds = build_wheel(work / "dist")
            print(f"wheel build (labextension included): {seconds:6.1f} s  {wheel.stat().st_size / 1e6:.2f} MB")
        print(f"installer: {args.installer}, Python {sys.version.split()[0]}, cold cache for each line")
        for label, extras in (("core", ""), ("nbml[all]", "all")):
            if args.only and args.only != label.replace("nbml[all]", "all"):
                continue
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
            seconds, size, venv = install(wheel, extras, work, args.installer, cache)
            goal = "  (goals: under 60 s and 250 MB)" if label == "core" else ""
            print(f"{label:10} cold: {seconds:6.1f} s  {size / 1e6:7.1f} MB{goal}")
            print("           biggest: " + ", ".join(f"{name} {n / 1e6:.0f} MB" for name, n in biggest(venv)))
            shutil.rmtree(venv)
            if args.warm:
                seconds, size, venv = install(wheel, extras, work, args.installer, cache)
                print(f"{label:10} warm: {seconds:6.1f} s  {size / 1e6:7.1f} MB")
                shutil.rmtree(venv)
            shutil.rmtree(cache)


if __name__ == "__main__":
    main()
