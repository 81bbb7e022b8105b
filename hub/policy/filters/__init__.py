"""Row filters: which records of a resource a subscription receives, written in CEL.

CEL (Common Expression Language) is what Confluent data contracts and Conduktor use for rules, so an
integrator's filter reads like theirs::

    district == "浦东新区" && status in ["存续", "在业"]
    record.credit_code.startsWith("9131") && !(record.status == "注销")

Fields are referenced by bare name (``district``) or as ``record.district``; ``record`` is the record
being filtered (Confluent writes ``message.x``; here it is ``record.x``). A field of an Avro record type
is reached with dots (``record.address.city``). Dates and timestamps (Avro logical types) are seen as
ISO-8601 text so they compare naturally with string literals: a ``date`` as ``"1985-03-07"``, a
``timestamp-*`` as ``"2024-05-01T08:30:00.000Z"`` (UTC, milliseconds), so
``registered_on >= "2024-01-01"`` works.

Two engines, chosen by ``compile_filter``:

- ``"subset"``: a CEL-compatible safe subset parsed here and compiled once into nested Python closures
  (never ``eval``/``exec``): literals (strings in single or double quotes with CEL escapes, int, double,
  bool, null, lists), field references, ``== != < <= > >=``, ``in`` (list or map membership), ``&& || !``,
  parentheses, ``s.startsWith(t)``, ``s.endsWith(t)``, ``s.contains(t)``, ``size(x)`` / ``x.size()``.
  Precedence as in CEL: ``!`` binds tightest, then comparisons and ``in``, then ``&&``, then ``||``.
  It costs a few hundred nanoseconds per record (see tests/bench/filter_cost.py).
- ``"cel"``: anything else that is valid CEL (arithmetic, ``?:``, ``matches``, ``has``, macros such as
  ``exists``) runs on cel-python's interpreter, compiled once per plan but about a thousand times slower
  (0.2-0.4 ms per record, measured): keep hot filters inside the subset. The interpreter is used, not
  cel-python's transpiler, which would ``exec`` generated Python.

Semantics are CEL's (checked against Google's CEL C++ runtime by tests/unit/test_filters_differential.py):

- Null: ``x == null`` is true only for null; a null equals nothing else, so ``x != "a"`` is true when
  ``x`` is null (CEL's heterogeneous equality). Ordering (``< <= > >=``), ``startsWith``/``endsWith``/
  ``contains``, ``size`` and ``!`` on a null, ``in`` looking a null up in a map, and a null used as a
  condition are CEL errors. A field the record lacks is an error too ("no such key"), not null.
- An error is no match: ``RowFilter`` counts it, and ``RowFilter.evaluate`` tells it apart from a plain
  no match (``FilterOutcome.ERROR``). ``!`` and ``==`` pass an error on, so ``!(age < 18)`` does not
  match a record whose ``age`` is null.
- Equality is typed: ``true == 1`` is false; ``1 == 1.0`` is true (numbers compare by value).
- ``&&`` and ``||`` absorb errors as CEL does, commutatively: ``false && <error>`` and
  ``<error> && false`` are both false, ``true || <error>`` is true.
- Errors: an expression that does not compile raises ``FilterError`` with the 1-based ``column``; when
  Avro ``field_types`` are given, unknown fields and comparisons between incompatible types (a string
  field against a number) are compile errors too. A record the filter cannot be evaluated on (a value of
  an unexpected type) makes ``RowFilter.__call__`` raise ``FilterRuntimeError``, which is an
  ``InvalidRecord``: the engine dead-letters that record and goes on; the hub never crashes on one.

The package, one module per stage: ``lexer`` (tokens), ``parser`` (syntax tree), ``checker`` (static
types), ``compiler`` (closures, and ``compile_filter``), ``operators`` and ``values`` (what runs per
record), ``cel`` (the cel-python fallback), ``row_filter`` (the compiled object).
"""

from __future__ import annotations

from hub.policy.filters.compiler import MAX_EXPRESSION_LENGTH, compile_filter
from hub.policy.filters.row_filter import Engine, FilterOutcome, Getter, Record, RowFilter

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "Engine",
    "FilterOutcome",
    "Getter",
    "Record",
    "RowFilter",
    "compile_filter",
]
