"""The coupling drives the backbone env through its public interface only.

``pcnalloc.twolayer.coupling`` injects access-derived requests with
``PowerCommEnv.schedule_external`` and reads ``current_is_external``; reaching for an
underscore member (``env._push``, ``self._req``, ``getattr(env, "_events")``, an overridden
``_handle``, ``from ... import _x``) ties it to the env's internals again, so an AST walk over
the module refuses any of them. Dunders (``super().__init__``) are the language's, not the env's.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

import pcnalloc.twolayer.coupling as coupling
from pcnalloc.envs.power_comm import PowerCommEnv

_REFLECT = {"getattr", "setattr", "hasattr", "delattr"}
_ENV_PRIVATE = {n for n in dir(PowerCommEnv) if n.startswith("_") and not n.endswith("__")}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """``line: what`` for every use of a private member in ``source``.

    Flags ``x._name`` and ``x.__dict__``, ``getattr``-style reflection on a private name,
    ``vars(...)``, importing a private name and defining a method that overrides a private
    member of ``PowerCommEnv`` (``_handle``). The module's own private helpers (the top-level
    ``_coupled_env_class``, a pydantic validator) are defined and called by bare name, which
    is not flagged.
    """
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and (_private(node.attr) or node.attr == "__dict__"):
            found.append((line, f".{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _REFLECT and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if _private(arg.value):
                        found.append((line, f"{node.func.id}(..., {arg.value!r})"))
            elif node.func.id == "vars":
                found.append((line, "vars(...)"))
        elif isinstance(node, ast.ImportFrom):
            found += [(line, f"import {a.name}") for a in node.names if _private(a.name)]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    if _private(item.name) and item.name in _ENV_PRIVATE:
                        found.append((item.lineno, f"def {item.name}"))
    return [f"{ln}: {what}" for ln, what in sorted(found)]


def test_the_coupling_uses_no_private_member() -> None:
    assert private_uses(inspect.getsource(coupling)) == []


PLANTED = {
    "attribute": "def f(env):\n    env._push(0.0, 7, None)\n",
    "self attribute": "class E:\n    def g(self):\n        return self._req\n",
    "override": "class E:\n    def _handle(self, t, kind, payload):\n        pass\n",
    "reflection": "def f(env):\n    return getattr(env, '_events')\n",
    "dict": "def f(env):\n    return env.__dict__['_seq']\n",
    "vars": "def f(env):\n    return vars(env)['_seq']\n",
    "import": "from pcnalloc.envs.power_comm import _valid_flags\n",
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_a_planted_private_access_is_caught(kind: str) -> None:
    assert private_uses(PLANTED[kind]) != []


def test_a_private_access_planted_in_the_real_module_is_caught() -> None:
    src = inspect.getsource(coupling)
    anchor = "            self.schedule_external(self.access_requests)\n"
    assert anchor in src
    planted = src.replace(anchor, anchor + "            self._push(self.now, 7, None)\n")
    assert private_uses(planted) == [f"{_line_of(planted, 'self._push')}: ._push"]


def _line_of(src: str, needle: str) -> int:
    return next(i for i, ln in enumerate(src.splitlines(), 1) if needle in ln)


def test_own_helpers_pass_but_the_same_name_on_an_object_does_not() -> None:
    src = textwrap.dedent(
        """
        def _helper():
            return 1

        class E:
            def _own(self):
                return 0

            def run(self, env):
                return _helper() + env._helper()
        """
    )
    assert private_uses(src) == ["10: ._helper"]
