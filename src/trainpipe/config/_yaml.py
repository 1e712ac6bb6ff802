"""A bounded YAML reader for pipeline files, profiles, ``--set`` values and ``${ENV}`` values.

``yaml.safe_load`` builds no objects, but it still trusts the shape of the text: a 500-byte alias bomb
(``b: [*a, *a, ...]`` nine levels deep) expands to about 9**9 values once anything walks the result,
20,000 nested ``[`` overflow the composer's recursion, and a key written twice silently keeps the last
value. :class:`LimitedLoader` refuses all of these while it parses, with the line where it happened.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024  # a pipeline file holds settings, not data
MAX_DEPTH = 64  # nesting levels; a real pipeline file uses about five
MAX_ALIASES = 500  # *name references in one document
MAX_NODES = 100_000  # values in the document once every alias is expanded

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(Exception):
    """The text breaks one of the limits above, or repeats a key; the message says which and where."""


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return int(mark.line) + 1 if mark is not None else 0


class LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with limits on nesting depth, alias count and alias expansion, and no
    duplicate mapping keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise YamlLimitError(
                    f"more than {MAX_ALIASES} YAML aliases (*{event.anchor} at line {_line(event.start_mark)} "
                    f"is one too many); the limit is {MAX_ALIASES}. Write the values out instead of "
                    "referring to an anchor again and again.")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(
                    f"nesting deeper than {MAX_DEPTH} levels at line {_line(self.peek_event().start_mark)}; "
                    f"the limit is {MAX_DEPTH}. A pipeline file nests a few levels (model.params.max_depth): "
                    "check for unbalanced [ or { brackets.")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue  # merged keys (<<: *base) may be overridden; that is what they are for
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base constructor says so
                if first is not None:
                    raise YamlLimitError(
                        f"duplicate key {key!r} at line {first} and line {_line(key_node)}: YAML would keep only "
                        f"the last one and silently drop the first. Merge the two {key!r} entries into one.")
                seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: Node) -> None:
    """Count the values of ``root`` with every alias expanded, without expanding them (each node is visited
    once), and check the nesting depth the aliases make: at most ``MAX_DEPTH`` frames of recursion."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height) with aliases expanded
    active: set[int] = set()

    def too_deep(node: Node) -> YamlLimitError:
        return YamlLimitError(
            f"nesting deeper than {MAX_DEPTH} levels once YAML aliases are expanded (line {_line(node)}); "
            f"the limit is {MAX_DEPTH}. Use fewer nested *aliases.")

    def walk(node: Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            if level + sizes[key][1] - 1 > MAX_DEPTH:
                raise too_deep(node)
            return sizes[key]
        if level > MAX_DEPTH:
            raise too_deep(node)
        if key in active:
            raise YamlLimitError(f"the YAML anchor at line {_line(node)} contains an alias to itself: a value "
                                 "cannot contain itself. Remove the recursive *alias.")
        active.add(key)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        size, height = 1, 1
        for child in children:
            child_size, child_height = walk(child, level + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_NODES:
                raise YamlLimitError(
                    f"YAML aliases expand to more than {MAX_NODES:,} values (in the value at line {_line(node)}); "
                    f"the limit is {MAX_NODES:,}. This is an alias bomb or a runaway *alias: write the values "
                    "out, or refer to an anchor fewer times.")
        active.discard(key)
        sizes[key] = (size, height)
        return size, height

    walk(root, 1)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`LimitedLoader`; raises ``yaml.YAMLError`` or
    :class:`YamlLimitError`."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"the text is {len(text):,} characters; the limit is {MAX_BYTES:,} (1 MiB).")
    loader = LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'")


def unquoted_env_hint(text: str, *lines: int) -> str:
    """A hint when one of ``lines`` (1-based) holds an unquoted ``${VAR}``: inside ``{...}`` or ``[...]`` YAML
    reads the ``{`` as the start of a mapping, which is the syntax error being reported."""
    all_lines = text.splitlines()
    for number in lines:
        if not 1 <= number <= len(all_lines):
            continue
        match = re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}", _QUOTED.sub("", all_lines[number - 1]))
        if match:
            ref = match.group(0)
            return (f" The unquoted {ref} on line {number} is the likely cause: inside {{...}} or [...] YAML reads "
                    f"its {{ as a mapping. Quote it: \"{ref}\" (the value still takes the type of what the "
                    "variable holds, so a number stays a number).")
    return ""
