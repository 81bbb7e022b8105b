"""YAML loading that remembers the line of every value, so errors can say file:line.

Config files are read with ruamel.yaml's round-trip loader, which keeps the line of every key and item,
under these rules:

- YAML 1.2 core schema: ``no``/``yes``/``on``/``off`` stay strings, ``0123`` is the integer 123 and
  octal needs ``0o123``. A ``%YAML 1.1`` directive is refused rather than honoured, so a file cannot
  switch the meaning of its own scalars. Timestamps are not a 1.2 type: they stay strings and pydantic
  reads them (with the hub's timezone for naive ones, see ``hub.config.models``).
- A key given twice in one mapping is an error naming both lines (never "last one wins").
- Merge keys (``<<: *base``) are refused: they are not part of YAML 1.2, and a value inherited from
  elsewhere in the file has no line of its own to point an error at. Plain aliases (``*name``) work.
- An alias that refers to a node containing it, a document whose aliases expand to far more values
  than the file holds (a "billion laughs" bomb), nesting deeper than ``MAX_DEPTH`` and a file larger
  than ``MAX_BYTES`` are refused with a message, never a traceback, a hang or exhausted memory.
- The file must be UTF-8 (a UTF-8 byte-order mark is allowed and ignored).

The data handed on is plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``: none of
ruamel's commented containers or scalar subclasses reach pydantic.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from hub.core.errors import ConfigProblem

Path_ = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
"""Largest config file read. Pure-Python YAML parses about 100 kB/s; many files may share a folder."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences (the config models need fewer than 10 levels)."""
_EXPANSION_FACTOR = 10
_EXPANSION_FLOOR = 10_000
"""Aliases may expand a document to at most ``10 × bytes + 10,000`` values: generous for reused lists,
and a bomb of nine nested aliases (10⁹ values from one kilobyte) stops at once."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
# The YAML 1.2 core schema (timestamps are resolved by ruamel and handed on as text). Any other tag,
# explicit or not (!include, !!binary, !!set, !!python/...), is refused where it is written.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)
_YAML_DIRECTIVE = re.compile(r"^%YAML[ \t]+(\S+)", re.MULTILINE)
# ruamel's scanner spends seconds on a long run of "[[[[" before its depth limit triggers; no config
# has such a run, so it is refused before parsing (other deep shapes reach ``max_depth`` quickly).
_OPENERS = re.compile(r"(?:[\[{][ \t\r\n]*){" + str(MAX_DEPTH + 1) + "}")


class LocatedYaml:
    """A parsed YAML document and the 1-based line of each path inside it."""

    def __init__(self, file: str, data: Any, lines: dict[Path_, int]) -> None:
        self.file = file
        self.data = data
        self.lines = lines

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path`` or of its closest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path_, message: str) -> ConfigProblem:
        """A problem at ``path`` of this document, located at its line."""
        return ConfigProblem(self.file, self.line_of(path), format_path(path), message)


def format_path(path: Path_) -> str:
    """``("subscriptions", 0, "fields")`` -> ``subscriptions[0].fields``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlSyntaxError(ValueError):
    """A file that cannot be read as a config document: ``problem`` says where and why."""

    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Refused(Exception):  # noqa: N818 - internal signal, turned into a YamlSyntaxError with the file name
    """Raised inside the loader with a 1-based line; ``load_located`` adds the file name."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_located(path: Path, display: str) -> LocatedYaml:
    """Parse one YAML file into plain data with the line of every path.

    Args:
        path: the file to read.
        display: the name used in problems (the path relative to the config directory).

    Raises:
        YamlSyntaxError: the file cannot be read (encoding, size, syntax, duplicate or merge keys,
            aliases that refer to themselves or expand too far, nesting too deep).
    """
    try:
        text = _read_text(path)
        data, lines = _parse(text)
    except _Refused as exc:
        raise YamlSyntaxError(ConfigProblem(display, exc.line, "", exc.message)) from None
    return LocatedYaml(display, data, lines)


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise _Refused(
            None,
            f"file is {size:,} bytes, more than the {MAX_BYTES:,} bytes a config file may have: "
            "split it into several files of the same folder",
        )
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Refused(1, "file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8")
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        raise _Refused(
            raw.count(b"\n", 0, at) + 1,
            "file contains NUL bytes (UTF-16 or a binary file?): save it as UTF-8 text",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        raise _Refused(
            raw.count(b"\n", 0, exc.start) + 1,
            f"file is not UTF-8 (byte 0x{bad} cannot be decoded; GBK and Latin-1 are not read): "
            "save it as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")  # YAML allows a UTF-8 byte-order mark; Windows editors write one


def _parse(text: str) -> tuple[Any, dict[Path_, int]]:
    directive = _YAML_DIRECTIVE.search(text)
    if directive and directive.group(1) != "1.2":
        raise _Refused(
            text.count("\n", 0, directive.start()) + 1,
            f"%YAML {directive.group(1)} directive: config files are YAML 1.2 (remove the directive)",
        )
    openers = _OPENERS.search(text)
    if openers:
        raise _Refused(text.count("\n", 0, openers.start()) + 1, f"nested more than {MAX_DEPTH} levels deep")
    yaml = YAML(typ="rt")
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    yaml.max_depth = MAX_DEPTH
    # read by _Composer (ruamel builds it with the YAML object as its only argument)
    yaml.xhub_expansion_limit = _EXPANSION_FACTOR * len(text) + _EXPANSION_FLOOR  # type: ignore[attr-defined]
    try:
        root = yaml.load(text)
    except _Refused:
        raise
    except DuplicateKeyError as exc:  # keys equal only as values (1 and 01); _Composer finds the rest
        raise _Refused(
            _line(exc.problem_mark), "duplicate key in a mapping (a value would be lost)"
        ) from None
    except MaxDepthExceededError as exc:
        raise _Refused(_line(exc.problem_mark), f"nested more than {MAX_DEPTH} levels deep") from None
    except MarkedYAMLError as exc:
        raise _Refused(*_syntax_error(exc)) from None
    except ReaderError as exc:
        raise _Refused(
            text.count("\n", 0, exc.position) + 1,
            f"character {_char(exc.character)} is not allowed in a YAML file",
        ) from None
    except YAMLError as exc:
        raise _Refused(None, f"YAML error: {exc}") from None
    except RecursionError:  # only if MAX_DEPTH is set too high for the interpreter's stack
        raise _Refused(None, "nested too deeply to be read") from None
    lines: dict[Path_, int] = {}
    if root is None:
        return None, lines
    lines[()] = _container_line(root) or 1
    return _plain(root, (), lines), lines


def _syntax_error(exc: MarkedYAMLError) -> tuple[int | None, str]:
    """The line a person needs to look at, and the parser's words in an order that reads."""
    context = str(exc.context or "")
    problem = str(exc.problem or exc)
    # An unclosed bracket or quote is noticed lines later (often at the end of the file): the line
    # where the construct began is the one to fix. Anything else is at the problem mark.
    unclosed = context.startswith(
        ("while parsing a flow", "while scanning a quoted", "while scanning a block")
    )
    mark = (exc.context_mark if unclosed else None) or exc.problem_mark or exc.context_mark
    if not context:
        text = problem
    elif problem.startswith("but "):  # "expected a single document in the stream, but found another"
        text = f"{context}, {problem}"
    else:
        started = _line(exc.context_mark)
        text = f"{problem} ({context}" + (f" started at line {started})" if started and not unclosed else ")")
    return _line(mark), f"YAML syntax error: {text}"


def _char(character: Any) -> str:
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    return f"U+{code:04X}"


def _line(mark: Any) -> int | None:
    return int(mark.line) + 1 if mark is not None else None


class _Composer(Composer):
    """ruamel's composer, refusing merge keys, duplicate keys, self-containing aliases and bombs."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # a reused anchor name is legal YAML: the later one counts

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            target = self.anchors.get(event.anchor)
            # A collection gets its end mark when it is complete; an alias to an open one is a cycle.
            if isinstance(target, MappingNode | SequenceNode) and target.end_mark is None:
                raise _Refused(
                    _line(event.start_mark),
                    f"alias *{event.anchor} refers to a value that contains it (defined at line "
                    f"{_line(target.start_mark)}): a config value cannot contain itself",
                )
        node = super().compose_node(parent, index)
        tag = str(node.tag)
        if tag not in _PLAIN_TAGS and tag != _MERGE_TAG:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise _Refused(
                _line(node.start_mark), f"tag {shown} is not supported in a config file (plain YAML only)"
            )
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int | None] = {}
        for key, _ in node.value:
            if key.tag == _MERGE_TAG:
                raise _Refused(
                    _line(key.start_mark),
                    "merge keys (<<) are not supported: write the keys out (a merged value has no "
                    "line of its own, and YAML 1.2 has no merge keys)",
                )
            if isinstance(key, ScalarNode):
                ident = (str(key.tag), key.value)
                if ident in seen:
                    raise _Refused(
                        _line(key.start_mark),
                        f'duplicate key "{key.value}" (first at line {seen[ident]}): '
                        "the second value would silently replace the first",
                    )
                seen[ident] = _line(key.start_mark)
        return node

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node, int(getattr(self.loader, "xhub_expansion_limit", _EXPANSION_FLOOR)))
        return node


def _check_expansion(root: Node, limit: int) -> None:
    """Refuse a document whose aliases expand to many more values than the file holds.

    Sizes are counted per node once (memoised, without recursion), so a bomb costs as little to refuse
    as to parse.
    """
    size: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > limit:
                raise _Refused(
                    _line(node.start_mark),
                    f"aliases expand this document to more than {limit:,} values (a YAML bomb?): "
                    "write the values out or reuse fewer aliases",
                )
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that leaves timestamps as text (YAML 1.2 has no timestamp type)."""


_Constructor.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda self, node: str(self.construct_scalar(node))
)


def _container_line(value: Any) -> int | None:
    lc = getattr(value, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else None


def _plain(value: Any, path: Path_, lines: dict[Path_, int], depth: int = 0) -> Any:
    """Convert ruamel's containers and scalar subclasses into plain Python values, noting lines.

    Aliases are expanded into copies (the data is a tree); the expansion check has bounded their size
    and ``MAX_DEPTH`` their depth, which bounds this recursion too (aliases add depth only within the
    expansion limit, checked here again).
    """
    if depth > MAX_DEPTH * 2:
        raise _Refused(lines.get(path), f"aliases nest values more than {MAX_DEPTH * 2} levels deep")
    if isinstance(value, CommentedMap):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            plain_key = _plain_key(key, value, lines.get(path))
            key_path = (*path, str(plain_key))
            line = _key_line(value, key)
            if line is not None:
                lines[key_path] = line
                if not isinstance(plain_key, str):  # pydantic names a non-string key as it is
                    lines[(*path, plain_key)] = line
            out[plain_key] = _plain(item, key_path, lines, depth + 1)
        return out
    if isinstance(value, CommentedSeq):
        items: list[Any] = []
        for i, item in enumerate(value):
            line = _item_line(value, i)
            if line is not None:
                lines[(*path, i)] = line
            items.append(_plain(item, (*path, i), lines, depth + 1))
        return items
    return _plain_scalar(value, lines.get(path))


def _plain_scalar(value: Any, line: int | None) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, ScalarBoolean | bool):  # ScalarBoolean is an int: test it first
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    tag = getattr(getattr(value, "tag", None), "value", None)
    what = f"tag {tag}" if tag else type(value).__name__
    raise _Refused(line, f"a {what} value is not supported in a config file (plain YAML only)")


def _plain_key(key: Any, owner: CommentedMap, line: int | None) -> Any:
    if isinstance(key, CommentedMap | CommentedSeq | tuple | frozenset):
        raise _Refused(
            _key_line(owner, key) or line, "a mapping key must be a plain value, not a list or mapping"
        )
    return _plain_scalar(key, _key_line(owner, key) or line)


def _key_line(owner: CommentedMap, key: Any) -> int | None:
    try:
        return int(owner.lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return _container_line(owner)


def _item_line(owner: CommentedSeq, index: int) -> int | None:
    try:
        return int(owner.lc.item(index)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return _container_line(owner)
