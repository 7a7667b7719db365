"""Environments: conda specs mapped to pip, with what couldn't be mapped said clearly."""

from __future__ import annotations

import pytest

from nbml import CondaDependencies, Environment, UserErrorException


def test_conda_spec_maps_to_pip_and_names_what_it_skipped(tmp_path):
    spec = tmp_path / "env.yml"
    spec.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.6.2\n  - scikit-learn\n  - numpy=1.26\n"
                    "  - pandas>=2.0\n  - cudatoolkit=11.8\n  - conda-forge::lightgbm=4.1.0=py_0\n  - pytorch\n"
                    "  - pip:\n    - azureml-defaults\n    - requests==2.31.0\n")
    env = Environment.from_conda_specification("e", spec)
    reqs, notes = env.requirements()
    assert reqs == ["scikit-learn", "numpy==1.26.*", "pandas>=2.0", "lightgbm==4.1.0", "torch", "requests==2.31.0"]
    assert any("cudatoolkit" in n for n in notes) and any("azureml-defaults" in n for n in notes)
    assert env.python.conda_dependencies.python_version == "3.6.2"


def test_spec_hash_depends_only_on_what_decides_the_build():
    a = Environment("a")
    a.python.conda_dependencies = CondaDependencies.create(pip_packages=["x", "y"])
    b = Environment("b")
    b.python.conda_dependencies = CondaDependencies.create(pip_packages=["y", "x"])
    assert a.spec().hash == b.spec().hash
    b.python.conda_dependencies.add_pip_package("z")
    assert a.spec().hash != b.spec().hash
    assert Environment("empty").spec().user_managed  # nothing to install: the submitting interpreter


def test_register_and_get_versions(ws):
    env = Environment("team-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["scikit-learn"])
    assert env.register(ws).version == 1
    assert Environment("team-env").register(ws).version == 2
    assert Environment.get(ws, "team-env", version=1).requirements()[0] == ["scikit-learn"]
    with pytest.raises(UserErrorException, match="No environment 'nope'"):
        Environment.get(ws, "nope")


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(UserErrorException, match="not found"):
        Environment.from_conda_specification("x", tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies: {oops")
    with pytest.raises(UserErrorException, match="isn't valid YAML"):
        Environment.from_conda_specification("x", bad)


def test_serialize_round_trip():
    deps = CondaDependencies.create(pip_packages=["a"], conda_packages=["b"], python_version="3.11")
    again = CondaDependencies.from_yaml(deps.serialize_to_string())
    assert (again.pip_packages, again.conda_packages, again.python_version) == (["a"], ["b"], "3.11")
