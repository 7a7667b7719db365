"""Acceptance run over the Azure ML SDK v1 sample notebooks in ../shared/azure-samples (never copied here).

For each notebook: copy its folder to a temp dir, apply only the mechanical edits of RULES (below), run it
with nbclient in a real kernel (per-cell timeout, continuing after errors, NBML_HOME in the temp dir), and
print per notebook: code cells, passed, failed, Azure-only failures (``AzureOnlyError``, matched by name),
and the first failing cell's error line; then every failing cell. Exit code 1 if any cell failed with
anything but AzureOnlyError, 0 otherwise (also when the samples folder is absent: nothing to check).

    python scripts/acceptance.py [--jobs 2] [--cell-timeout 600] [--only SUBSTRING] [--json out.json]
    python scripts/acceptance.py --rules      # print the edit table

The edit rules are mechanical (a pattern, no understanding of the notebook); each belongs to one category:

``imports``  the port itself: the word ``azureml`` as a module path becomes ``nbml``.
``auth``     ``Workspace.create/get(subscription...)`` becomes ``Workspace.from_config()``.
``compute``  compute set-up: AmlCompute clusters are capped at 2 nodes (a local Dask cluster here);
             RemoteCompute and HDInsightCompute attach to the test sshd when NBML_SSH_* say where it is
             (HDInsight: NBML_SPARK_PYTHON, the host's Python with pyspark), else use local.
``data``     internet downloads become a data set a package ships, written to CSV (see SUBSTITUTES), or a
             generated table of the same columns (Azure Open Datasets classes: OPEN_DATASETS).
``placeholder`` a value the notebook tells the reader to replace with one an earlier cell printed becomes the
             one this workspace has (PLACEHOLDERS).
``cap``      AutoML iterations capped at AUTOML_CAP (the SDK default is 1000; the notebooks ask for up to 20),
             so a run over 17 notebooks fits a laptop.
``drift``    2019 library APIs that today's scikit-learn / numpy / pandas removed; not nbml's concern, so
             fixed here to keep the count about nbml.

Side files of a notebook's folder (``*.py`` scripts, notebooks run as entry scripts) get the ``imports`` and
``drift`` rules, and the few rules marked ``side`` (a script's own download or GPU call).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

AUTOML_CAP = 5
MAX_NODES = 2
SUBSTITUTE_MODULE = "nbml_substitutes"
#: The torchvision MNIST stand-in, written beside a script that imports it (TORCHVISION_MNIST).
MNIST_MODULE = "nbml_mnist"


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    what: str
    apply: Callable[[str], str]
    #: Also applied to the notebook's side files (scripts it submits), not only to its code cells.
    side: bool = False


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str], flags: int = re.MULTILINE) -> Callable[[str], str]:
    rx = re.compile(pattern, flags)
    return lambda src: rx.sub(repl, src)


def _call_span(src: str, start: int) -> int:
    """Index just past the parenthesised argument list that opens at or after `start`."""
    depth, i = 0, src.index("(", start)
    while i < len(src):
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        if depth == 0:
            return i + 1
        i += 1
    return len(src)


def _workspace_auth(src: str) -> str:
    out, pos = [], 0
    for m in re.finditer(r"\bWorkspace(\.create|\.get)?\s*\(", src):
        end = _call_span(src, m.start())
        args = src[m.end():end - 1]
        if "subscription_id" not in args and m.group(1) is None:
            continue
        out += [src[pos:m.start()], "Workspace.from_config()"]
        pos = end
    return "".join(out) + src[pos:]


def _cap_iterations(src: str) -> str:
    src = re.sub(r"(\biterations\s*=\s*)(\d+)", lambda m: m.group(1) + str(min(int(m.group(2)), AUTOML_CAP)), src)
    src = re.sub(r"""(["']iterations["']\s*:\s*)(\d+)""",
                 lambda m: m.group(1) + str(min(int(m.group(2)), AUTOML_CAP)), src)
    # No iterations at all means the SDK's default of 1000: ask for the cap instead.
    m = re.search(r"\bAutoMLConfig\s*\(", src)
    if m and "iterations" not in src and "**" not in src[m.start():_call_span(src, m.start())]:
        src = src[:m.end()] + f"iterations={AUTOML_CAP}, " + src[m.end():]
    return src


def _amlcompute_nodes(src: str) -> str:
    if "AmlCompute.provisioning_configuration" not in src:
        return src
    return re.sub(r"\bmax_nodes\s*=\s*[^,)\n]+", f"max_nodes={MAX_NODES}", src)


def _remote_compute(src: str) -> str:
    if "RemoteCompute.attach_configuration" not in src:
        return src
    host = os.environ.get("NBML_SSH_HOST")
    if host:
        # The kernel gets AZUREML_DSVM_USERNAME/ADDRESS (see kernel_environ); port and key are literals here.
        src = re.sub(r"\bssh_port\s*=\s*\d+", f"ssh_port={int(os.environ.get('NBML_SSH_PORT', '22'))}", src)
        key = os.environ.get("NBML_SSH_KEY")
        if key:
            src = re.sub(r"\bprivate_key_file\s*=\s*(['\"])[^'\"]*\1", f"private_key_file={key!r}", src)
        return src
    # No sshd to reach: the attach becomes the local target.
    m = re.search(r"(\w+)\s*=\s*ComputeTarget\.attach\s*\(", src)
    if m:
        src = src[:m.start()] + f'{m.group(1)} = ComputeTarget(ws, "local")' + src[_call_span(src, m.start()):]
    return src


def _hdinsight_compute(src: str) -> str:
    """HDInsight attach: the test sshd's host runs Spark (NBML_SPARK_PYTHON: its Python with pyspark), else local."""
    m = re.search(r"\bHDInsightCompute\.attach_configuration\s*\(", src)
    if not m:
        return src
    if os.environ.get("NBML_SSH_HOST"):
        # The kernel gets hdiservername/hdiusername (see kernel_environ), which the notebook reads.
        end = _call_span(src, m.start())
        call = re.sub(r"\bssh_port\s*=\s*\d+", f"ssh_port={int(os.environ.get('NBML_SSH_PORT', '22'))}",
                      src[m.start():end])
        key = os.environ.get("NBML_SSH_KEY")
        if key:  # the test sshd takes its key, not the notebook's password
            call = re.sub(r"\bpassword\s*=\s*os\.environ\.get\([^()]*\)|\bpassword\s*=\s*(['\"])[^'\"]*\1",
                          f"private_key_file={key!r}", call)
        extra = {"python": os.environ.get("NBML_SPARK_PYTHON"), "master": os.environ.get("NBML_SPARK_MASTER"),
                 "known_hosts": os.environ.get("NBML_SSH_KNOWN_HOSTS")}
        added = "".join(f", {k}={v!r}" for k, v in extra.items() if v)
        return src[:m.start()] + call[:-1] + added + ")" + src[end:]
    # No sshd to reach: the attach becomes the local target, where pyspark runs the script in local mode.
    a = re.search(r"(\w+)\s*=\s*ComputeTarget\.attach\s*\(", src)
    if a:
        src = src[:a.start()] + f'{a.group(1)} = ComputeTarget(ws, "local")' + src[_call_span(src, a.start()):]
    return src


def _wait_after_widget(src: str) -> str:
    """A cell that submits a run and shows its widget: the reader watched the run finish before the next
    cell (which reads its metrics); a kernel runs on at once, so the cell waits for it."""
    for m in list(re.finditer(r"^(\s*)RunDetails\((\w+)\)\.show\(\)[^\n]*$", src, re.M)):
        run = m.group(2)
        if re.search(rf"\b{run}\s*=\s*[\w.]+\.submit\(", src[:m.start()]) and \
                not re.search(rf"\b{run}\.wait_for_completion\(", src):
            src = src.replace(m.group(0), f"{m.group(0)}\n{m.group(1)}{run}.wait_for_completion(raise_on_error=False)", 1)
    return src


def _no_gpu() -> bool:
    """This machine has no NVIDIA GPU (the acceptance run's case; the GPU rules then fire)."""
    import glob

    return not glob.glob("/dev/nvidia[0-9]*")


def _nccl_to_gloo(src: str) -> str:
    """No GPU here: NCCL (GPU-only) -> Gloo, the backend torch.distributed has on CPUs."""
    if not _no_gpu() or not re.search(r"\bNccl\b|(['\"])nccl\1", src):
        return src
    return re.sub(r"(['\"])nccl\1", r"\1gloo\1", re.sub(r"\bNccl\b", "Gloo", src))


def _cuda_to_cpu(src: str) -> str:
    """No GPU here: a script's `.cuda()` (which raises without one) -> `.cpu()`."""
    return re.sub(r"\.cuda\(\)", ".cpu()", src) if _no_gpu() else src


def _torchvision_mnist(src: str) -> str:
    """torchvision (not installable beside the CPU torch here; MNIST is a download) -> MNIST_MODULE."""
    src = re.sub(r"^(\s*)from torchvision import ((?:datasets|transforms)(?:\s*,\s*(?:datasets|transforms))*)\s*$",
                 rf"\1from {MNIST_MODULE} import \2", src, flags=re.M)
    for m in list(re.finditer(r"^[ \t]*import torchvision\.\w+ as (\w+)[ \t]*\n?", src, re.M)):
        if not re.search(rf"\b{m.group(1)}\b", src.replace(m.group(0), "", 1)):  # imported, never used
            src = src.replace(m.group(0), "", 1)
    return src


#: Side scripts (file names) of the notebook being prepared that import MNIST_MODULE (set by _prepare).
_MNIST_IMPORTERS: set[str] = set()


def _copy_mnist_module(src: str) -> str:
    """A cell copying a script that imports the stand-in into the submitted folder copies the stand-in too."""
    def repl(m: re.Match[str]) -> str:
        if m.group(3) not in _MNIST_IMPORTERS:
            return m.group(0)
        return f"{m.group(0)}\n{m.group(1)}{m.group(2)}({MNIST_MODULE + '.py'!r}, {m.group(4)})"

    return re.sub(r"^([ \t]*)(shutil\.copy2?|shutil\.copyfile)\((?:'|\")([\w.-]+\.py)(?:'|\")\s*,\s*([^()\n]+?)\)[ \t]*$",
                  repl, src, flags=re.M)


def _drop_unused_pkg_resources(src: str) -> str:
    rx = re.compile(r"^[ \t]*import pkg_resources[ \t]*\n?", re.M)
    if len(re.findall(r"\bpkg_resources\b", src)) != len(rx.findall(src)):
        return src  # used: the failure is real
    return rx.sub("", src)


RULES: list[Rule] = [
    Rule("module-paths", "imports", "`azureml` as a module path (import lines, `azureml.core.VERSION`) -> `nbml`",
         _sub(r"\bazureml(?=\.[A-Za-z_])|(?<=\bimport )azureml\b|(?<=\bfrom )azureml\b", "nbml")),
    Rule("workspace-auth", "auth", "`Workspace.create/get(...)`, `Workspace(subscription_id=...)` -> "
         "`Workspace.from_config()`", _workspace_auth),
    Rule("amlcompute-nodes", "compute", f"AmlCompute provisioning: `max_nodes=...` -> `max_nodes={MAX_NODES}` "
         "(a local Dask cluster)", _amlcompute_nodes),
    Rule("remote-compute", "compute", "RemoteCompute attach: the test sshd (NBML_SSH_HOST/USER/PORT/KEY) when set, "
         'else `ComputeTarget(ws, "local")`', _remote_compute),
    Rule("hdinsight-compute", "compute", "HDInsight attach: the test sshd's host as the Spark host (NBML_SSH_HOST/"
         "PORT/KEY, NBML_SPARK_PYTHON/MASTER, NBML_SSH_KNOWN_HOSTS) when set, else `ComputeTarget(ws, \"local\")`",
         _hdinsight_compute),
    Rule("download-urls", "data", "a URL of SUBSTITUTES -> the local CSV written from a shipped data set",
         lambda src: _replace_urls(src)),
    Rule("download-scripts", "data", "a URL of FETCHED (a script fetched with requests) -> the same file name on a "
         "loopback server of this run, holding the substitute", lambda src: _replace_fetched(src)),
    Rule("open-datasets", "data", "`from azureml.opendatasets import NoaaIsdWeather` (Azure Open Datasets, a download) "
         f"-> `from {SUBSTITUTE_MODULE} import NoaaIsdWeather`, a generated table of the same columns (OPEN_DATASETS)",
         lambda src: _replace_open_datasets(src)),
    Rule("torchvision-mnist", "data", "`from torchvision import datasets, transforms` (MNIST is a download, and "
         f"torchvision cannot be installed beside the CPU torch) -> `from {MNIST_MODULE} import ...`, scikit-learn's "
         "digits as 28x28 MNIST; a torchvision import the script never uses -> dropped", _torchvision_mnist, side=True),
    Rule("mnist-travels", "data", f"a cell copying a script that imports {MNIST_MODULE} into the folder it submits "
         f"(`shutil.copy('x.py', folder)`) -> also copies {MNIST_MODULE}.py there", _copy_mnist_module),
    Rule("nccl-on-cpu", "compute", "no GPU on this machine: `Nccl` -> `Gloo`, `'nccl'` -> `'gloo'` (NCCL runs on "
         "NVIDIA GPUs only)", _nccl_to_gloo),
    Rule("cuda-on-cpu", "compute", "no GPU on this machine: a script's `.cuda()` -> `.cpu()`", _cuda_to_cpu,
         side=True),
    Rule("placeholders", "placeholder", "a value the notebook says to replace with one from an earlier cell's output "
         "(`# Replace this with ...`) -> the one this workspace has (PLACEHOLDERS)", lambda src: _fill_placeholders(src)),
    Rule("hub-images", "data", "a Docker Hub image of HUB_IMAGES -> the engine's local base image "
         "(NBML_DOCKER_BASE_IMAGE, else NBML_DOCKER_IMAGE)", lambda src: _replace_hub_images(src)),
    Rule("automl-iterations", "cap", f"AutoML `iterations` capped at {AUTOML_CAP} (added when the notebook relies "
         "on the default of 1000)", _cap_iterations),
    Rule("widget-wait", "pace", "a cell that submits a run and shows `RunDetails(run)`: "
         "`run.wait_for_completion(raise_on_error=False)` after the widget (the reader waited for it)", _wait_after_widget),
    Rule("sklearn-externals-joblib", "drift", "`from sklearn.externals import joblib` (removed in scikit-learn "
         "0.23) -> `import joblib`", _sub(r"^(\s*)from sklearn\.externals import joblib\b", r"\1import joblib")),
    Rule("numpy-bool", "drift", "`np.bool` (removed in numpy 1.24) -> `bool`", _sub(r"\bnp\.bool\b(?!_)", "bool")),
    Rule("pandas-sort-index-axis", "drift", "`.sort_index(1)` (axis keyword-only since pandas 2.0) -> "
         "`.sort_index(axis=1)`", _sub(r"\.sort_index\((\d)\)", r".sort_index(axis=\1)")),
    Rule("pkg-resources", "drift", "`import pkg_resources` that the cell never uses (setuptools removed the module "
         "in 2025) -> dropped", _drop_unused_pkg_resources),
    Rule("pandas-ml", "drift", "`from pandas_ml import ConfusionMatrix` (pandas_ml 0.6.1 no longer imports: scikit-learn "
         f"0.23 removed a function it imports) -> `from {SUBSTITUTE_MODULE} import ConfusionMatrix`, a stand-in on "
         "pandas.crosstab with the same print and plot (LIBRARY_STANDINS)", lambda src: _replace_standins(src)),
    Rule("torch-view-of-slice", "drift", "`x[:k].view(-1)` -> `x[:k].reshape(-1)` (elementwise ops of today's torch "
         "keep a transposed input's strides, so `view` of a slice of their result raises; `reshape` gives the same "
         "values)", _sub(r"(\b\w+\[:\w+\])\.view\(-1\)", r"\1.reshape(-1)")),
    Rule("pandas-colwidth", "drift", "`pd.set_option('display.max_colwidth', -1)` (an error in pandas 2) -> None",
         _sub(r"""(['"]display\.max_colwidth['"]\s*,\s*)-1""", r"\1None")),
]


# -- data substitutes -------------------------------------------------------------------------------
def _wine_as_crime(part: str) -> Callable[[Path], None]:
    """Chicago crime sample (label 'Primary Type', a leaky 'FBI Code' column the notebook drops) ->
    scikit-learn's wine data with those two columns: a 3-class table of the same use."""

    def write(path: Path) -> None:
        from sklearn.datasets import load_wine
        from sklearn.model_selection import train_test_split

        frame = load_wine(as_frame=True).frame
        frame["Primary Type"] = frame.pop("target").map({0: "THEFT", 1: "BATTERY", 2: "NARCOTICS"})
        frame["FBI Code"] = frame["Primary Type"].map({"THEFT": "06", "BATTERY": "08B", "NARCOTICS": "18"})
        train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["Primary Type"])
        (train if part == "train" else test).to_csv(path, index=False)

    return write


#: URL -> (file name under the notebook's `nbml-substitutes/` folder, writer).
SUBSTITUTES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "https://dprepdata.blob.core.windows.net/demo/crime0-random.csv": ("crime0-random.csv", _wine_as_crime("train")),
    "https://dprepdata.blob.core.windows.net/demo/crime0-test.csv": ("crime0-test.csv", _wine_as_crime("test")),
}
SUBSTITUTE_DIR = "nbml-substitutes"


_MNIST_SUMMARIES = '''"""Stand-in for TensorFlow's mnist_with_summaries.py (written by nbml's acceptance run): the same
arguments and the same TensorBoard scalars (train/test cross_entropy and accuracy under --log_dir), from a
softmax regression on scikit-learn's 8x8 digits in numpy, written with TensorBoard's own summary writer."""
import argparse
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorboard.summary import Writer

parser = argparse.ArgumentParser()
parser.add_argument("--max_steps", type=int, default=200)
parser.add_argument("--learning_rate", type=float, default=0.5)
parser.add_argument("--dropout", type=float, default=0.9)
parser.add_argument("--data_dir", default=os.environ.get("TEST_TMPDIR", "/tmp"))
parser.add_argument("--log_dir", default="./logs")
args, _ = parser.parse_known_args()

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
W = np.zeros((X.shape[1], 10))
b = np.zeros(10)
train = Writer(os.path.join(args.log_dir, "train"))
test = Writer(os.path.join(args.log_dir, "test"))


def forward(data):
    z = data @ W + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


for step in range(args.max_steps):
    p = forward(X_train)
    onehot = np.eye(10)[y_train]
    loss = -np.mean(np.sum(onehot * np.log(p + 1e-12), axis=1))
    grad = (p - onehot) / len(X_train)
    W -= args.learning_rate * X_train.T @ grad
    b -= args.learning_rate * grad.sum(axis=0)
    train.add_scalar("cross_entropy", float(loss), step)
    train.add_scalar("accuracy", float(np.mean(p.argmax(axis=1) == y_train)), step)
    if step % 10 == 0:
        acc = float(np.mean(forward(X_test).argmax(axis=1) == y_test))
        test.add_scalar("accuracy", acc, step)
        print(f"Accuracy at step {step}: {acc}", flush=True)
train.close()
test.close()
'''


_MNIST_STANDIN = '''"""Stand-in for torchvision's MNIST (written by nbml's acceptance run: MNIST is a download, and torchvision
cannot be installed beside the CPU torch the run uses). scikit-learn's 8x8 digits (1,797 images, 10 classes),
each scaled 3x and padded to MNIST's 28x28 grey uint8, behind the part of torchvision's API the sample uses:
datasets.MNIST(root, train, download, transform) and transforms.Compose/ToTensor/Normalize."""
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.datasets import load_digits


class MNIST(torch.utils.data.Dataset):
    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        digits = load_digits()
        images = np.kron(digits.images, np.ones((3, 3)))  # 8x8 -> 24x24
        images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # -> 28x28, MNIST's border
        images = (images * (255.0 / 16.0)).round().astype(np.uint8)
        cut = int(len(images) * 0.8)
        part = slice(0, cut) if train else slice(cut, None)
        self.data, self.targets = torch.from_numpy(images[part]), torch.from_numpy(digits.target[part]).long()
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = self.data[index].numpy(), int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class ToTensor:
    def __call__(self, img):  # HxW uint8 -> 1xHxW float in [0, 1], as torchvision's
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, tensor):
        return (tensor - self.mean) / self.std


datasets = SimpleNamespace(MNIST=MNIST)
transforms = SimpleNamespace(Compose=Compose, ToTensor=ToTensor, Normalize=Normalize)
'''


def _write_text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


#: URL -> (file name, writer): scripts a notebook fetches with an HTTP client (requests.get(...).text),
#: served from a loopback HTTP server of the acceptance run, so the notebook's fetching code runs as written.
FETCHED: dict[str, tuple[str, Callable[[Path], None]]] = {
    "https://raw.githubusercontent.com/tensorflow/tensorflow/r1.8/tensorflow/examples/tutorials/mnist/"
    "mnist_with_summaries.py": ("mnist_with_summaries.py", _write_text(_MNIST_SUMMARIES)),
}
_SERVED: dict[str, str] = {}


def served_base() -> str:
    """The loopback server's base URL (started by serve_fetched(); a placeholder port before that)."""
    return _SERVED.get("base", "http://127.0.0.1:8731")


def _replace_fetched(src: str) -> str:
    for url, (name, _write) in FETCHED.items():
        src = src.replace(url, f"{served_base()}/{name}")
    return src


def serve_fetched(folder: Path) -> Callable[[], None]:
    """Write FETCHED's files into `folder` and serve it on 127.0.0.1 from a thread; returns the stop function."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder.mkdir(parents=True, exist_ok=True)
    for name, write in FETCHED.values():
        write(folder / name)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _SERVED["base"] = f"http://127.0.0.1:{server.server_address[1]}"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        _SERVED.pop("base", None)

    return stop


#: Docker Hub images the notebooks name: pulling is a download too; the engine's local base stands in.
HUB_IMAGES = ("continuumio/miniconda3",)


def local_base_image() -> str:
    return os.environ.get("NBML_DOCKER_BASE_IMAGE") or os.environ.get("NBML_DOCKER_IMAGE") or "nbml-test-base:bookworm"


def _replace_urls(src: str) -> str:
    for url, (name, _write) in SUBSTITUTES.items():
        src = src.replace(url, f"{SUBSTITUTE_DIR}/{name}")
    return src


def _replace_hub_images(src: str) -> str:
    for image in HUB_IMAGES:
        src = re.sub(rf"""(['"]){re.escape(image)}(:[\w.-]+)?\1""", repr(local_base_image()), src)
    return src


#: Azure Open Datasets classes the notebooks download from: generated stand-ins with the same columns,
#: written as SUBSTITUTE_MODULE beside the notebook (its kernel's working folder, so the import finds it).
NOAA_ISD_WEATHER = '''
class NoaaIsdWeather:
    """Stand-in for azureml.opendatasets.NoaaIsdWeather (NOAA's Integrated Surface Database, downloaded from
    Azure Open Datasets): hourly readings of four stations (three in Florida) with the ISD columns, generated
    from a seed per month, so every run of the notebook sees the same table."""

    STATIONS = [("722016", "12826", "FLORIDA KEYS MARATHON AIRPORT", 24.73, -81.05, 2.0),
                ("722020", "12839", "MIAMI INTERNATIONAL AIRPORT FLORIDA", 25.79, -80.32, 8.8),
                ("747750", "13884", "NORTHWEST FLORIDA BEACHES AIRPORT", 30.36, -85.80, 21.0),
                ("727930", "24233", "SEATTLE-TACOMA INTERNATIONAL AIRPORT", 47.44, -122.31, 131.0)]

    def __init__(self, start_date=None, end_date=None, cols=None, enable_telemetry=False):
        self.start_date, self.end_date, self.cols = start_date, end_date, cols

    def to_pandas_dataframe(self):
        import numpy as np
        import pandas as pd

        hours = pd.date_range(self.start_date, self.end_date, freq="h", inclusive="left")
        rng = np.random.default_rng(int(hours[0].strftime("%Y%m")) if len(hours) else 0)
        frames = []
        for usaf, wban, name, lat, lon, elevation in self.STATIONS:
            n = len(hours)
            day = hours.day_of_year.to_numpy()
            seasonal = 24 + 6 * np.sin((day - 110) / 365 * 2 * np.pi) - (lat - 25) * 0.6
            frames.append(pd.DataFrame({
                "usaf": usaf, "wban": wban, "datetime": hours, "latitude": lat, "longitude": lon,
                "elevation": elevation, "windAngle": rng.integers(0, 360, n).astype(float),
                "windSpeed": rng.gamma(2.0, 2.0, n).round(1),
                "temperature": (seasonal + 4 * np.sin((hours.hour.to_numpy() - 9) / 24 * 2 * np.pi)
                                + rng.normal(0, 1.5, n)).round(1),
                "seaLvlPressure": rng.normal(1015, 4, n).round(1), "cloudCoverage": None,
                "presentWeatherIndicator": np.nan, "pastWeatherIndicator": np.nan,
                "precipTime": 1.0, "precipDepth": np.where(rng.random(n) < 0.1, rng.gamma(1.5, 3.0, n), 0.0).round(1),
                "snowDepth": np.where(lat > 40, rng.integers(0, 3, n), 0).astype(float),
                "stationName": name, "countryOrRegion": "US", "p_k": usaf + "-" + wban,
                "year": hours.year, "day": hours.day, "version": 1.0, "month": hours.month,
            }))
        frame = pd.concat(frames, ignore_index=True)
        return frame[self.cols] if self.cols else frame
'''
OPEN_DATASETS: dict[str, str] = {"NoaaIsdWeather": NOAA_ISD_WEATHER}

#: Classes of 2019 libraries that no longer import with today's scikit-learn (drift): stand-ins written into
#: SUBSTITUTE_MODULE like OPEN_DATASETS; key: (module the notebook imports from, class name).
PANDAS_ML_CONFUSION_MATRIX = '''
class ConfusionMatrix:
    """Stand-in for pandas_ml.ConfusionMatrix (pandas_ml 0.6.1 fails to import with scikit-learn >= 0.23): the
    counts of actual (rows) against predicted (columns) labels, printed as a table and plotted as a heat map."""

    def __init__(self, y_true, y_pred, labels=None):
        import numpy as np
        import pandas as pd

        actual = pd.Series(np.asarray(y_true), name="Actual")
        predicted = pd.Series(np.asarray(y_pred), name="Predicted")
        labels = sorted(set(actual) | set(predicted)) if labels is None else list(labels)
        self._df = pd.crosstab(actual, predicted).reindex(index=labels, columns=labels, fill_value=0)

    def to_dataframe(self):
        return self._df.copy()

    def __str__(self):
        return self._df.to_string()

    __repr__ = __str__

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        ax.imshow(self._df.to_numpy(), cmap="Blues")
        ax.set_xticks(range(len(self._df.columns)), [str(c) for c in self._df.columns], rotation=45)
        ax.set_yticks(range(len(self._df.index)), [str(i) for i in self._df.index])
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Actual")
        return ax
'''
LIBRARY_STANDINS: dict[tuple[str, str], str] = {("pandas_ml", "ConfusionMatrix"): PANDAS_ML_CONFUSION_MATRIX}

#: Values a notebook tells the reader to replace with one an earlier cell printed -> the one this workspace
#: has. exploring-previous-runs names 'automl-local-classification', the classification sample's experiment
#: in its earlier versions; the sample here calls it 'automl-classification' (and runs first: PREREQUISITES).
PLACEHOLDERS = {"'automl-local-classification'": "'automl-classification'"}


def _replace_open_datasets(src: str) -> str:
    def repl(m: re.Match[str]) -> str:
        names = [n.strip() for n in m.group(2).split(",")]
        return f"{m.group(1)}from {SUBSTITUTE_MODULE} import {m.group(2)}" if all(n in OPEN_DATASETS for n in names) \
            else m.group(0)

    return re.sub(r"^(\s*)from (?:azureml|nbml)\.opendatasets import ([\w, ]+)$", repl, src, flags=re.M)


def _replace_standins(src: str) -> str:
    def repl(m: re.Match[str]) -> str:
        names = [n.strip() for n in m.group(3).split(",")]
        return f"{m.group(1)}from {SUBSTITUTE_MODULE} import {m.group(3)}" \
            if all((m.group(2), n) in LIBRARY_STANDINS for n in names) else m.group(0)

    return re.sub(r"^(\s*)from (\w+) import ([\w, ]+)$", repl, src, flags=re.M)


def _fill_placeholders(src: str) -> str:
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if re.search(r"#\s*Replace (this )?with", line, re.I):
            for old, new in PLACEHOLDERS.items():
                lines[i] = lines[i].replace(old, new)
    return "\n".join(lines)


def write_substitutes(folder: Path, sources: list[str]) -> list[str]:
    """Write the substitutes the notebook's sources ask for into `folder`; returns the URLs and Open Datasets
    classes replaced."""
    used = [url for url in SUBSTITUTES if any(url in s for s in sources)]
    for url in used:
        name, write = SUBSTITUTES[url]
        (folder / SUBSTITUTE_DIR).mkdir(exist_ok=True)
        write(folder / SUBSTITUTE_DIR / name)
    classes = [name for name in OPEN_DATASETS
               if any(re.search(rf"opendatasets import [\w, ]*\b{name}\b", s) for s in sources)]
    standins = [key for key in LIBRARY_STANDINS
                if any(re.search(rf"\bfrom {key[0]} import [\w, ]*\b{key[1]}\b", s) for s in sources)]
    if classes or standins:
        body = "\n".join([OPEN_DATASETS[name] for name in classes] + [LIBRARY_STANDINS[k] for k in standins])
        (folder / f"{SUBSTITUTE_MODULE}.py").write_text(
            f'"""Stand-ins for Azure Open Datasets and 2019 libraries, written by nbml\'s acceptance run."""\n{body}')
    return used + classes + [f"{m}.{n}" for m, n in standins]


SIDE_CATEGORIES = ("imports", "drift")


def apply_rules(src: str, categories: tuple[str, ...] | None = None, side: bool = False) -> tuple[str, list[str]]:
    """`src` after every rule (of `categories`, default all; `side`: a side file's rules, SIDE_CATEGORIES and
    the rules marked side); returns (new source, names of rules that changed it)."""
    fired = []
    for rule in RULES:
        if side and not (rule.side or rule.category in SIDE_CATEGORIES):
            continue
        if categories is not None and rule.category not in categories:
            continue
        new = rule.apply(src)
        if new != src:
            fired.append(rule.name)
            src = new
    return src, fired


def kernel_environ(work: Path | None = None) -> dict[str, str]:
    """Variables the notebooks read for their compute set-up, pointed at what this machine has."""
    env = {"AML_COMPUTE_CLUSTER_MAX_NODES": str(MAX_NODES), "MPLBACKEND": "Agg"}
    if os.environ.get("NBML_SSH_HOST"):
        env["AZUREML_DSVM_ADDRESS"] = os.environ["NBML_SSH_HOST"]
        env["AZUREML_DSVM_USERNAME"] = os.environ.get("NBML_SSH_USER", os.environ.get("USER", "root"))
        env["hdiservername"], env["hdiusername"] = env["AZUREML_DSVM_ADDRESS"], env["AZUREML_DSVM_USERNAME"]
    if work is not None:
        # Nobody presses a key in this kernel: `!more file` (manage-runs) would wait forever on its pty.
        shim = work / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "more").write_text('#!/bin/sh\nexec cat "$@"\n')
        (shim / "more").chmod(0o755)
        env["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    # The engine's local base image stands in for DEFAULT_CPU_IMAGE (nothing can be pulled offline).
    env["NBML_DOCKER_BASE_IMAGE"] = local_base_image()
    return env


def describe() -> str:
    lines = ["| rule | category | edit |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.category} | {r.what} |" for r in RULES]
    lines += ["", "Data substitutes:"] + [f"- {url} -> {SUBSTITUTE_DIR}/{name}" for url, (name, _w) in SUBSTITUTES.items()]
    lines += [f"- {url} -> a loopback server's /{name}" for url, (name, _w) in FETCHED.items()]
    lines += [f"- azureml.opendatasets.{name} -> {SUBSTITUTE_MODULE}.{name} (generated)" for name in OPEN_DATASETS]
    lines += [f"- {m}.{n} -> {SUBSTITUTE_MODULE}.{n} (stand-in)" for m, n in LIBRARY_STANDINS]
    lines += [f"- torchvision.datasets.MNIST -> {MNIST_MODULE}.datasets.MNIST (scikit-learn's digits at 28x28)"]
    lines += [f"- placeholder {old} -> {new}" for old, new in PLACEHOLDERS.items()]
    return "\n".join(lines)


# -- running ----------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
AZURE_ONLY = "AzureOnlyError"
#: Notebooks that read what earlier ones left in the workspace run in a second phase.
LATER = ("exploring-previous-runs",)
#: Notebook -> the notebook whose runs it reads; run with it (in the first phase) when --only leaves it out.
PREREQUISITES = {"exploring-previous-runs": "automated-machine-learning/classification/"}


@dataclass
class Result:
    notebook: str
    cells: int = 0
    passed: int = 0
    failures: list[dict[str, object]] = field(default_factory=list)  # {"cell", "ename", "line"}
    rules: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def azure_only(self) -> int:
        return sum(1 for f in self.failures if f["ename"] == AZURE_ONLY)


def find_samples(explicit: str | None = None) -> Path | None:
    """--samples, else $NBML_AZURE_SAMPLES, else ../shared/azure-samples from the repo root (or from a folder
    above it: a git worktree lives deeper than the main checkout)."""
    given = explicit or os.environ.get("NBML_AZURE_SAMPLES")
    candidates = [Path(given)] if given else [p / "shared" / "azure-samples" for p in REPO.parents]
    return next((c for c in candidates if c.is_dir()), None)


def list_notebooks(samples: Path, only: str | None = None) -> list[Path]:
    """The notebooks (whose path contains `only`), with the notebooks those read the runs of."""
    found = [p for p in sorted(samples.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    chosen = [p for p in found if only is None or only in str(p.relative_to(samples))]
    needed = {pre for p in chosen for key, pre in PREREQUISITES.items() if key in str(p)}
    return [p for p in found if p in chosen or any(pre in str(p.relative_to(samples)) for pre in needed)]


#: Two notebooks of one folder (datasets-tutorial, how-to-use-estimator) run at once with --jobs 2: one copying
#: the folder must not read the other's notebook while it is being rewritten.
_PREPARE = threading.Lock()


def prepare(notebook: Path, samples: Path, work: Path) -> tuple[Path, list[str]]:
    """Copy the notebook's folder into `work` and apply the rules; returns (the copy, rules that fired)."""
    with _PREPARE:
        return _prepare(notebook, samples, work)


def _prepare(notebook: Path, samples: Path, work: Path) -> tuple[Path, list[str]]:
    import nbformat

    rel = notebook.parent.relative_to(samples)
    dest = work / rel
    main_copy = dest / notebook.name
    copied: list[Path] = []

    def copy(src: str, dst: str) -> str:
        # A file a sibling notebook's run prepared already (its notebook, edited for it) stays as it is.
        if Path(dst).exists() and Path(dst) != main_copy:
            return dst
        copied.append(Path(dst))
        return str(shutil.copy2(src, dst))

    shutil.copytree(notebook.parent, dest, dirs_exist_ok=True, copy_function=copy)
    fired: set[str] = set()
    _MNIST_IMPORTERS.clear()
    for path in sorted(copied, key=lambda p: p.suffix != ".py"):  # scripts first: cells copy what they import
        if path.suffix == ".py":
            new, names = apply_rules(path.read_text(), side=True)
            path.write_text(new)
            fired.update(names)
            if re.search(rf"^\s*from {MNIST_MODULE} import", new, re.M):
                _MNIST_IMPORTERS.add(path.name)
                (path.parent / f"{MNIST_MODULE}.py").write_text(_MNIST_STANDIN)
        elif path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            main = path == main_copy
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.source, names = apply_rules(cell.source, side=not main)
                    fired.update(names)
            nbformat.write(nb, path)
    write_substitutes(dest, [notebook.read_text()])
    return dest / notebook.name, sorted(fired)


def execute(path: Path, cell_timeout: int) -> dict[str, object]:
    """Run one prepared notebook in a kernel (child process side); returns its per-cell results."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(path.parent)}})
    died = None
    try:
        client.execute()
    except DeadKernelError as exc:
        died = f"DeadKernelError: {exc}".splitlines()[0]
    finally:
        nbformat.write(nb, path)
    cells, passed, failures = 0, 0, []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if not cell.source.strip():
            continue
        cells += 1
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            line = f"{errors[0].get('ename')}: {errors[0].get('evalue')}".splitlines()[0][:300]
            failures.append({"cell": i, "ename": errors[0].get("ename"), "line": line})
        elif died and cell.get("execution_count") is None:
            failures.append({"cell": i, "ename": "NotRun", "line": died or "the cell did not run"})
        else:
            passed += 1
    return {"cells": cells, "passed": passed, "failures": failures}


def run_one(notebook: Path, samples: Path, work: Path, env: dict[str, str], cell_timeout: int,
            notebook_timeout: int) -> Result:
    rel = str(notebook.relative_to(samples))
    result = Result(rel)
    start = time.monotonic()
    copy, result.rules = prepare(notebook, samples, work)
    out = copy.with_suffix(".result.json")
    try:
        proc = subprocess.run([sys.executable, __file__, "--execute", str(copy), str(out), "--cell-timeout",
                               str(cell_timeout)], env=env, cwd=copy.parent, capture_output=True, text=True,
                              timeout=notebook_timeout)
        if out.exists():
            data = json.loads(out.read_text())
            result.cells, result.passed, result.failures = data["cells"], data["passed"], data["failures"]
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            result.failures = [{"cell": -1, "ename": "RunnerError", "line": tail[0][:300]}]
    except subprocess.TimeoutExpired:
        result.failures = [{"cell": -1, "ename": "Timeout", "line": f"notebook over {notebook_timeout} s"}]
    result.seconds = time.monotonic() - start
    return result


def cleanup(nbml_home: Path) -> None:
    """Stop what the notebooks left running in the workspace: runs, Dask clusters, web services."""
    if not (nbml_home / "nbml.db").exists() and not any(nbml_home.glob("**/nbml.db")):
        return
    os.environ["NBML_HOME"] = str(nbml_home)
    sys.path.insert(0, str(REPO))
    from nbml import Workspace
    from nbml.compute import _dask_cluster
    from nbml.models.deploy import Webservice
    from nbml.runs.status import ACTIVE

    ws = Workspace.from_config(nbml_home)
    active = ws.store.list_runs(status=list(ACTIVE), limit=10_000)
    for rec in active:
        ws.store.request_cancel(rec["run_id"])
    deadline = time.monotonic() + 60
    while active and time.monotonic() < deadline:
        time.sleep(1)
        active = ws.store.list_runs(status=list(ACTIVE), limit=10_000)
    for rec in ws.store.list_compute():
        if rec["kind"] == "dask":
            _dask_cluster.stop(ws.path, rec["name"])
    for service in Webservice.list(ws):
        service.delete()


def table(results: list[Result]) -> str:
    width = max([len(r.notebook) for r in results] + [8])
    lines = [f"{'notebook':<{width}}  cells  passed  failed  azure-only  first failure",
             "-" * (width + 60)]
    for r in results:
        first = next(iter(r.failures), None)
        where = f"[{first['cell']}] {first['line']}" if first else ""
        lines.append(f"{r.notebook:<{width}}  {r.cells:>5}  {r.passed:>6}  {r.failed:>6}  {r.azure_only:>10}  "
                     f"{where[:140]}")
    total = Result("TOTAL", sum(r.cells for r in results), sum(r.passed for r in results),
                   [f for r in results for f in r.failures])
    lines.append(f"{'TOTAL':<{width}}  {total.cells:>5}  {total.passed:>6}  {total.failed:>6}  "
                 f"{total.azure_only:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", help="folder of the sample notebooks (default ../shared/azure-samples)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at once (at most 2)")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("--notebook-timeout", type=int, default=2400)
    parser.add_argument("--only", help="run only notebooks whose path contains this")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temp dir, removed)")
    parser.add_argument("--rules", action="store_true", help="print the edit table and exit")
    parser.add_argument("--execute", nargs=2, metavar=("NOTEBOOK", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rules:
        print(describe())
        return 0
    if args.execute:
        Path(args.execute[1]).write_text(json.dumps(execute(Path(args.execute[0]), args.cell_timeout)))
        return 0
    samples = find_samples(args.samples)
    if samples is None:
        print("No sample notebooks at ../shared/azure-samples (or --samples): nothing to check.")
        return 0
    notebooks = list_notebooks(samples, args.only)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbml-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **kernel_environ(work), "NBML_HOME": str(work / "nbml-home"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    env.pop("NBML_WORKSPACE", None)
    first = [n for n in notebooks if not any(k in str(n) for k in LATER)]
    later = [n for n in notebooks if n not in first]
    results: list[Result] = []
    stop_serving = serve_fetched(work / "served")
    try:
        for phase in (first, later):
            with ThreadPoolExecutor(max_workers=max(1, min(args.jobs, 2))) as pool:
                results += pool.map(lambda nb: run_one(nb, samples, work / "notebooks", env, args.cell_timeout,
                                                       args.notebook_timeout), phase)
    finally:
        stop_serving()
        cleanup(work / "nbml-home")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    print("\nFailing cells:")
    for r in results:
        for f in r.failures:
            print(f"  {r.notebook} [{f['cell']}] {f['line'][:200]}")
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(r), "failed": r.failed, "azure_only": r.azure_only}
                                               for r in results], indent=1))
    return 1 if any(f["ename"] != AZURE_ONLY for r in results for f in r.failures) else 0


if __name__ == "__main__":
    sys.exit(main())
