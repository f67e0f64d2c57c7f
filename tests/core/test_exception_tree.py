"""The tree `app/core/exceptions.py` draws is the code's: every public exception the app
defines is in it, under the parent it really has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import app
from app.core import exceptions


def _drawn() -> dict[str, str]:
    """Each name in the docstring's tree, and its parent in the drawing."""
    doc = exceptions.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[str] = ["Exception"]
    for line in doc.splitlines():
        found = re.search(r"── (\w+)", line)
        if found is None:
            continue
        depth = line.index("──") // 4  # four columns per level, the root's branches at 1
        del stack[depth:]
        parents[found.group(1)] = stack[-1]
        stack.append(found.group(1))
    return parents


def _defined() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if module.name.startswith("app.static"):
            continue
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == loaded.__name__
                and not name.startswith("_")
            ):
                classes[name] = value
    return classes


def _app_parent(cls: type[BaseException]) -> str:
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("app."):
            return base.__name__
    return "Exception"


def test_every_public_exception_is_drawn_under_its_real_parent() -> None:
    drawn, defined = _drawn(), _defined()
    assert sorted(set(defined) - set(drawn)) == []  # none missing from the drawing
    assert sorted(set(drawn) - set(defined)) == []  # nothing drawn that is not defined
    wrong = {
        name: (drawn[name], _app_parent(cls))
        for name, cls in defined.items()
        if drawn[name] != _app_parent(cls)
    }
    assert wrong == {}
