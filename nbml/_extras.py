"""Optional features and the extra that installs each: one helper every import site of an optional package uses.

The core install (store, runs, the local target, magics, the widget, the server extension and the sidebar)
needs only what ``nbml`` imports at start. AutoML, SSH, Docker and Dask targets, Bayesian HyperDrive and
tabular data bring their libraries with an extra (``pip install 'nbml[automl]'``); using one of them without
it raises :class:`MissingExtraError`, which names the extra to install.
"""

from __future__ import annotations

import importlib.util

from nbml.errors import UserErrorException

# What each extra is for, in the words of the error message.
FEATURES = {
    "automl": "AutoML",
    "hyperdrive": "Bayesian sampling in HyperDrive",
    "ssh": "SSH compute targets (RemoteCompute)",
    "docker": "Docker compute targets (DockerCompute, Docker web services)",
    "dask": "Dask clusters (AmlCompute)",
    "data": "tabular datasets and SFTP datastores",
    "lab": "the JupyterLab sidebar and run pages",
}
# Import name -> distribution name, where they differ (the message names what pip installs).
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml"}


class MissingExtraError(UserErrorException, ImportError):
    """A feature's optional packages are not installed; the message says which extra installs them."""

    def __init__(self, extra: str, missing: list[str]) -> None:
        self.extra = extra
        self.missing = missing
        names = ", ".join(_DISTRIBUTIONS.get(m, m) for m in missing)
        super().__init__(
            f"{FEATURES.get(extra, extra)}: not installed ({names} missing); the core install of nbml leaves "
            f"this feature out. Install its extra: pip install 'nbml[{extra}]' (or 'nbml[all]' for everything)."
        )


def missing_modules(*modules: str) -> list[str]:
    """The top-level packages among `modules` that can't be imported here (found without importing them)."""
    absent = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(module)
    return absent


def require(extra: str, *modules: str) -> None:
    """Raise MissingExtraError naming `extra` unless every package in `modules` is installed.

    Cheap (nothing is imported), so a feature checks at its entry point, before it creates anything.
    """
    absent = missing_modules(*modules)
    if absent:
        raise MissingExtraError(extra, absent)


def missing_extra(extra: str, exc: ImportError) -> ImportError:
    """The error to raise for a failed ``import`` of an optional package: the hint when the package is absent.

    A package that is installed but fails to import (a broken dependency inside it) keeps its own error.
    Use as ``except ImportError as exc: raise missing_extra("ssh", exc) from exc``.
    """
    name = (exc.name or "").split(".")[0]
    if name and missing_modules(name):
        return MissingExtraError(extra, [name])
    return exc


# The packages each feature imports, checked up front by its entry point.
AUTOML_MODULES = ("sklearn", "pandas", "scipy", "joblib", "optuna", "lightgbm", "xgboost", "shap")
# Compute target kind -> its extra and the packages its backend imports.
TARGET_EXTRAS = {"ssh": ("ssh", "asyncssh"), "docker": ("docker", "docker"), "containerinstance": ("docker", "docker"),
                 "dask": ("dask", "dask", "distributed")}
