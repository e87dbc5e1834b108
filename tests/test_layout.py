"""The package's layering: only the tracking layer writes to MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlflow_explain"

WRITERS = {
    "start_run",
    "end_run",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "set_experiment_tag",
    "set_tag",
    "set_tags",
    "set_terminated",
    "update_run",
}
"""MLflow calls that write to a tracking store (fluent ``mlflow.*`` and ``MlflowClient`` methods alike)."""

TRACKING_LAYER = {path for path in (PACKAGE / "tracking").glob("*.py")}
"""The files of the tracking package, the only ones allowed to write to MLflow."""


def mlflow_writes(path: Path) -> list[str]:
    """``file:line name`` of every call of a writer name in a module (attribute calls such as ``client.log_metric``)."""
    tree = ast.parse(path.read_text("utf-8"))
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WRITERS
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "tracking")  # the layer's own API
    ]


def test_only_the_tracking_layer_writes_to_mlflow():
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p not in TRACKING_LAYER)
    assert len(modules) > 20 and PACKAGE / "render" / "files.py" in modules
    found = [call for module in modules for call in mlflow_writes(module)]
    assert found == []


def test_the_scan_sees_each_tracking_modules_own_writes():
    writes = {path.stem: {call.rsplit(" ", 1)[1] for call in mlflow_writes(path)} for path in TRACKING_LAYER}
    assert {"__init__", "runs", "explanations", "models", "comparisons"} == set(writes)
    assert writes["__init__"] == set()  # it only re-exports
    run_writes = {"start_run", "end_run", "log_params", "log_metrics", "set_tags", "log_batch", "log_artifacts"}
    assert run_writes <= writes["runs"]
    assert {"log_table", "log_artifact", "log_metrics", "set_experiment_tag"} <= writes["explanations"]
    assert {"log_model", "set_tag"} <= writes["models"]
    assert {"start_run", "update_run", "log_table", "log_metrics"} <= writes["comparisons"]


def private_imports(path: Path) -> list[str]:
    """Imports of private names of other modules (``_read_table``), or of another package's private modules
    (``attribution._engine`` outside ``attribution/``), in a module."""
    package = ".".join(("mlflow_explain", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("mlflow_explain"):
            continue
        parent, _, last = node.module.rpartition(".")
        names = [alias.name for alias in node.names if alias.name.startswith("_") and alias.name != "__version__"]
        if last.startswith("_") and parent != package:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module}")
        if names:  # a private name belongs to its module, siblings included
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module}: {', '.join(names)}")
    return found


def test_no_module_imports_another_packages_private_names():
    found = [hit for module in sorted(PACKAGE.rglob("*.py")) for hit in private_imports(module)]
    assert found == []


MAX_FUNCTION_LINES = 60
"""Longest function body (its docstring left out) unless the docstring says why it is longer."""


def long_functions(path: Path) -> list[str]:
    """``file:line name (n lines)`` of each function whose body passes :data:`MAX_FUNCTION_LINES` unexplained."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node) or ""
        first = node.body[1] if docstring and len(node.body) > 1 else node.body[0]
        length = node.end_lineno - first.lineno + 1
        if length > MAX_FUNCTION_LINES and "lines long because" not in docstring:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_60_lines_without_saying_why():
    found = [hit for module in sorted(PACKAGE.rglob("*.py")) for hit in long_functions(module)]
    assert found == []
