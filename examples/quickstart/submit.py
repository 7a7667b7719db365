"""The main job: the seed's scikit-learn tutorial on the embedded default (local compute, SQLite workspace)."""

from pathlib import Path

from nbml import Environment, Experiment, Model, ScriptRunConfig, Workspace

here = Path(__file__).resolve().parent
ws = Workspace.from_config()  # no config anywhere: the embedded default workspace in ~/.nbml
print(ws)

env = Environment.from_conda_specification(name="sklearn-env", file_path=here / "conda_dependencies.yml")
src = ScriptRunConfig(source_directory=str(here), script="train_iris.py",
                      arguments=["--kernel", "linear", "--penalty", 1.0], environment=env)

run = Experiment(ws, "Tutorial-TrainIRIS").submit(src)
run.wait_for_completion(show_output=True)

print("Metrics:", run.get_metrics())
print("Files:", run.get_file_names())
model = run.register_model(model_name="sklearn-iris", model_path="outputs/model.joblib",
                           model_framework=Model.Framework.SCIKITLEARN)
print("Registered", model)
print(f"\nSee it again any time: nbml runs show {run.id}")
