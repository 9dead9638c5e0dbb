"""
Who imports whom in this repository, read from the source with ast (nothing is executed).

Used by the layout tests: the rule between the runtime's rooms and the absence of import cycles are
properties of the source text, so they are checked on every module, including ones no test imports.
"""

import ast
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent


def module_name(path: Path, root: Path = REPO) -> str:
    """Dotted module name of a source file below root (a package's __init__.py is the package itself)."""
    parts = list(path.relative_to(root).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """Absolute module named by a (possibly relative) from-import inside `module`."""
    if not node.level:
        return node.module or ''
    base = module.split('.') if is_package else module.split('.')[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def imports_of(path: Path, root: Path = REPO) -> Iterator[tuple[int, str]]:
    """
    Yield (line, dotted name) for every module the file imports, at any depth (function-level too).

    `from pkg import name` yields both pkg and pkg.name: name may be a submodule, and a rule about
    submodules must see `from fusion_ros import ros` as an import of fusion_ros.ros.
    """
    module, is_package = module_name(path, root), path.name == '__init__.py'
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            yield node.lineno, target
            yield from ((node.lineno, f'{target}.{alias.name}') for alias in node.names if alias.name != '*')


def source_files(*folders: str, root: Path = REPO) -> list[Path]:
    """Every .py file under the given top-level folders, sorted so reports are stable."""
    return sorted(p for folder in folders for p in (root / folder).rglob('*.py') if '__pycache__' not in p.parts)


def module_graph(*folders: str, root: Path = REPO) -> dict[str, set[str]]:
    """Edges module -> modules of this repository it imports (third-party names are dropped)."""
    files = source_files(*folders, root=root)
    known = {module_name(p, root) for p in files}
    graph = {}
    for path in files:
        targets = {name for _, name in imports_of(path, root)}
        graph[module_name(path, root)] = {t for t in targets if t in known} - {module_name(path, root)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none (iterative depth-first search)."""
    state = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the current path, 2 finished
    for start in sorted(graph):
        if state[start]:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif state.get(nxt) == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return []
