"""The core install: a fresh venv with only nbml's core dependencies runs a script, and each feature left out
says which extra brings it.

The venv is real (uv, its cache kept between runs: a few seconds warm); nbml itself comes from this checkout
through a .pth file, so what is tested is the dependency list in pyproject.toml, not a wheel build
(benchmarks/install.py builds and installs the real thing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uv_binary() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(found).exists(), "uv is needed (it is in the test extra: pip install -e '.[test]')"
    return found


def core_dependencies() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Results of tests/install/core_probe.py run in a fresh core-only venv."""
    tmp = tmp_path_factory.mktemp("core-venv")
    venv = tmp / "venv"
    uv = uv_binary()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env.get('PATH', '')}"  # envbuild finds uv, as a user's shell would
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *core_dependencies()], check=True,
                   env=env, timeout=600)
    purelib = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      text=True, env=env).strip()
    Path(purelib, "nbml-checkout.pth").write_text(str(ROOT) + "\n")
    env["NBML_HOME"] = str(tmp / "nbml-home")
    env.pop("NBML_WORKSPACE", None)
    work = tmp / "work"
    work.mkdir()
    proc = subprocess.run([str(python), str(ROOT / "tests" / "install" / "core_probe.py"), str(work)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def hint(result: dict[str, Any], extra: str) -> str:
    assert not result["ok"], f"expected the {extra} hint, but it worked"
    assert result["type"] == "MissingExtraError", result.get("trace")
    assert f"pip install 'nbml[{extra}]'" in result["error"]
    return str(result["error"])


def test_the_venv_holds_only_the_core(core: dict[str, Any]) -> None:
    installed = core["installed"]["value"]
    assert installed["numpy"] and installed["psutil"] and installed["ipywidgets"]
    left_out = [n for n in ("asyncssh", "docker", "distributed", "optuna", "lightgbm", "xgboost", "shap", "sklearn",
                            "pandas", "scipy", "jupyterlab") if installed[n]]
    assert left_out == []
    assert core["import"]["value"].startswith(str(ROOT))


def test_a_local_script_run_completes_on_the_core_install(core: dict[str, Any]) -> None:
    result = core["local_run"]
    assert result["ok"], result.get("trace")
    assert result["value"]["status"] == "Completed"
    assert result["value"]["metrics"] == {"accuracy": 0.9}


def test_the_widget_and_magics_import_on_the_core_install(core: dict[str, Any]) -> None:
    assert core["widget_and_magics"]["ok"], core["widget_and_magics"].get("trace")


def test_automl_submit_names_the_automl_extra_and_creates_no_run(core: dict[str, Any]) -> None:
    message = hint(core["automl_submit"], "automl")
    assert "lightgbm" in message and "scikit-learn" in message
    assert core["automl_runs_created"] == 0


def test_remote_compute_names_the_ssh_extra(core: dict[str, Any]) -> None:
    assert "asyncssh" in hint(core["remote_compute"], "ssh")


def test_docker_attach_names_the_docker_extra_and_attaches_nothing(core: dict[str, Any]) -> None:
    hint(core["docker_attach"], "docker")
    assert core["docker_targets"] == []


def test_dask_cluster_names_the_dask_extra(core: dict[str, Any]) -> None:
    hint(core["dask_create"], "dask")


def test_bayesian_sampling_names_the_hyperdrive_extra(core: dict[str, Any]) -> None:
    assert "optuna" in hint(core["bayesian"], "hyperdrive")


def test_tabular_data_names_the_data_extra(core: dict[str, Any]) -> None:
    assert "pandas" in hint(core["tabular"], "data")
