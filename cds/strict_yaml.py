"""YAML as every file of ours is read: safe (no arbitrary objects), and a key given twice refused.

Shared by the knowledge loader and the trusted-client file, so both read YAML the same way.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["load_yaml_text"]


# libyaml's parser is ten times faster than the pure-Python one; knowledge loading is on the
# start-up path of the service and of every `cds evaluate`.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """A safe loader that refuses a key given twice in one mapping.

    Plain YAML keeps the last of two equal keys silently, so a rule with two ``logic:`` blocks
    would quietly lose one; here it is a load error naming the key and line.
    """


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            continue  # unhashable: the schema rejects it with a clearer message
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def load_yaml_text(text: str) -> Any:
    """Parse YAML the way every knowledge file is parsed (safe, duplicate keys refused)."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
