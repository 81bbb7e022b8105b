"""YAML loading that remembers the line of every value, so errors can say file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hub.core.errors import ConfigProblem

Path_ = tuple[str | int, ...]


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
        return ConfigProblem(self.file, self.line_of(path), format_path(path), message)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_located(path: Path, display: str) -> LocatedYaml:
    """Parse one YAML file; raise ConfigProblem-carrying ValueError on syntax errors."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        # For an unclosed bracket or quote the problem mark is the end of the file; the context mark
        # (where the construct began) is the line a person needs to look at.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        text = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        raise YamlSyntaxError(ConfigProblem(display, line, "", text)) from exc
    lines: dict[Path_, int] = {}
    data = _convert(node, (), lines) if node is not None else None
    return LocatedYaml(display, data, lines)


class YamlSyntaxError(ValueError):
    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _convert(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                yaml.SafeLoader(" ").construct_object(key_node)
                if not isinstance(key_node, yaml.ScalarNode)
                else (_scalar(key_node))
            )
            out[key] = _convert(value_node, (*path, str(key)), lines)
            lines[(*path, str(key))] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
