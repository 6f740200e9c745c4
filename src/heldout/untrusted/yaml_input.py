"""YAML from a pull request: bounded in size and expansion, with no duplicate keys.

PyYAML's ``safe_load`` already refuses ``!!python/*`` tags. It still accepts:

* a "billion laughs" document: a few hundred bytes of nested aliases (``*a``)
  that expand to billions of nodes once the card is validated, dumped or hashed;
* duplicate keys, where the second silently wins, so a reviewer reads the
  first block while heldout builds the second.

:func:`load_yaml` refuses both, and anything over the size cap, before any
value reaches heldout. Every YAML file heldout reads from a registry (cards,
``params.yaml``, locks, manifests, release records) goes through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from heldout.errors import CardError
from heldout.untrusted.limits import Limits, UntrustedInputError, limits


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that counts alias uses and refuses duplicate mapping keys."""

    alias_budget = 50
    aliases_used = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(AliasEvent):
            self.aliases_used += 1
            if self.aliases_used > self.alias_budget:
                mark = self.peek_event().start_mark
                msg = (f"more than {self.alias_budget} YAML aliases (*name) in one document ({mark.name}, line "
                       f"{mark.line + 1}): cards need none, and nested aliases can expand without bound")
                raise _Refused(msg)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys itself
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first on line {seen[key] + 1}); the second would silently win",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    """Raised inside the loader; turned into UntrustedInputError with the source named."""


def _expanded_size(node: Node, cap: int) -> int:
    """Nodes in the document once every alias is expanded (stops counting past ``cap``)."""
    memo: dict[int, int] = {}

    def size(n: Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = cap + 1  # a cycle (an alias inside its own anchor) counts as unbounded
        total = 1
        if isinstance(n, SequenceNode):
            children = n.value
        elif isinstance(n, MappingNode):
            children = [c for pair in n.value for c in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > cap:
                break
        memo[key] = total
        return total

    return size(node)


def load_yaml(text: str | bytes, source: str | Path, *, bounds: Limits | None = None) -> Any:
    """Parse one YAML document from an untrusted source, within ``bounds`` (default: :func:`limits`)."""
    bounds = bounds or limits()
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > bounds.yaml_bytes:
        msg = f"{source} is {size:,} bytes; YAML files in a registry may be at most {bounds.yaml_bytes:,}."
        raise UntrustedInputError(msg, hint="Cards are short; move long text to the dataset's own documentation.")
    loader = _StrictLoader(text)
    loader.alias_budget = bounds.yaml_aliases
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, bounds.yaml_nodes) > bounds.yaml_nodes:
            msg = (f"{source} expands to more than {bounds.yaml_nodes:,} YAML nodes through its aliases; "
                   "refused before building it")
            raise UntrustedInputError(msg, hint="Write the values out instead of using anchors and aliases.")
        return loader.construct_document(node)
    except _Refused as exc:
        raise UntrustedInputError(str(exc), hint="Write the values out instead of using anchors and aliases.") \
            from None
    except yaml.YAMLError as exc:
        msg = f"{source} is not valid YAML: {exc}"
        raise CardError(msg, hint="Each key may appear once per mapping; check the indentation.") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, *, bounds: Limits | None = None) -> Any:
    """Read and parse a YAML file, refusing it unread if it is larger than the cap."""
    bounds = bounds or limits()
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read(bounds.yaml_bytes + 1)
    return load_yaml(data, path, bounds=bounds)
