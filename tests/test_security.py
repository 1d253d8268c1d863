"""The untrusted-file and web surface, checked in the code itself.

Scans every tracked Python file (parsed with `ast`, so comments, strings and aliases such as
`import pickle as pk` are told apart) and the app's configuration:

- nothing is unpickled: no pickle loader (`load`/`loads`/`Unpickler`), `pandas.read_pickle`,
  `joblib.load`, `dill`; `torch.load` only with `weights_only=True`; `np.load` never with
  `allow_pickle=True`, and in the product code (engine/, viz/, app.py, app_pages/) always
  with an explicit `allow_pickle=False`;
- no `unsafe_allow_html` argument anywhere, and not even the word in the product code; no
  `st.html` / `components.html` / `components.iframe` fed with anything but a constant;
- `transformers` (a test-only oracle) is imported nowhere in the product code; the layers
  stay apart (no streamlit/plotly in engine/, no torch/streamlit in viz/);
- a file uploader, if any page has one, accepts only safetensors/GGUF (weights) or plain data
  files, with a size cap;
- Streamlit runs with XSRF protection on: `.streamlit/config.toml` says so, `streamlit config
  show` reads it back, and no script or config turns it off.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("engine/", "viz/", "app_pages/", "app.py")
THIS = Path(__file__).resolve()


def tracked_files() -> list[Path]:
    """Files git tracks plus untracked ones it does not ignore (pages being written now)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):  # no git: walk, skipping the venv
        files = [p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts]
    return [p for p in files if p.is_file()]


def python_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix == ".py"]


def product_files() -> list[Path]:
    return [p for p in python_files()
            if any(str(p.relative_to(ROOT)).startswith(d) for d in PRODUCT)]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def dotted(node: ast.AST) -> str:
    """`a.b.c` of a Name/Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


class Aliases(ast.NodeVisitor):
    """Local name → full dotted name, from the file's imports (`import numpy as np`,
    `from pickle import loads as l`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.names[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.names[a.asname or a.name] = f"{node.module or ''}.{a.name}"


def calls(tree: ast.Module):
    """(full dotted callee with aliases resolved, Call node) for every call."""
    aliases = Aliases()
    aliases.visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            if name:
                head, _, rest = name.partition(".")
                full = aliases.names.get(head, head)
                yield (f"{full}.{rest}" if rest else full), node


def kwarg(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def is_false(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Call) and dotted(node.func) in (
                "importlib.import_module", "__import__", "import_module"):
            if node.args and isinstance(node.args[0], ast.Constant):
                found.append(str(node.args[0].value))
    return found


# ----------------------------------------------------------------------------- unpickling

# Names are assembled so that this file's own text does not trip simple greps for unpickling.
PK, TORCH_LOAD = "pickle", "torch" + ".load"
UNPICKLERS = (f"{PK}.load", f"{PK}.loads", f"{PK}.Unpickler", f"c{PK.title()}.load",
              f"c{PK.title()}.loads", f"_{PK}.load", f"_{PK}.loads", "pandas.read_pickle",
              "joblib.load", "dill.load", "dill.loads", "shelve.open", "marshal.loads",
              "numpy.lib.format.read_array_header_pickle")


def test_the_scan_sees_the_tree():
    files = python_files()
    names = {rel(p) for p in files}
    assert {"app.py", "engine/api.py", "engine/models/registry.py"} <= names, sorted(names)[:20]
    assert len(product_files()) >= 20


def test_the_scanner_resolves_aliases():
    """A control: the scan finds what it bans however it is imported."""
    src = ("import pickle as pk\nfrom pickle import loads as ld\nimport numpy as np\n"
           "import torch\nfrom streamlit import components\n"
           "pk.load(f)\nld(b)\nnp.load(p, allow_pickle=True)\nTL(p)\n"
           "TL(p, weights_only=True)\ncomponents.v1.html(user)\n"
           "st.markdown(x, unsafe_allow_html=True)\nimportlib.import_module('transformers')\n"
           ).replace("TL(", TORCH_LOAD + "(")
    tree = ast.parse(src)
    found = [name for name, _ in calls(tree)]
    assert {f"{PK}.load", f"{PK}.loads", "numpy.load", TORCH_LOAD,
            "streamlit.components.v1.html"} <= set(found)
    loads = [n for name, n in calls(tree) if name == TORCH_LOAD]
    assert [is_true(kwarg(n, "weights_only")) for n in loads] == [False, True]
    assert "transformers" in imports(tree)


def test_nothing_is_unpickled():
    bad = []
    for path in python_files():
        for name, node in calls(parse(path)):
            if name in UNPICKLERS or name.endswith(".read_pickle"):
                bad.append(f"{rel(path)}:{node.lineno} {name}")
    assert not bad, "unpickling found:\n" + "\n".join(bad)


def test_torch_load_only_with_weights_only():
    bad = []
    for path in python_files():
        for name, node in calls(parse(path)):
            if name in ("torch.load", "torch.serialization.load"):
                if not is_true(kwarg(node, "weights_only")):
                    bad.append(f"{rel(path)}:{node.lineno}")
    assert not bad, "torch.load without weights_only=True:\n" + "\n".join(bad)


def test_numpy_loads_never_allow_pickle():
    bad, implicit = [], []
    product = set(product_files())
    for path in python_files():
        for name, node in calls(parse(path)):
            if name not in ("numpy.load", "np.load", "numpy.lib.npyio.load"):
                continue
            flag = kwarg(node, "allow_pickle")
            if flag is not None and not is_false(flag):
                bad.append(f"{rel(path)}:{node.lineno} allow_pickle is not False")
            if path in product and flag is None:
                implicit.append(f"{rel(path)}:{node.lineno}")
    assert not bad, "\n".join(bad)
    assert not implicit, "product code must say allow_pickle=False:\n" + "\n".join(implicit)


def test_weights_are_read_from_safetensors_or_gguf_only():
    """The model families and file readers read weights with safetensors or the GGUF
    reader, never torch.load."""
    loaders = [p for p in product_files()
               if rel(p).startswith(("engine/models/", "engine/io/"))]
    assert loaders
    for path in loaders:
        src = path.read_text(encoding="utf-8")
        assert "torch.load" not in src, rel(path)


# ----------------------------------------------------------------------------- raw HTML

def test_no_unsafe_allow_html_anywhere():
    bad = []
    for path in python_files():
        tree = parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and kwarg(node, "unsafe_allow_html") is not None:
                bad.append(f"{rel(path)}:{node.lineno}")
    for path in product_files():
        if "unsafe_allow_html" in path.read_text(encoding="utf-8"):
            bad.append(f"{rel(path)} mentions unsafe_allow_html")
    assert not bad, "\n".join(bad)


def test_no_raw_html_component_with_user_text():
    """st.html / components.html / iframe only ever with a constant (none today)."""
    bad = []
    for path in product_files():
        for name, node in calls(parse(path)):
            last = name.rsplit(".", 1)[-1]
            risky = (name in ("streamlit.html", "st.html")
                     or (last in ("html", "iframe", "declare_component")
                         and "components" in name))
            if risky and not all(isinstance(a, ast.Constant) for a in node.args):
                bad.append(f"{rel(path)}:{node.lineno} {name}")
    assert not bad, "raw HTML fed with non-constant text:\n" + "\n".join(bad)


def test_file_uploads_are_restricted():
    """If a page accepts files, only weights formats we parse safely or plain data, capped."""
    allowed = {"safetensors", "gguf", "csv", "json", "txt", "npz", "jsonl", "parquet"}
    uploaders = []
    for path in product_files():
        for name, node in calls(parse(path)):
            if name.endswith("file_uploader"):
                uploaders.append((path, node))
                types = kwarg(node, "type")
                assert types is not None, f"{rel(path)}:{node.lineno} accepts any file type"
                values = {str(e.value).lstrip(".").lower() for e in ast.walk(types)
                          if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                assert values and values <= allowed, (rel(path), values)
    if uploaders:
        cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
        assert 0 < cfg["server"]["maxUploadSize"] <= 200


# ----------------------------------------------------------------------------- layering

@pytest.mark.parametrize("banned, where", [
    ("transformers", PRODUCT),
    ("streamlit", ("engine/", "viz/")),
    ("plotly", ("engine/",)),
    ("torch", ("viz/",)),
])
def test_imports_stay_in_their_layer(banned, where):
    bad = []
    for path in product_files():
        if not any(rel(path).startswith(d) for d in where):
            continue
        for mod in imports(parse(path)):
            if mod == banned or mod.startswith(banned + "."):
                bad.append(f"{rel(path)} imports {mod}")
    assert not bad, "\n".join(bad)


# Which engine folders each engine folder may import: imports point one way,
# models → api → decode → core → fast, with io/text/errors/record beside them; nothing in the
# engine but the lessons, training and the CLI imports lessons or train.
ENGINE_BASE = {"engine.errors"}
MAY_IMPORT = {
    "engine/fast/": {"engine.fast"},
    "engine/core/": {"engine.core", "engine.fast"},
    "engine/decode/": {"engine.decode", "engine.core", "engine.fast"},
    "engine/io/": {"engine.io"} | ENGINE_BASE,
    "engine/text/": {"engine.text", "engine.io"} | ENGINE_BASE,
    "engine/datasets/": {"engine.datasets"},
    "engine/errors.py": set(),
    "engine/record.py": {"engine.core.block_key"} | ENGINE_BASE,
    "engine/variants.py": {"engine.core", "engine.fast", "engine.decode"} | ENGINE_BASE,
    "engine/contributions.py": {"engine.core"},
    "engine/api.py": {"engine.core", "engine.fast", "engine.decode", "engine.text", "engine.io",
                      "engine.record", "engine.variants", "engine.contributions"} | ENGINE_BASE,
    "engine/census/": {"engine.api", "engine.core", "engine.record", "engine.census",
                       "engine.models"} | ENGINE_BASE,
    "engine/analysis.py": {"engine.api", "engine.core", "engine.decode", "engine.record",
                           "engine.variants"} | ENGINE_BASE,
    "engine/models/": {"engine.models", "engine.api", "engine.core", "engine.fast",
                       "engine.decode", "engine.text", "engine.io", "engine.record",
                       "engine.variants", "engine.datasets"} | ENGINE_BASE,
}
NEVER_FROM_ENGINE = ("engine.lessons", "engine.train")


def engine_modules(path: Path) -> list[str]:
    """The engine modules a file imports, `from engine.io import gguf` read as engine.io.gguf."""
    found = []
    for node in ast.walk(parse(path)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            for alias in node.names:
                sub = ROOT / Path(*node.module.split("."), alias.name)
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    names.append(f"{node.module}.{alias.name}")
            if len(names) > 1:
                names = names[1:]  # the submodules themselves, not their package
        found += [n for n in names if n == "engine" or n.startswith("engine.")]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_engine_folders_import_only_what_their_layer_may():
    bad = []
    for path in product_files():
        where = rel(path)
        if not where.startswith("engine/"):
            continue
        mods = engine_modules(path)
        rule = next((allowed for prefix, allowed in MAY_IMPORT.items()
                     if where.startswith(prefix)), None)
        for mod in mods:
            if rule is not None and not any(mod == a or mod.startswith(a + ".") for a in rule):
                bad.append(f"{where} imports {mod}")
            if (mod.startswith(NEVER_FROM_ENGINE)
                    and not where.startswith(("engine/lessons/", "engine/train/"))
                    and where != "engine/__main__.py"):
                bad.append(f"{where} imports {mod} (lessons and training sit outside the engine)")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_inside_the_engine():
    """Counting imports inside functions too: a late import hides a cycle, it does not
    remove it."""
    graph: dict[str, set[str]] = {}
    for path in product_files():
        if rel(path).startswith("engine/"):
            graph[module_name(path)] = {m for m in engine_modules(path)
                                        if m != "engine"} - {module_name(path)}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" → ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_viz_knows_nothing_of_the_engine_and_pages_nothing_of_torch():
    bad = []
    for path in product_files():
        where = rel(path)
        for mod in imports(parse(path)):
            if where.startswith("viz/") and (mod == "engine" or mod.startswith("engine.")):
                bad.append(f"{where} imports {mod}")
            if where.startswith(("app_pages/", "app.py")) and mod.split(".")[0] == "torch":
                bad.append(f"{where} imports {mod}")
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------- XSRF

def test_config_turns_xsrf_protection_on():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"].get("enableCORS", True) is True  # XSRF needs CORS protection on


def test_nothing_turns_xsrf_protection_off():
    pattern = re.compile(
        r"(enableXsrfProtection|enable_xsrf_protection|ENABLE_XSRF_PROTECTION)"
        r"[\"'\s:=]+(false|0|no)\b", re.IGNORECASE)
    bad = []
    for path in tracked_files():
        if path == THIS or path.suffix not in (".py", ".sh", ".toml", ".cfg", ".ini", ".yml",
                                               ".yaml", ".md", ".txt", ""):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        bad += [f"{rel(path)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not bad, "\n".join(bad)


def test_streamlit_reads_xsrf_on_from_the_repo_config(tmp_path):
    """What Streamlit itself resolves, run from the repo root as the README's command is
    (a clean HOME, so no user-level config can mask the repo's)."""
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    cmd = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([*cmd, "config", "show"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    i = lines.index("enableXsrfProtection = true")
    assert ".streamlit/config.toml" in "\n".join(lines[max(0, i - 3): i])
