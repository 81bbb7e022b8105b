"""CEL's operators for cel-python, where cel-python 0.5 departs from the CEL spec.

cel-python implements equality, ordering, ``in``, ``size`` and ``&&``/``||`` on Python's own operators,
which differs from the spec (google/cel-spec, tests/simple/testdata) in these cases, all of which a row
filter meets as soon as a field is null or holds an unexpected type:

- heterogeneous equality (comparisons.textproto ``eq_mixed_types``, ``eq_list_elem_mixed_types``,
  ``not_eq_dyn_int_null``, ``ne_mixed_types``): ``null != 1`` and ``"a" == 1`` are errors in cel-python,
  false in CEL; ``1 == 1.0`` is an error in cel-python, true in CEL; ``true == 1`` is true in
  cel-python, false in CEL;
- cross-type numeric ordering (``lt_dyn_int_double``, ``not_lt_dyn_int_big_lossy_double``): ``1 < 2.0``
  is an error in cel-python; ``true < 1`` is false in cel-python, an error in CEL (``lt_mixed_types_error``);
- ``in`` (lists.textproto ``in_list`` with ``dyn(3.0) in [5, 4, 3, 2, 1]``; fields.textproto
  ``mixed_numbers_and_keys_present``): an element of another type is an error in cel-python; a value
  that cannot be a map key (null, bytes, a list or a map: langdef "Aggregate Values") looked up in a map
  is an error in CEL (cel-cpp: "no matching overloads"), false in cel-python;
- ``size(null)`` is 0 in cel-python, no matching overload in CEL;
- ``'horses' && true`` is ``'horses'`` in cel-python, an error in CEL (logic.textproto ``no_overload``);
- ``contains``/``startsWith``/``endsWith`` accept bytes and lists in cel-python; CEL defines them on
  strings only (string.textproto ``contains``, ``starts_with``, ``ends_with``), anything else is an error.

``spec_functions`` returns overrides for cel-python's function table (``Environment.program(functions=)``)
so the cel engine gives the same answers as the subset. They return cel-python values, pass errors on
(a ``CELEvalError`` operand is the result), and raise ``TypeError`` for "no matching overload", which
cel-python turns into an error value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any


def spec_functions(celtypes: Any, eval_error: type[Exception]) -> dict[str, Callable[..., Any]]:
    """cel-python function-table entries that follow the CEL spec (see the module docstring)."""
    boolean, string, raw = celtypes.BoolType, celtypes.StringType, celtypes.BytesType
    integer, double = celtypes.IntType, celtypes.DoubleType
    list_, map_ = celtypes.ListType, celtypes.MapType

    def kind(v: Any) -> Any:
        # By Python base class: cel-python's own arithmetic returns plain str/int/float at times.
        if isinstance(v, bool | boolean):  # before numbers: bool and BoolType are ints
            return boolean
        if isinstance(v, int | float):
            return double
        for base, cel_type in ((str, string), (bytes, raw), (list, list_), (dict, map_)):
            if isinstance(v, base):
                return cel_type
        return type(v)

    def number(v: Any) -> int | float:
        return float(v) if isinstance(v, float) else int(v)

    def equal(a: Any, b: Any) -> bool:
        k = kind(a)
        if k is not kind(b):
            return False
        if k is double:
            x, y = number(a), number(b)
            return float(x) == float(y) if type(x) is not type(y) else x == y
        if k is list_:
            return len(a) == len(b) and all(map(equal, a, b))
        if k is map_:
            return len(a) == len(b) and all(key in b and equal(value, b[key]) for key, value in a.items())
        if a is None:
            return True
        return bool(a == b)

    def strict(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def apply(a: Any, b: Any) -> Any:
            if isinstance(a, eval_error):
                return a
            if isinstance(b, eval_error):
                return b
            return fn(a, b)

        return apply

    def order(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
        def ordered(a: Any, b: Any) -> Any:
            k = kind(a)
            if k is not kind(b) or k not in (boolean, double, string, raw):
                if k is kind(b) and k not in (list_, map_, type(None)):
                    return boolean(compare(a, b))  # timestamps, durations: as cel-python does
                raise TypeError(f"no matching overload for {type(a).__name__} and {type(b).__name__}")
            if k is double:
                x, y = number(a), number(b)
                if type(x) is not type(y):
                    x, y = float(x), float(y)
                return boolean(compare(x, y))
            if k is boolean:
                return boolean(compare(bool(a), bool(b)))
            return boolean(compare(a, b))

        return strict(ordered)

    def contains(item: Any, container: Any) -> Any:
        if isinstance(container, list):
            return boolean(any(equal(item, element) for element in container))
        if isinstance(container, dict) and not (item is None or isinstance(item, bytes | list | dict)):
            return boolean(any(equal(item, key) for key in container))  # a null, bytes, list or map is no key
        raise TypeError(f"no matching overload for {type(item).__name__} in {type(container).__name__}")

    def size(value: Any) -> Any:
        if isinstance(value, eval_error):
            return value
        if isinstance(value, str | bytes | list | dict):
            return integer(len(value))
        raise TypeError(f"no matching overload for size({type(value).__name__})")

    def logic(absorbing: bool) -> Callable[[Any, Any], Any]:
        def combine(a: Any, b: Any) -> Any:
            for v in (a, b):
                if isinstance(v, bool | boolean) and bool(v) is absorbing:
                    return boolean(absorbing)
            if isinstance(a, bool | boolean) and isinstance(b, bool | boolean):
                return boolean(not absorbing)
            for v in (a, b):
                if isinstance(v, eval_error):
                    return v
            raise TypeError("no matching overload for a logical operator")

        return combine

    def text_method(method: Callable[[str, str], bool]) -> Callable[[Any, Any], Any]:
        def apply(target: Any, arg: Any) -> Any:
            if isinstance(target, str) and isinstance(arg, str):
                return boolean(method(target, arg))
            raise TypeError(f"no matching overload for {type(target).__name__} and {type(arg).__name__}")

        return strict(apply)

    return {
        "contains": text_method(str.__contains__),
        "startsWith": text_method(str.startswith),
        "endsWith": text_method(str.endswith),
        "_==_": strict(lambda a, b: boolean(equal(a, b))),
        "_!=_": strict(lambda a, b: boolean(not equal(a, b))),
        "_<_": order(operator.lt),
        "_<=_": order(operator.le),
        "_>_": order(operator.gt),
        "_>=_": order(operator.ge),
        "_in_": strict(contains),
        "size": size,
        "_&&_": logic(absorbing=False),
        "_||_": logic(absorbing=True),
    }
