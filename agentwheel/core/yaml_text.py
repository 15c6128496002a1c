"""YAML read with a bound on what it expands to.

An alias (`*name`) repeats its anchor's whole node without copying it in the file, so ten
lines of nested aliases ("billion laughs") stand for a billion values: PyYAML builds them
as shared objects in a moment, and whatever walks the result afterwards (validation, a
deep copy) runs until memory is gone. Anchors and aliases stay allowed (bundled workflows
reuse a tool or a rule by alias); a document whose expanded node count passes
`MAX_YAML_NODES`, or whose nesting passes the parser's recursion limit, is refused with
a `yaml.YAMLError` before anything is built from it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

# Far above any workflow or config we ship (the largest expands to ~600 nodes).
MAX_YAML_NODES = 200_000


class YamlTooLarge(yaml.YAMLError):
    """A document that expands past `MAX_YAML_NODES` nodes, or nests too deep to read."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = None


class _BoundedLoader(yaml.SafeLoader):
    def construct_document(self, node: Node) -> Any:
        expanded = expanded_size(node, MAX_YAML_NODES)
        if expanded > MAX_YAML_NODES:
            raise YamlTooLarge(
                f"the document expands to more than {MAX_YAML_NODES:,} values "
                "(nested aliases, a 'billion laughs' document?)"
            )
        return super().construct_document(node)


def expanded_size(root: Node, limit: int) -> int:
    """How many nodes `root` stands for with every alias written out, counted once per
    distinct node (so the count costs the file's size, not the expansion's); stops
    counting once past `limit`. An alias inside its own anchor counts as past it."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, limit + 1)
            visiting.discard(id(node))
            continue
        if id(node) in visiting:  # an alias inside its own anchor: endless
            return limit + 1
        visiting.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` with the expansion bound; raises `yaml.YAMLError` (a `YamlTooLarge`
    for a document too large or too deep)."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except RecursionError:
        raise YamlTooLarge("the document nests too deep to read") from None
