"""
What the project's code touches of a foreign module (TensorRT, cudart), found by static analysis.

A value reached from the module is described by its path from the module root: a tuple
of steps, ('attr', name) or ('call', args), so ``trt.Builder(logger).create_network(0)``
is attr Builder, call, attr create_network, call. Roots are the names the code binds the
module to (``trt``, ``self.trt``, ``import_tensorrt()``). The analysis follows assignments
to local names and to ``self.<attr>``, arguments passed to the project's own functions and
methods, and their return values, to a fixed point; it is flow-insensitive (every binding of
a name counts). The paths are resolved against the real module elsewhere (tests/trt_probe.py),
so the list of what the code uses cannot go stale: it is read from the code each time.
"""

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Roots:
    """How code spells the module: bare names, ``self`` attributes, and functions that return it."""

    names: frozenset[str]
    self_attrs: frozenset[str]
    factories: frozenset[str]


TENSORRT = Roots(frozenset({'trt', 'tensorrt'}), frozenset({'trt'}), frozenset({'import_tensorrt'}))
CUDART = Roots(frozenset({'cudart'}), frozenset({'cudart'}), frozenset({'import_cudart'}))

Path_ = tuple   # a path: tuple of steps; a call step is ('call', positional arg paths, ((kw, arg path), ...), star)


@dataclass(frozen=True)
class Use:
    """One expression reaching into the module."""

    file: str
    line: int
    path: Path_


class _Function:
    """A function or method of the analysed code, with what flows into its parameters and out of it."""

    def __init__(self, node: ast.FunctionDef, cls: Optional[str], file: str):
        self.node, self.cls, self.file = node, cls, file
        args = node.args
        self.params = [a.arg for a in (*args.posonlyargs, *args.args)]
        self.kwonly = [a.arg for a in args.kwonlyargs]
        self.env: dict[str, set] = {}
        self.returns: set = set()


class UsageAnalysis:
    """Collects every path from `roots` used by the functions of `files`."""

    def __init__(self, files: Iterable[Path], roots: Roots):
        self.roots = roots
        self.functions: dict[str, list[_Function]] = {}
        self.self_env: dict[tuple[str, str], set] = {}
        for file in files:
            tree = ast.parse(Path(file).read_text(), str(file))
            rel = str(Path(file).resolve().relative_to(REPO))
            for node in tree.body:
                self._register(node, None, rel)
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        self._register(item, node.name, rel)
        self._solve()

    def _register(self, node: ast.AST, cls: Optional[str], file: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.functions.setdefault(node.name, []).append(_Function(node, cls, file))

    # -- paths of expressions ------------------------------------------------------------------
    def _call_step(self, call: ast.Call, fn: _Function) -> tuple:
        args = tuple(self._first(a, fn) for a in call.args if not isinstance(a, ast.Starred))
        kwargs = tuple((k.arg, self._first(k.value, fn)) for k in call.keywords if k.arg)
        star = any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)
        return ('call', args, kwargs, star)

    def _first(self, expr: ast.AST, fn: _Function) -> Optional[Path_]:
        """A path of an argument (the shortest, for a stable answer), or None when it is not the module's."""
        paths = self.paths(expr, fn)
        return min(paths, key=lambda p: (len(p), repr(p))) if paths else None

    def _callees(self, call: ast.Call, fn: _Function) -> list[_Function]:
        """The project functions a call may reach: f(...) by name, self.m(...) within the class."""
        func = call.func
        if isinstance(func, ast.Name):
            return [f for f in self.functions.get(func.id, []) if f.cls is None]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == 'self':
            return [f for f in self.functions.get(func.attr, []) if f.cls == fn.cls]
        return []

    def paths(self, expr: ast.AST, fn: _Function) -> set:
        """Every path the expression may hold."""
        roots = self.roots
        if isinstance(expr, ast.Name):
            return {()} if expr.id in roots.names else set(fn.env.get(expr.id, ()))
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == 'self' and fn.cls:
                if expr.attr in roots.self_attrs:
                    return {()}
                return set(self.self_env.get((fn.cls, expr.attr), ()))
            return {p + (('attr', expr.attr),) for p in self.paths(expr.value, fn)}
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Name) and expr.func.id in roots.factories:
                return {()}
            callees = self._callees(expr, fn)
            if callees:
                return set().union(*(c.returns for c in callees))
            step = self._call_step(expr, fn)
            return {p + (step,) for p in self.paths(expr.func, fn)}
        if isinstance(expr, ast.BoolOp):
            return set().union(*(self.paths(v, fn) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return self.paths(expr.body, fn) | self.paths(expr.orelse, fn)
        if isinstance(expr, ast.NamedExpr):
            return self.paths(expr.value, fn)
        return set()

    # -- fixed point over bindings -------------------------------------------------------------
    def _bind(self, target: ast.AST, values: set, fn: _Function) -> bool:
        if isinstance(target, ast.Name):
            env, key = fn.env, target.id
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
                target.value.id == 'self' and fn.cls:
            env, key = self.self_env, (fn.cls, target.attr)
        else:
            return False
        known = env.setdefault(key, set())
        if values <= known:
            return False
        known |= values
        return True

    def _pass(self, fn: _Function) -> bool:
        changed = False
        for node in ast.walk(fn.node):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                values = self.paths(node.value, fn)
                if values:
                    for target in targets:
                        changed |= self._bind(target, values, fn)
            elif isinstance(node, ast.Return) and node.value is not None:
                values = self.paths(node.value, fn)
                if not values <= fn.returns:
                    fn.returns |= values
                    changed = True
            elif isinstance(node, ast.Call):
                changed |= self._pass_arguments(node, fn)
        return changed

    def _pass_arguments(self, call: ast.Call, fn: _Function) -> bool:
        changed = False
        for callee in self._callees(call, fn):
            params = callee.params[1:] if callee.cls else callee.params
            pairs = list(zip(params, call.args)) + [(k.arg, k.value) for k in call.keywords if k.arg]
            for name, value in pairs:
                if name in params or name in callee.kwonly:
                    values = self.paths(value, fn)
                    if values and not values <= callee.env.get(name, set()):
                        callee.env.setdefault(name, set()).update(values)
                        changed = True
        return changed

    def _solve(self) -> None:
        for _ in range(20):
            if not any([self._pass(f) for fs in self.functions.values() for f in fs]):
                return
        raise RuntimeError('usage analysis did not reach a fixed point in 20 passes')

    # -- result --------------------------------------------------------------------------------
    def uses(self) -> list[Use]:
        """Every attribute or call expression that reaches into the module, once per file that makes it."""
        found = {}
        for fs in self.functions.values():
            for fn in fs:
                for node in ast.walk(fn.node):
                    if isinstance(node, (ast.Attribute, ast.Call)):
                        for path in self.paths(node, fn):
                            if path:   # per file: a path one file shares with another still names both
                                found.setdefault((fn.file, path), Use(fn.file, node.lineno, path))
        return sorted(found.values(), key=lambda u: (u.file, u.line, repr(u.path)))


def python_files(*folders: str) -> list[Path]:
    """The .py files of the given repository folders."""
    return sorted(p for folder in folders for p in (REPO / folder).rglob('*.py'))


def describe(path: Path_) -> str:
    """Readable form of a path, e.g. trt.Builder(1).create_network(1)."""
    text = 'module'
    for step in path:
        if step[0] == 'attr':
            text += f'.{step[1]}'
        else:
            parts = [describe(a) if a else '_' for a in step[1]] + [f'{k}={describe(v) if v else "_"}'
                                                                    for k, v in step[2]]
            text += f'({", ".join(parts)}{", *" if step[3] else ""})'
    return text


# -- what a test double offers ----------------------------------------------------------------
_MACHINERY = set(dir(object)) | {'__dict__', '__module__', '__weakref__', '__qualname__', '__annotations__',
                                 '__firstlineno__', '__static_attributes__'}


def _offered(name: str) -> bool:
    """Public names, and protocol dunders a real class may or may not have (e.g. __cuda_stream__, __int__)."""
    return not name.startswith('_') or (name.startswith('__') and name.endswith('__') and name not in _MACHINERY)


def _params(func, drop_self: bool) -> list[tuple[str, bool]]:
    """(name, has default) of each parameter, the way the probe compares them with the real overloads."""
    params = [(p.name, p.default is not p.empty) for p in inspect.signature(func).parameters.values()]
    return params[1:] if drop_self else params


def double_surface(*objects, constructible: bool = False) -> dict:
    """
    Everything the double offers, keyed by the real class each piece mirrors ('' = the module).

    Classes found as attributes of a module-like object are ones the code may construct, so
    their __init__ parameters count too; the double's own helper classes are made by factory
    methods (create_builder_config ...) and only their methods count.
    """
    surface: dict = {}
    pending = [(obj, constructible) for obj in objects]
    while pending:
        obj, made_by_code = pending.pop()
        entry = surface.setdefault(obj._mirrors, {'members': {}, 'methods': {}, 'properties': [], 'absent': []})
        entry['absent'] = sorted(set(entry['absent']) | set(getattr(obj, '_absent', ())))
        cls = obj if isinstance(obj, type) else type(obj)
        names = {n for klass in cls.__mro__[:-1] for n in vars(klass)} | set(getattr(obj, '__dict__', {}))
        for name in sorted(filter(_offered, names - {'__init__', '_mirrors', '_absent'})):
            static, value = inspect.getattr_static(obj, name), getattr(obj, name)
            if isinstance(static, property):
                entry['properties'].append(name)
            elif isinstance(value, type) and hasattr(value, '_mirrors'):
                entry['members'][name] = None
                pending.append((value, obj._mirrors == ''))
            elif callable(value):
                drop_self = isinstance(obj, type) and not isinstance(static, staticmethod)
                entry['methods'][name] = _params(value, drop_self)
            else:
                entry['members'][name] = value if isinstance(value, int) and not isinstance(value, bool) else None
        if made_by_code and isinstance(obj, type) and '__init__' in vars(obj):
            entry['methods']['__init__'] = _params(obj.__init__, drop_self=True)
    return surface
