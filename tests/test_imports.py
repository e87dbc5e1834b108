"""The settings, the errors and ``mlflow-explain --help`` load without torch (imports point down)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "mlflow", "captum", "pandas")


def loaded_after(code: str) -> set[str]:
    """The heavy packages a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import mlflow_explain.config",
        "import mlflow_explain.errors",
        "import mlflow_explain",
        "from mlflow_explain import DataConfig, ExplainConfig, TrainConfig, ConfigError",
    ],
)
def test_settings_and_errors_load_without_heavy_packages(code):
    assert loaded_after(code) == set()


def test_help_loads_without_torch():
    code = (
        "from click.testing import CliRunner\n"
        "from mlflow_explain.cli import cli\n"
        "for args in (['--help'], ['main', '--help'], ['explain', '--help'], ['compare', '--help']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0 and 'Usage:' in result.output, result.output"
    )
    assert loaded_after(code) == set()


def test_lazy_names_resolve_to_the_real_objects():
    import mlflow_explain
    from mlflow_explain.callback import ExplainCallback
    from mlflow_explain.data import load_dataset

    assert mlflow_explain.load_dataset is load_dataset and mlflow_explain.ExplainCallback is ExplainCallback
    assert set(mlflow_explain.__all__) >= set(mlflow_explain._LAZY)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mlflow_explain.nope  # noqa: B018
