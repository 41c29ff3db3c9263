"""Let ``langchain_core.load.load(..., allowed_objects="all")`` revive our serialisable classes.

"all" means "langchain-core plus trusted partner integrations", and langchain-core decides trust
from its own class-path table. An installed integration adds its classes to that table, so
``dumpd`` → ``load`` round-trips work like they do for langchain-openai. ``allowed_objects="core"``
(the default) still refuses them, and the key is never in ``dumpd`` (``lc_secrets``).
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "aisa_integrations"


def register_serializable(*classes: Any) -> None:
    import importlib

    # The module, not the function of the same name that langchain_core.load re-exports.
    _load = importlib.import_module("langchain_core.load.load")
    # load() accepts the namespaces in this list (partner integrations' among them) without
    # valid_namespaces=[...]; ours joins them, so load(dumpd(m), allowed_objects="all") just works.
    if NAMESPACE not in _load.DEFAULT_NAMESPACES:
        _load.DEFAULT_NAMESPACES.append(NAMESPACE)
    for cls in classes:
        path = tuple(cls.lc_id())
        _load.ALL_SERIALIZABLE_MAPPINGS[path] = path
        cached = _load._default_class_paths_cache.get("all")
        if cached is not None:
            cached.add(path)
