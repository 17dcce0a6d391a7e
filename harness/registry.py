"""One small generic registry: components are registered by name and chosen by name in configs, and the check of
a config's argument against the type a component's parameter declares."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownComponentError(KeyError):
    """A config named a component that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to components of one kind (rewards, advantage estimators, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REWARDS.register("exact_match")`."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._items, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, component) pairs in the order they were registered."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items


# ----------------------------------------------------------------------------- arguments of components


def arguments_problem(signature, given: dict, validate: Callable[..., object] | None = None,
                      supplied: tuple[str, ...] = ()) -> tuple[str, str] | None:  # fmt: skip
    """(argument, why) when `given` are not the arguments of a component's factory of this `signature`: an unknown
    or missing one, a value of the wrong type, or what `validate` says (argument ""); None when they are. The
    parameters named in `supplied` are the harness's to pass (a trained model's folder, a corpus), not the config's.

    >>> import inspect
    >>> sig = inspect.signature(lambda n, top: None)
    >>> arguments_problem(sig, {"n": 2}), arguments_problem(sig, {"n": 2, "k": 1}, supplied=("top",))
    (('top', 'required argument missing'), ('k', 'unknown argument (known: n)'))
    """
    if signature is None:
        return None
    params = {n: p for n, p in signature.parameters.items() if n not in supplied}
    for name, value in given.items():
        if name not in params:
            return str(name), f"unknown argument (known: {', '.join(params) or 'none'})"
        if problem := annotation_problem(value, params[name].annotation):
            return name, problem
    for name, p in params.items():
        if p.default is p.empty and name not in given:
            return name, "required argument missing"
    if validate is not None:
        try:
            validate(**given)
        except (ValueError, KeyError, TypeError) as e:
            return "", str(e)
    return None


def annotation_problem(value: Any, annotation: Any) -> str | None:
    """Why `value` (as YAML gave it) does not fit a component's parameter annotated `annotation` (a string under
    `from __future__ import annotations`); None if it does, or if the annotation is not a plain data type.

    Numbers must be finite; an int is a number; a bool is neither a number nor an integer.

    >>> annotation_problem(0.5, "float"), annotation_problem(True, "float"), annotation_problem("x", "int | None")
    (None, 'expected a number, got True (bool)', "expected an integer or null, got 'x' (str)")
    >>> annotation_problem(float("nan"), "float"), annotation_problem("max", 'Literal["mean", "min"]')
    ('expected a finite number, got nan', "expected one of 'mean', 'min', got 'max' (str)")
    """
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    options = [t.strip() for t in text.split("|")]
    nullable = "None" in options
    options = [t for t in options if t != "None"]
    if value is None:
        return None if nullable or not options else f"expected {_describe(options)}, got null"
    problems = [_one_annotation(value, t) for t in options]
    if not options or any(p is None for p in problems):
        return None
    finite = next((p for p in problems if p and "finite" in p), None)
    return finite or f"expected {_describe(options)}{' or null' if nullable else ''}, got {shown(value)}"


def _one_annotation(value: Any, t: str) -> str | None:
    base = t.split("[", 1)[0]
    if base == "Literal":
        import ast

        choices = ast.literal_eval("(" + t[len("Literal[") : -1] + ",)")
        return None if value in choices else "not a choice"
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number"
        return None if math.isfinite(value) else f"expected a finite number, got {value!r}"
    checks = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool), "bool": lambda v: isinstance(v, bool),
              "str": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, list),
              "dict": lambda v: isinstance(v, dict)}  # fmt: skip
    return None if base not in checks or checks[base](value) else f"not {base}"


def _describe(options: list[str]) -> str:
    words = {"float": "a number", "int": "an integer", "bool": "a boolean", "str": "a string", "list": "a list",
             "dict": "a mapping"}  # fmt: skip
    out = []
    for t in options:
        if t.startswith("Literal["):
            import ast

            out.append("one of " + ", ".join(map(repr, ast.literal_eval("(" + t[len("Literal[") : -1] + ",)"))))
        else:
            out.append(words.get(t.split("[", 1)[0], t))
    return " or ".join(out)


def shown(value: Any) -> str:
    """A value as an error message shows it: `a mapping`, `a list`, or its repr (at most 80 characters) and type.

    >>> shown({}), shown(3), shown("x" * 100)[-10:]
    ('a mapping', '3 (int)', 'xxxx (str)')
    """
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r:.80} ({type(value).__name__})"
