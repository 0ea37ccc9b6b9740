"""The import structure: each layer of accel imports only layers below it,
no module imports accel lazily, and no modules import each other in a
circle (README's architecture section draws these layers)."""

import ast
import os

ACCEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                     "accel")

# Floor of each top-level part of accel; a part may import only parts on
# lower floors (and itself).
FLOORS = {
    "errors": 0,
    "spec": 1, "registry": 1, "notebook": 1, "parallel": 1,
    "models": 2,
    "data": 3, "optim": 3,
    "selection": 4,
    "train": 5,
    "meta": 6, "sweep": 6,
    "bench": 7,
}


def _modules():
  """{dotted module name: path} of every module under accel/."""
  out = {}
  for root, _, files in os.walk(ACCEL):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(root, f)
        rel = os.path.relpath(path, os.path.dirname(ACCEL))[:-3]
        name = rel.replace(os.sep, ".")
        out[name.removesuffix(".__init__")] = path
  return out


def _imports(path, modules):
  """[(imported accel module, line, at module level)] of one file."""
  tree = ast.parse(open(path).read())
  top = set(map(id, tree.body))
  found = []
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from accel.x import y`: y is a module when a file says so.
      names = [f"{node.module}.{a.name}"
               if f"{node.module}.{a.name}" in modules else node.module
               for a in node.names]
    for name in names:
      if name == "accel" or name.startswith("accel."):
        found.append((name, node.lineno, id(node) in top))
  return found


def _part(module: str) -> str:
  return module.split(".")[1] if module.count(".") else ""


def test_every_part_of_accel_has_a_floor():
  parts = {_part(m) for m in _modules() if m != "accel"}
  assert parts == set(FLOORS), sorted(parts ^ set(FLOORS))


def test_imports_run_down_the_layers_and_only_at_module_level():
  modules = _modules()
  wrong = []
  for name, path in modules.items():
    for target, line, at_top in _imports(path, modules):
      where = f"{os.path.relpath(path, ACCEL)}:{line} imports {target}"
      if not at_top:
        wrong.append(f"{where} inside a function")
      src, dst = _part(name), _part(target)
      if dst and src and src != dst and FLOORS[dst] >= FLOORS[src]:
        wrong.append(f"{where}: floor {FLOORS[src]} -> {FLOORS[dst]}")
  assert not wrong, "\n".join(wrong)


def test_no_modules_import_each_other_in_a_circle():
  modules = _modules()
  graph = {m: {t for t, _, _ in _imports(p, modules) if t in modules}
           for m, p in modules.items()}
  # A package's __init__ only re-exports its own modules: an import of the
  # package reaches them, but they never need the package itself.
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(graph[m]):
      if state.get(t) == "open":
        raise AssertionError("circle: " + " -> ".join(
            stack[stack.index(t):] + [t]))
      if t not in state:
        visit(t)
    stack.pop()
    state[m] = "done"

  for m in sorted(graph):
    if m not in state:
      visit(m)
