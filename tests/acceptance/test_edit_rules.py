"""The acceptance run's edit rules: mechanical, and only where they are meant to apply."""

from __future__ import annotations

import json
import runpy
from types import SimpleNamespace

import pandas as pd


def test_module_paths_become_nbml_but_package_names_in_strings_stay(acceptance):
    src = ("import azureml.core\nfrom azureml.core.compute import RemoteCompute\n"
           "print(azureml.core.VERSION)\npip = ['azureml-sdk', 'scikit-learn']\nrun.add_properties({'a': 'azureml-user'})\n")
    out, fired = acceptance.apply_rules(src)
    assert out == ("import nbml.core\nfrom nbml.core.compute import RemoteCompute\n"
                   "print(nbml.core.VERSION)\npip = ['azureml-sdk', 'scikit-learn']\n"
                   "run.add_properties({'a': 'azureml-user'})\n")
    assert fired == ["module-paths"]


def test_workspace_auth_becomes_from_config(acceptance):
    src = "ws = Workspace.create(name='w',\n    subscription_id=sid, resource_group='rg')\nws2 = Workspace.from_config()\n"
    out, _ = acceptance.apply_rules(src)
    assert out == "ws = Workspace.from_config()\nws2 = Workspace.from_config()\n"
    same = "ws = Workspace(workspace_name)\n"
    assert acceptance.apply_rules(same)[0] == same


def test_automl_iterations_are_capped_or_added(acceptance):
    cap = acceptance.AUTOML_CAP
    assert acceptance.apply_rules("AutoMLConfig(task='c', iterations = 20, X=X)")[0] == \
        f"AutoMLConfig(task='c', iterations = {cap}, X=X)"
    assert acceptance.apply_rules('s = {"iterations" : 40}')[0] == f's = {{"iterations" : {cap}}}'
    assert acceptance.apply_rules("AutoMLConfig(task='c', iterations=2)")[0] == "AutoMLConfig(task='c', iterations=2)"
    assert acceptance.apply_rules("c = AutoMLConfig(task='c',\n  X=X)")[0] == \
        f"c = AutoMLConfig(iterations={cap}, task='c',\n  X=X)"
    spread = "c = AutoMLConfig(task='c', **settings)"
    assert acceptance.apply_rules(spread)[0] == spread  # the settings dict carries it


def test_compute_setup_rules(acceptance, monkeypatch):
    cluster = "cfg = AmlCompute.provisioning_configuration(vm_size='STANDARD_NC6',\n    max_nodes=4)\n"
    assert "max_nodes=2)" in acceptance.apply_rules(cluster)[0]
    attach = ("config = RemoteCompute.attach_configuration(username=u, address=a, ssh_port=22,\n"
              "    private_key_file='./.ssh/id_rsa')\ndsvm = ComputeTarget.attach(ws, name, config)\n")
    monkeypatch.delenv("NBML_SSH_HOST", raising=False)
    assert 'dsvm = ComputeTarget(ws, "local")' in acceptance.apply_rules(attach)[0]
    monkeypatch.setenv("NBML_SSH_HOST", "127.0.0.1")
    monkeypatch.setenv("NBML_SSH_PORT", "2222")
    monkeypatch.setenv("NBML_SSH_KEY", "/keys/id_ed25519")
    out = acceptance.apply_rules(attach)[0]
    assert "ssh_port=2222" in out and "private_key_file='/keys/id_ed25519'" in out
    assert "ComputeTarget.attach(ws, name, config)" in out
    assert acceptance.kernel_environ()["AZUREML_DSVM_ADDRESS"] == "127.0.0.1"


def test_library_drift_rules(acceptance):
    src = "from sklearn.externals import joblib\nm = np.zeros(3, dtype=np.bool)\nb = np.bool_\n" \
          "pd.set_option('display.max_colwidth', -1)\nrundata = pd.DataFrame(m).sort_index(1)\n"
    out, fired = acceptance.apply_rules(src)
    assert out == ("import joblib\nm = np.zeros(3, dtype=bool)\nb = np.bool_\npd.set_option('display.max_colwidth', None)\n"
                   "rundata = pd.DataFrame(m).sort_index(axis=1)\n")
    assert {acceptance.RULES[i].category for i in range(len(acceptance.RULES)) if acceptance.RULES[i].name in fired} \
        == {"drift"}


def test_download_urls_become_shipped_data_of_the_same_use(acceptance, tmp_path):
    url = "https://dprepdata.blob.core.windows.net/demo/crime0-random.csv"
    src = f"dataset = Dataset.Tabular.from_delimited_files('{url}')"
    out, fired = acceptance.apply_rules(src)
    assert fired == ["download-urls"] and "nbml-substitutes/crime0-random.csv" in out
    assert acceptance.write_substitutes(tmp_path, [src]) == [url]
    frame = pd.read_csv(tmp_path / "nbml-substitutes" / "crime0-random.csv")
    assert {"Primary Type", "FBI Code"} <= set(frame.columns) and frame["Primary Type"].nunique() == 3
    assert not (tmp_path / "nbml-substitutes" / "crime0-test.csv").exists()  # only what the notebook uses


def test_prepare_copies_the_folder_and_edits_only_the_copy(acceptance, tmp_path):
    import nbformat

    samples = tmp_path / "samples" / "topic"
    samples.mkdir(parents=True)
    (samples / "train.py").write_text("from azureml.core.run import Run\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import azureml.core\nAutoMLConfig(task='r')")])
    nbformat.write(nb, samples / "demo.ipynb")
    original = (samples / "demo.ipynb").read_text()
    copy, fired = acceptance.prepare(samples / "demo.ipynb", tmp_path / "samples", tmp_path / "work")
    assert copy == tmp_path / "work" / "topic" / "demo.ipynb"
    assert (samples / "demo.ipynb").read_text() == original
    assert (copy.parent / "train.py").read_text() == "from nbml.core.run import Run\n"
    cell = "".join(json.loads(copy.read_text())["cells"][0]["source"])
    assert cell.startswith("import nbml.core\nAutoMLConfig(iterations=")
    assert fired == ["automl-iterations", "module-paths"]


def test_table_counts_and_exit_rule(acceptance):
    ok = acceptance.Result("a/one.ipynb", cells=3, passed=3)
    azure = acceptance.Result("b/two.ipynb", cells=2, passed=1,
                              failures=[{"cell": 1, "ename": "AzureOnlyError", "line": "AzureOnlyError: AKS"}])
    text = acceptance.table([ok, azure])
    assert "b/two.ipynb" in text and "[1] AzureOnlyError: AKS" in text
    assert text.splitlines()[-1].split() == ["TOTAL", "5", "4", "1", "1"]


def test_docker_hub_images_become_the_local_base(acceptance, monkeypatch):
    monkeypatch.setenv("NBML_DOCKER_BASE_IMAGE", "local-base:1")
    out, fired = acceptance.apply_rules("image_name = 'continuumio/miniconda3'\nother = 'my/own:2'\n")
    assert out == "image_name = 'local-base:1'\nother = 'my/own:2'\n" and fired == ["hub-images"]


def test_a_cell_that_submits_and_shows_the_widget_waits_for_the_run(acceptance):
    src = "run = exp.submit(config=src)\n\n# monitor the run\nRunDetails(run).show()"
    out, fired = acceptance.apply_rules(src)
    assert out == src + "\nrun.wait_for_completion(raise_on_error=False)"
    assert fired == ["widget-wait"]
    for same in ("RunDetails(run).show()",  # submitted in an earlier cell: left alone
                 "run = exp.submit(c)\nRunDetails(run).show()\nrun.wait_for_completion(show_output=True)"):
        assert acceptance.apply_rules(same)[0] == same


HDI_CELL = """attach_config = HDInsightCompute.attach_configuration(address=os.environ.get('hdiservername', 'x-ssh.net'),
                                                      ssh_port=22,
                                                      username=os.environ.get('hdiusername', '<ssh_username>'),
                                                      password=os.environ.get('hdipassword', '<my_password>'))
hdi_compute = ComputeTarget.attach(workspace=ws,
                                   name='myhdi',
                                   attach_configuration=attach_config)
"""


def test_hdinsight_attach_goes_to_the_test_sshd_or_local(acceptance, monkeypatch):
    for var in ("NBML_SSH_HOST", "NBML_SPARK_PYTHON", "NBML_SPARK_MASTER", "NBML_SSH_KNOWN_HOSTS"):
        monkeypatch.delenv(var, raising=False)
    out, fired = acceptance.apply_rules(HDI_CELL)
    assert fired == ["hdinsight-compute"]
    assert out.endswith('hdi_compute = ComputeTarget(ws, "local")\n')
    monkeypatch.setenv("NBML_SSH_HOST", "127.0.0.1")
    monkeypatch.setenv("NBML_SSH_PORT", "2222")
    monkeypatch.setenv("NBML_SSH_KEY", "/keys/id_ed25519")
    monkeypatch.setenv("NBML_SPARK_PYTHON", "/venv/bin/python")
    monkeypatch.setenv("NBML_SSH_KNOWN_HOSTS", "/keys/known_hosts")
    out, _ = acceptance.apply_rules(HDI_CELL)
    assert "ssh_port=2222" in out and "hdipassword" not in out
    assert "private_key_file='/keys/id_ed25519', python='/venv/bin/python', known_hosts='/keys/known_hosts')" in out
    assert "ComputeTarget.attach(workspace=ws," in out
    compile(out, "cell", "exec")
    environ = acceptance.kernel_environ()
    assert environ["hdiservername"] == "127.0.0.1" and environ["hdiusername"]


def test_fetched_script_comes_from_the_loopback_server(acceptance, tmp_path):
    url = next(iter(acceptance.FETCHED))
    src = f'tf_code = requests.get("{url}")\n'
    stop = acceptance.serve_fetched(tmp_path / "served")
    try:
        out, fired = acceptance.apply_rules(src)
        assert fired == ["download-scripts"] and "githubusercontent" not in out
        served = out.split('"')[1]
        assert served.startswith("http://127.0.0.1:") and served.endswith("/mnist_with_summaries.py")
        import urllib.request

        with urllib.request.urlopen(served, timeout=10) as resp:
            text = resp.read().decode()
        assert "--log_dir" in text and "from tensorboard.summary import Writer" in text
        compile(text, "mnist_with_summaries.py", "exec")
    finally:
        stop()


def test_open_datasets_become_a_generated_table_written_beside_the_notebook(acceptance, tmp_path, monkeypatch):
    import importlib
    from datetime import datetime

    src = "import os\nfrom azureml.opendatasets import NoaaIsdWeather\n"
    out, fired = acceptance.apply_rules(src)
    assert out == "import os\nfrom nbml_substitutes import NoaaIsdWeather\n"
    assert fired == ["module-paths", "open-datasets"]
    other = "from azureml.opendatasets import MNIST\n"  # no stand-in: left to fail with the Azure-only error
    assert acceptance.apply_rules(other)[0] == "from nbml.opendatasets import MNIST\n"
    assert acceptance.write_substitutes(tmp_path, [src]) == ["NoaaIsdWeather"]
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("nbml_substitutes")
    frame = module.NoaaIsdWeather(datetime(2019, 2, 1), datetime(2019, 3, 1)).to_pandas_dataframe()
    again = module.NoaaIsdWeather(datetime(2019, 2, 1), datetime(2019, 3, 1)).to_pandas_dataframe()
    assert frame.equals(again)  # the same table on every run
    florida = frame[frame["stationName"].str.contains("FLORIDA")]
    assert florida["stationName"].nunique() == 3 and len(florida) == 3 * 28 * 24
    assert {"datetime", "snowDepth", "version", "temperature", "usaf", "p_k"} <= set(frame.columns)
    assert frame["datetime"].min() == datetime(2019, 2, 1) and frame["datetime"].max() < datetime(2019, 3, 1)
    assert not (tmp_path / "nbml-substitutes").exists()  # no URL was used


def test_placeholders_change_only_values_the_notebook_says_to_replace(acceptance):
    src = ("experiment_name = 'automl-local-classification' # Replace this with any project name from previous cell.\n"
           "other = 'automl-local-classification'\n")
    out, fired = acceptance.apply_rules(src)
    assert out.splitlines() == ["experiment_name = 'automl-classification' # Replace this with any project name "
                                "from previous cell.", "other = 'automl-local-classification'"]
    assert fired == ["placeholders"]


def test_only_brings_the_notebooks_a_notebook_reads_the_runs_of(acceptance, tmp_path):
    import nbformat

    for rel in ("automated-machine-learning/classification/auto-ml-classification.ipynb",
                "automated-machine-learning/exploring-previous-runs/auto-ml-exploring-previous-runs.ipynb",
                "automated-machine-learning/regression/auto-ml-regression.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / rel)
    names = [p.name for p in acceptance.list_notebooks(tmp_path, "exploring-previous-runs")]
    assert names == ["auto-ml-classification.ipynb", "auto-ml-exploring-previous-runs.ipynb"]
    assert [p.name for p in acceptance.list_notebooks(tmp_path, "regression")] == ["auto-ml-regression.ipynb"]


def test_an_unused_pkg_resources_import_is_dropped_but_a_used_one_stays(acceptance):
    src = "from azureml.core import Run\nimport pkg_resources\n\ncd = 1\n"
    out, fired = acceptance.apply_rules(src)
    assert out == "from nbml.core import Run\n\ncd = 1\n" and "pkg-resources" in fired
    used = "import pkg_resources\nv = pkg_resources.get_distribution('x')\n"
    assert acceptance.apply_rules(used)[0] == used


def test_preparing_a_sibling_notebook_keeps_the_first_ones_edits(acceptance, tmp_path):
    import nbformat

    folder = tmp_path / "samples" / "two"
    folder.mkdir(parents=True)
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("AutoMLConfig(task='r')")]),
                       folder / name)
    first, _ = acceptance.prepare(folder / "a.ipynb", tmp_path / "samples", tmp_path / "work")
    second, _ = acceptance.prepare(folder / "b.ipynb", tmp_path / "samples", tmp_path / "work")
    for copy in (first, second):  # each keeps its own full edits (a runs while b is prepared)
        assert "iterations=" in "".join(json.loads(copy.read_text())["cells"][0]["source"])


def test_pandas_ml_confusion_matrix_gets_a_stand_in_that_prints_the_counts(acceptance, tmp_path):
    cell = "from pandas_ml import ConfusionMatrix\ncm = ConfusionMatrix(y_test['Primary Type'], ypred)\nprint(cm)\n"
    out, fired = acceptance.apply_rules(cell)
    assert out.startswith(f"from {acceptance.SUBSTITUTE_MODULE} import ConfusionMatrix\n") and "pandas-ml" in fired
    assert acceptance.apply_rules("from pandas_ml import something_else\n")[0] == "from pandas_ml import something_else\n"
    notebook_json = json.dumps({"cells": [{"cell_type": "code", "source": cell.splitlines(True)}]}, indent=1)
    assert "pandas_ml.ConfusionMatrix" in acceptance.write_substitutes(tmp_path, [notebook_json])
    module = runpy.run_path(str(tmp_path / f"{acceptance.SUBSTITUTE_MODULE}.py"))  # not the module another test imported
    module = SimpleNamespace(**module)
    cm = module.ConfusionMatrix(pd.Series(["a", "b", "b", "c"]), ["a", "b", "c", "c"])
    table = cm.to_dataframe()
    assert table.loc["b", "b"] == 1 and table.loc["b", "c"] == 1 and table.loc["c", "c"] == 1 and table.to_numpy().sum() == 4
    assert "Predicted" in str(cm) and "Actual" in str(cm)


def test_a_torchvision_mnist_script_gets_the_stand_in_which_travels_with_it(acceptance, tmp_path, monkeypatch):
    import nbformat
    import torch

    monkeypatch.setattr(acceptance, "_no_gpu", lambda: True)
    samples = tmp_path / "samples" / "ddp"
    samples.mkdir(parents=True)
    (samples / "mnist.py").write_text(
        "import torch\nfrom torchvision import datasets, transforms\nimport torchvision.models as models\n"
        "net = Net().cuda()\nok = correct[:k].view(-1)\nflat = x.view(-1)\n")
    cells = ["import shutil\nshutil.copy('mnist.py', project_folder)",
             "est = PyTorch(script_params={'--dist-backend': 'nccl'}, distributed_training=Nccl())\n"
             "from azureml.train.dnn import PyTorch, Nccl"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), samples / "d.ipynb")
    copy, fired = acceptance.prepare(samples / "d.ipynb", tmp_path / "samples", tmp_path / "work")
    script = (copy.parent / "mnist.py").read_text()
    assert script == ("import torch\nfrom nbml_mnist import datasets, transforms\n"
                      "net = Net().cpu()\nok = correct[:k].reshape(-1)\nflat = x.view(-1)\n")
    sources = ["".join(c["source"]) for c in json.loads(copy.read_text())["cells"]]
    assert sources[0] == ("import shutil\nshutil.copy('mnist.py', project_folder)\n"
                          "shutil.copy('nbml_mnist.py', project_folder)")
    assert sources[1] == ("est = PyTorch(script_params={'--dist-backend': 'gloo'}, distributed_training=Gloo())\n"
                          "from nbml.train.dnn import PyTorch, Gloo")
    assert {"torchvision-mnist", "mnist-travels", "nccl-on-cpu", "cuda-on-cpu", "torch-view-of-slice"} <= set(fired)
    # The stand-in behaves as torchvision's MNIST does for the script: 1x28x28 normalised floats, int labels.
    monkeypatch.syspath_prepend(str(copy.parent))
    import nbml_mnist

    data = nbml_mnist.datasets.MNIST("data", train=True, download=True, transform=nbml_mnist.transforms.Compose([
        nbml_mnist.transforms.ToTensor(), nbml_mnist.transforms.Normalize((0.1307,), (0.3081,))]))
    image, label = data[0]
    assert image.shape == torch.Size([1, 28, 28]) and image.dtype == torch.float32 and isinstance(label, int)
    assert len(data) + len(nbml_mnist.datasets.MNIST("data", train=False)) == 1797
    assert {int(t) for t in data.targets} == set(range(10))


def test_gpu_rules_leave_a_machine_with_a_gpu_alone(acceptance, monkeypatch):
    monkeypatch.setattr(acceptance, "_no_gpu", lambda: False)
    src = "est = PyTorch(distributed_training=Nccl(), script_params={'--dist-backend': 'nccl'})\nm.cuda()\n"
    assert acceptance.apply_rules(src)[0] == src
    used = "import torchvision.models as models\nnet = models.resnet18()\n"
    assert acceptance.apply_rules(used, side=True)[0] == used  # used: the failure would be real
