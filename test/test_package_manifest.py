"""package.xml is a valid format-3 manifest that declares what the code imports."""

from __future__ import annotations

import ast
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

import siamrpnpp_ros

REPO_ROOT = Path(__file__).resolve().parents[1]

# Top-level Python module -> the rosdep key or ROS package that provides it.
MODULE_PROVIDERS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "ament_index_python": "ament_index_python",
    "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs",
    "std_srvs": "std_srvs",
    "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "builtin_interfaces": "builtin_interfaces",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "torch": "python3-torch",
    "matplotlib": "python3-matplotlib",
    "aiohttp": "python3-aiohttp",
}
# Imported only inside try/except as optional accelerators or fallbacks.
OPTIONAL_MODULES = {"cv_bridge", "onnx", "onnxruntime", "psutil", "skimage"}


@pytest.fixture(scope="module")
def manifest():
    package = parse_package(str(REPO_ROOT / "package.xml"))
    package.validate()
    return package


def imported_top_level_modules(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_manifest_is_format_3_and_matches_the_python_version(manifest):
    assert manifest.package_format == 3
    assert manifest.name == "siamrpnpp_ros"
    assert manifest.version == siamrpnpp_ros.__version__
    assert manifest.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [group.name for group in manifest.member_of_groups]


def test_every_third_party_import_is_declared(manifest):
    runtime = {dep.name for dep in manifest.exec_depends + manifest.build_export_depends}
    imported = imported_top_level_modules(REPO_ROOT / "siamrpnpp_ros") | imported_top_level_modules(
        REPO_ROOT / "launch"
    )
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "siamrpnpp_ros"}
    unknown = third_party - MODULE_PROVIDERS.keys() - OPTIONAL_MODULES
    assert not unknown, f"map these imports to a rosdep key in MODULE_PROVIDERS and package.xml: {sorted(unknown)}"
    undeclared = {MODULE_PROVIDERS[name] for name in third_party & MODULE_PROVIDERS.keys()} - runtime
    assert not undeclared, f"package.xml lacks <exec_depend> for {sorted(undeclared)}"


# The layout (README "Layout"; docs/development.md "Import direction"): a ROS-free core, the node
# adapter in ros/, the programs around the node in tools/.
CORE_PACKAGES = ("models", "tracking", "export", "sequences", "material", "training", "eval", "benchmark")
# The folders of the package each folder may import (a folder may always import itself), one way:
# models <- tracking (<- export) <- eval <- training, and benchmark beside them; material and
# sequences are leaves, material for training and eval only; ros/ and tools/ on top of the core.
FOLDER_IMPORTS: dict[str, set[str]] = {
    "models": set(),
    "sequences": set(),
    "material": set(),
    "tracking": {"models"},
    "export": {"models", "tracking"},
    "eval": {"models", "tracking", "sequences", "material"},
    "training": {"models", "tracking", "sequences", "material", "eval"},
    "benchmark": {"models", "tracking", "sequences"},
    "ros": {"models", "tracking"},
    "tools": {"models", "tracking", "sequences", "benchmark", "ros"},
}
# Top-level modules a folder may import besides: leaves that import no folder of the package.
TOP_LEVEL_IMPORTS: dict[str, set[str]] = {
    "export": {"requirements_check"},
    "ros": {"msg"},
    "tools": {"msg", "tracker_node"},
}
NODE_MODULES = {"__init__", "node", "conversions", "frames", "parameters", "qos", "diagnostics", "drawing", "shutdown"}
ROS_TOP_LEVEL = {"rclpy", "rcl_interfaces", "rosidl_runtime_py", "launch", "launch_ros", "ament_index_python"}


def imported_modules(path: Path) -> set[str]:
    """Full names of the modules ``path`` imports anywhere (in functions too), relative imports
    resolved against its package."""
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_ros_module(name: str) -> bool:
    """rclpy and friends, or a message/service package (ours, siamrpnpp_ros.msg, included)."""
    top = name.split(".")[0]
    return (
        top in ROS_TOP_LEVEL
        or top.endswith(("_msgs", "_srvs", "_interfaces"))
        or name == "siamrpnpp_ros.msg"
        or name.startswith("siamrpnpp_ros.msg.")
    )


def test_core_does_not_import_ros():
    for folder in CORE_PACKAGES:
        path = REPO_ROOT / "siamrpnpp_ros" / folder
        assert path.is_dir(), f"siamrpnpp_ros/{folder} is missing; update CORE_PACKAGES and the README layout"
        for module in sorted(path.rglob("*.py")):
            imported = imported_modules(module)
            leaked = {name for name in imported if is_ros_module(name)}
            assert not leaked, (
                f"{module.relative_to(REPO_ROOT)} is core and must stay ROS-free but imports {sorted(leaked)}"
            )
            adapter = {
                name
                for name in imported
                if name.split(".")[:2] in (["siamrpnpp_ros", "ros"], ["siamrpnpp_ros", "tools"])
            }
            assert not adapter, f"{module.relative_to(REPO_ROOT)} is core but imports the ROS side: {sorted(adapter)}"


def package_imports(module: Path) -> set[tuple[str, str]]:
    """``(kind, name)`` of each part of the package that ``module`` imports, at module level or
    inside a function alike: ``("folder", "tracking")`` or ``("module", "requirements_check")``."""
    found: set[tuple[str, str]] = set()
    for name in imported_modules(module):
        parts = name.split(".")
        if parts[0] != "siamrpnpp_ros" or len(parts) < 2:
            continue
        if (REPO_ROOT / "siamrpnpp_ros" / parts[1]).is_dir():
            found.add(("folder", parts[1]))
        elif (REPO_ROOT / "siamrpnpp_ros" / f"{parts[1]}.py").is_file() or parts[1] == "msg":
            found.add(("module", parts[1]))
    return found


def test_folder_order_is_acyclic():
    order: list[str] = []
    pending = dict(FOLDER_IMPORTS)
    while pending:
        ready = sorted(f for f, needs in pending.items() if needs <= set(order))
        assert ready, f"FOLDER_IMPORTS has a loop among {sorted(pending)}"
        order += ready
        for folder in ready:
            del pending[folder]


def test_folders_import_one_way():
    """Every folder imports only the folders below it (FOLDER_IMPORTS), checked on every import
    statement, module-level or inside a function, so a loop cannot hide in a function."""
    folders = {p.name for p in (REPO_ROOT / "siamrpnpp_ros").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == FOLDER_IMPORTS.keys(), "add the new folder to FOLDER_IMPORTS and the README"
    wrong = []
    for folder, allowed in FOLDER_IMPORTS.items():
        for module in sorted((REPO_ROOT / "siamrpnpp_ros" / folder).rglob("*.py")):
            for kind, name in sorted(package_imports(module)):
                if kind == "folder" and name != folder and name not in allowed:
                    wrong.append(f"{module.relative_to(REPO_ROOT)} imports {name}/")
                elif kind == "module" and name not in TOP_LEVEL_IMPORTS.get(folder, set()):
                    wrong.append(f"{module.relative_to(REPO_ROOT)} imports the top-level {name}")
    assert not wrong, "imports against the folder order (FOLDER_IMPORTS):\n" + "\n".join(wrong)


def is_own_import(node: ast.stmt) -> bool:
    """An import of this package's own modules: relative, or of ``siamrpnpp_ros`` by name."""
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "siamrpnpp_ros" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "siamrpnpp_ros"
    return False


DEFERRED = re.compile(r"#\s*deferred:\s*\S")


def test_function_level_imports_of_the_package_say_why():
    """The package imports its own modules at the top of each module, so that an import loop
    shows at once instead of hiding in a function. An import inside a function stays only where
    it defers an optional or environment-bound dependency (rclpy and the ROS messages in modules
    that must load without ROS, aiohttp, onnxruntime, torch before the process is set up), and
    it says so: a ``# deferred: <reason>`` comment on its line or the line above; imports right
    below such an import share its comment."""
    undeclared = []
    for path in sorted((REPO_ROOT / "siamrpnpp_ros").rglob("*.py")):
        source = path.read_text()
        comments: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string
        lines = source.splitlines()
        function_level: dict[int, ast.stmt] = {}
        for function in ast.walk(ast.parse(source, str(path))):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and is_own_import(node):
                        function_level[node.lineno] = node
        covered_ends: set[int] = set()
        for lineno, node in sorted(function_level.items()):
            above = lineno - 1
            on_line = DEFERRED.match(comments.get(lineno, ""))
            comment_above = lines[above - 1].strip().startswith("#") and DEFERRED.match(comments.get(above, ""))
            if on_line or comment_above or above in covered_ends:
                covered_ends.add(node.end_lineno or lineno)
            else:
                undeclared.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {lines[lineno - 1].strip()}")
    assert not undeclared, (
        "import these at the top of the module, or say why not with '# deferred: <reason>' on the line "
        "or the line above:\n" + "\n".join(undeclared)
    )


def test_material_is_imported_by_training_and_eval_only():
    users = set()
    for module in sorted((REPO_ROOT / "siamrpnpp_ros").rglob("*.py")):
        parts = module.relative_to(REPO_ROOT / "siamrpnpp_ros").parts
        where = parts[0] if len(parts) > 1 else module.stem
        if where != "material" and ("folder", "material") in package_imports(module):
            users.add(where)
    assert users <= {"training", "eval"}, f"material/ is imported by {sorted(users - {'training', 'eval'})}"


def test_ros_package_holds_only_the_node():
    folder = REPO_ROOT / "siamrpnpp_ros" / "ros"
    assert not [p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"]
    modules = {p.stem for p in folder.glob("*.py")}
    assert modules - NODE_MODULES == set(), "programs around the node belong in siamrpnpp_ros/tools/"
    assert NODE_MODULES <= modules
    for name in NODE_MODULES:
        tools = {m for m in imported_modules(folder / f"{name}.py") if m.startswith("siamrpnpp_ros.tools")}
        assert not tools, f"the node's module ros/{name}.py imports tools: {sorted(tools)}"


def test_manifest_passes_xmllint_against_the_format_3_schema_when_available():
    schema = Path(os.environ.get("PACKAGE_FORMAT3_XSD", "package_format3.xsd"))
    if shutil.which("xmllint") is None or not schema.is_file():
        pytest.skip("needs xmllint and PACKAGE_FORMAT3_XSD pointing at a local copy of the format-3 schema")
    result = subprocess.run(
        ["xmllint", "--noout", "--schema", str(schema), str(REPO_ROOT / "package.xml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_console_scripts_point_at_callable_mains():
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    scripts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=siamrpnpp_ros." in node.value
    ]
    assert "siamrpnpp-track=siamrpnpp_ros.track:main" in scripts
    for script in scripts:
        name, target = script.split("=")
        module_name, function_name = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, function_name, None)), f"{name} -> {target} is not callable"


def test_launch_file_defaults_match_the_package():
    """The launch file cannot import the package (it runs in ros2 launch's own process), so its
    default model and per-model config files are literals; they must match the code and config/."""
    import yaml

    from siamrpnpp_ros.models import model_config
    from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL

    tree = ast.parse((REPO_ROOT / "launch" / "tracker.launch.py").read_text())
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("DEFAULT_MODEL", "CONFIG_FOR_MODEL")
    }
    assert constants["DEFAULT_MODEL"] == DEFAULT_MODEL
    assert DEFAULT_MODEL in constants["CONFIG_FOR_MODEL"]
    for model, filename in constants["CONFIG_FOR_MODEL"].items():
        document = yaml.safe_load((REPO_ROOT / "config" / filename).read_text())
        assert document["/**"]["ros__parameters"]["model"] == model == model_config(model).name, filename


# The documentation: README.md (for users) and docs/ (one page per reader). Links and images
# that point into the repository must resolve, and so must their #anchors.
MARKDOWN_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans, where brackets are code."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.DOTALL)


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``path`` (lower case, punctuation dropped, spaces
    to hyphens, a -1, -2, ... suffix on repeats)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    for match in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def documentation_pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def test_documentation_links_and_images_resolve():
    broken = []
    for page in documentation_pages():
        for match in MARKDOWN_LINK.finditer(markdown_prose(page.read_text(encoding="utf-8"))):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
                continue  # http:, https:, mailto: ...
            file_part, _, anchor = target.partition("#")
            resolved = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(REPO_ROOT)}: ({target})"
            if not resolved.exists():
                broken.append(f"{where}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
                broken.append(f"{where}: no heading with that anchor in {resolved.relative_to(REPO_ROOT)}")
    assert not broken, "broken links in the documentation:\n" + "\n".join(broken)


def test_readme_stays_short():
    """The README is the landing page; measurements and the reference for each reader live in docs/."""
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"README.md has {lines} lines; move material to the docs/ page for its reader"
