"""The project files agree with each other: pyproject, conda.yaml, MLproject and the CLI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from mlflow_explain.cli import cli

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower()


def test_conda_env_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    conda_pip = [r for r in pip_section if not r.startswith("-e")]
    assert sorted(conda_pip) == sorted(project)
    assert {_name(r) for r in conda_pip} >= {"mlflow", "transformers", "torch", "transformers-interpret", "captum"}


def test_mlproject_parameters_map_onto_cli_options():
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    assert spec["conda_env"] == "conda.yaml"
    for entry, params in spec["entry_points"].items():
        command = cli.commands[entry]
        options = {opt.lstrip("-").replace("-", "_") for p in command.params for opt in p.opts}
        for name in params["parameters"]:
            assert name in options, f"MLproject {entry}.{name} has no CLI option"
            assert f"{{{name}}}" in params["command"], f"MLproject {entry} never passes {name}"
    assert set(spec["entry_points"]["main"]["parameters"]) >= {
        "data",
        "text_column",
        "label_column",
        "model",
        "epochs",
        "n_explain",
        "n_steps",
        "seed",
    }
    assert "model" in spec["entry_points"]["explain"]["parameters"]
    assert "default" not in spec["entry_points"]["explain"]["parameters"]["model"]
