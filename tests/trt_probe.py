"""
Resolve code paths and a test double's surface against a real Python extension module.

Run as a script in a subprocess that can import the real TensorRT bindings (see
tests/trt_bindings.py): reads {"uses": [...], "double": {...}} as JSON on stdin, writes
{"version", "problems", "checked"} on stdout. Imported directly for cuda-python, which is
installed in the dev environment. Only the standard library is used here, so the probe runs
with nothing on its path but the unpacked wheel.

Signatures come from pybind11 docstrings (``name(self: T, a: int, b: str = None) -> R``,
one line per overload) or, for plain Python and Cython functions, from inspect.signature.
A call binds when one overload accepts its positional count and keyword names and, where
an argument is itself a value of the module, its type.
"""

from dataclasses import dataclass, field
import importlib
import inspect
import json
import re
import sys
from typing import Any, Optional


@dataclass
class Param:
    """One parameter of a signature."""

    name: str
    type: str = ''
    has_default: bool = False


@dataclass
class Signature:
    """One overload: parameters after self, and the return type as written."""

    params: list[Param]
    returns: str = ''
    variadic: bool = False


@dataclass
class Value:
    """What a path step yields: 'module', 'class' (the class object), 'instance', 'callable', or 'opaque'."""

    kind: str
    obj: Any = None
    owner: Any = None          # for callables: the class the method belongs to (None for functions)
    what: str = ''


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets (types like Dict[str, int], defaults like <X: 0>)."""
    parts, depth, current = [], 0, ''
    for char in text:
        if char in '([{<':
            depth += 1
        elif char in ')]}>':
            depth -= 1
        if char == ',' and depth == 0:
            parts.append(current.strip())
            current = ''
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def _param(text: str) -> Param:
    name, _, rest = text.partition(':')
    annotation, eq, _ = rest.partition('=')
    if not rest:
        name, eq, _ = text.partition('=')
    return Param(name.strip(), annotation.strip(), bool(eq))


def docstring_signatures(name: str, doc: str, method: bool) -> list[Signature]:
    """Overloads of a pybind11 function from its docstring; `method` drops the self parameter."""
    found = []
    for match in re.finditer(rf'^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->\s*(.+?)\s*$', doc or '', re.MULTILINE):
        params = [_param(p) for p in _split_top(match.group(1))]
        if method and params:
            params = params[1:]
        found.append(Signature(params, match.group(2)))
    return found


def python_signatures(func: Any, method: bool) -> list[Signature]:
    """The one signature of a Python or Cython callable, from inspect."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    params, variadic = [], False
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            variadic = True
            continue
        params.append(Param(p.name, '' if p.annotation is p.empty else str(p.annotation), p.default is not p.empty))
    if method and params and params[0].name == 'self':
        params = params[1:]
    return [Signature(params, variadic=variadic)]


def signatures(func: Any, name: str, method: bool) -> list[Signature]:
    """pybind11 docstring overloads if any, else inspect's."""
    return docstring_signatures(name, getattr(func, '__doc__', '') or '', method) or python_signatures(func, method)


def binds(sig: Signature, nargs: int, keywords: list[str]) -> Optional[str]:
    """None when a call with nargs positionals and these keyword names binds to sig, else why not."""
    names = [p.name for p in sig.params]
    if sig.variadic:
        return None
    if nargs > len(names):
        return f'{nargs} positional arguments, at most {len(names)} accepted'
    for kw in keywords:
        if kw not in names[nargs:]:
            return f'no parameter {kw!r} after the positional ones'
    missing = [p.name for p in sig.params[nargs:] if not p.has_default and p.name not in keywords]
    return f'missing {missing}' if missing else None


@dataclass
class Resolver:
    """Walks paths of steps from the module and records every problem."""

    module: Any
    problems: list[str] = field(default_factory=list)
    checked: set = field(default_factory=set)

    def named_type(self, text: str) -> Optional[type]:
        """The module's class a type annotation names (tensorrt_bindings.tensorrt.ILogger.Severity, cudaMemcpyKind)."""
        text = text.strip().strip("'")
        if not re.fullmatch(r'[A-Za-z_][\w.]*', text):
            return None
        parts = text.split('.')
        for start, name in enumerate(parts):        # skip the module path the annotation starts with
            if isinstance(getattr(self.module, name, None), type):
                obj = self.module
                for part in parts[start:]:
                    obj = getattr(obj, part, None)
                return obj if isinstance(obj, type) else None
        return None

    def _returned(self, text: str) -> Value:
        cls = self.named_type(re.sub(r'^(Optional|typing\.Optional)\[(.*)\]$', r'\2', text.strip()))
        return Value('instance', cls) if cls else Value('opaque', what=text or 'an unknown value')

    def attr(self, value: Value, name: str, where: str) -> Value:
        """Look up one attribute; missing ones are problems."""
        if value.kind == 'opaque':
            self.problems.append(f'{where}: .{name} on {value.what}, which the bindings do not type')
            return Value('opaque', what='?')
        holder = value.obj
        label = getattr(holder, '__name__', str(holder))
        if not hasattr(holder, name):
            self.problems.append(f'{where}: {label} has no attribute {name!r}')
            return Value('opaque', what='?')
        self.checked.add(f'{label}.{name}')
        static, found = inspect.getattr_static(holder, name, None), getattr(holder, name)
        if value.kind == 'instance' and isinstance(static, property):
            match = re.search(r'->\s*(\S+)', static.fget.__doc__ or '')
            return self._returned(match.group(1)) if match else Value('opaque', what=f'property {label}.{name}')
        if isinstance(found, type):
            return Value('class', found)
        if callable(found):
            return Value('callable', found, holder if isinstance(holder, type) else None, f'{label}.{name}')
        if isinstance(found, (str, int, float, bytes)) and not hasattr(type(found), '__members__'):
            return Value('opaque', what=f'{label}.{name} = {found!r}')
        return Value('instance', type(found))

    def call(self, value: Value, step: list, where: str) -> Value:
        """Check one call against the real overloads; returns the result's type."""
        _, args, kwargs, star = step
        if value.kind == 'class':
            init = value.obj.__init__
            sigs, label = signatures(init, '__init__', method=True), value.obj.__name__
        elif value.kind == 'callable':
            method = value.owner is not None and not inspect.isfunction(value.obj)
            sigs, label = signatures(value.obj, value.what.rsplit('.', 1)[-1], method), value.what
        else:
            self.problems.append(f'{where}: calls {value.what or value.kind}, which is not callable as far as known')
            return Value('opaque', what='?')
        arg_values = [self.resolve(a, where) if a else None for a in args]
        kw_values = {k: (self.resolve(v, where) if v else None) for k, v in kwargs}
        if not sigs:
            self.problems.append(f'{where}: no signature found for {label}')
            return Value('opaque', what='?')
        reasons = []
        for sig in sigs:
            reason = None if star else binds(sig, len(args), list(kw_values))
            reason = reason or self._types(sig, arg_values, kw_values)
            if reason is None:
                self.checked.add(f'{label}({len(args)} args, {sorted(kw_values)})')
                return Value('instance', value.obj) if value.kind == 'class' else self._returned(sig.returns)
            reasons.append(reason)
        self.problems.append(f'{where}: {label} refuses the call: ' + ' | '.join(reasons))
        return Value('opaque', what='?')

    def _types(self, sig: Signature, args: list, kwargs: dict) -> Optional[str]:
        """Arguments that are values of this module must be instances of the parameter's class."""
        pairs = list(zip(sig.params, args)) + [(p, kwargs[p.name]) for p in sig.params if p.name in kwargs]
        for param, given in pairs:
            wanted = self.named_type(param.type)
            if given is not None and given.kind == 'instance' and wanted and given.obj and \
                    not issubclass(given.obj, wanted):
                return f'{param.name} wants {wanted.__name__}, gets {given.obj.__name__}'
        return None

    def resolve(self, path: list, where: str) -> Value:
        """Follow a whole path from the module."""
        value = Value('module', self.module)
        for step in path:
            value = self.attr(value, step[1], where) if step[0] == 'attr' else self.call(value, step, where)
        return value

    def check_double(self, double: dict) -> None:
        """Every public name of the double exists on the real class it mirrors, with compatible parameters."""
        for mirror, surface in double.items():
            real = self.module if mirror == '' else self.named_type(mirror)
            label = mirror or self.module.__name__
            if real is None:
                self.problems.append(f'double: the real module has no class {mirror!r}')
                continue
            for name, value in surface.get('members', {}).items():
                if not hasattr(real, name):
                    self.problems.append(f'double: {label}.{name} does not exist in the real module')
                elif value is not None and int(getattr(real, name)) != value:
                    self.problems.append(f'double: {label}.{name} is {value}, the real one {int(getattr(real, name))}')
            for name in surface.get('absent', []):
                if hasattr(real, name):
                    self.problems.append(f'double: {label}.{name} is modelled as absent, but this version has it')
            for name in surface.get('properties', []):
                if not isinstance(inspect.getattr_static(real, name, None), property):
                    self.problems.append(f'double: {label}.{name} is not a property of the real class')
            for name, params in surface.get('methods', {}).items():
                self._check_method(real, label, name, [Param(n, has_default=d) for n, d in params])

    def _check_method(self, real: Any, label: str, name: str, params: list[Param]) -> None:
        target = real.__init__ if name == '__init__' else getattr(real, name, None)
        if target is None:
            self.problems.append(f'double: {label}.{name} does not exist in the real module')
            return
        sigs = signatures(target, name, method=isinstance(real, type) and not inspect.isfunction(target)
                          or name == '__init__')
        for sig in sigs:
            same_names = [p.name for p in sig.params] == [p.name for p in params]
            if same_names and all(p.has_default <= q.has_default for p, q in zip(params, sig.params)):
                self.checked.add(f'double {label}.{name}')
                return
        real_text = ' | '.join('(' + ', '.join(p.name + ('=' if p.has_default else '') for p in s.params) + ')'
                               for s in sigs)
        mine = '(' + ', '.join(p.name + ('=' if p.has_default else '') for p in params) + ')'
        self.problems.append(f'double: {label}.{name}{mine} matches no real overload {real_text}')


def main() -> None:
    """Subprocess entry: resolve stdin's uses and double against tensorrt_bindings."""
    payload = json.load(sys.stdin)
    module = importlib.import_module(payload.get('module', 'tensorrt_bindings'))
    resolver = Resolver(module)
    for use in payload['uses']:
        resolver.resolve(use['path'], f"{use['file']}:{use['line']}")
    resolver.check_double(payload.get('double', {}))
    json.dump({'version': getattr(module, '__version__', '?'), 'problems': sorted(set(resolver.problems)),
               'checked': sorted(resolver.checked)}, sys.stdout)


if __name__ == '__main__':
    main()
