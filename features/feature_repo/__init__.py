"""The Feast feature repo: Feast objects derived from ``features.definitions``, nothing declared.

``entities.py``, ``sources.py``, ``views.py`` and ``services.py`` build the Feast objects from the
declarations; ``features.repo.apply_repo`` applies exactly those objects to the SQL registry.
``feature_store.yaml`` mirrors ``features.store.repo_config`` for the ``feast`` CLI
(``feast -c features/feature_repo plan``), which discovers objects as module attributes: when
the CLI imports a module (as a top-level module, not as ``features.feature_repo.<name>``), the
module also binds the same objects, built for the configured data directory, to module names.
"""

from __future__ import annotations

import os
from typing import Any

from features.store import FeatureConfig


def cli_objects(module_name: str) -> dict[str, Any]:
    """Return attribute name -> Feast object for repo module ``module_name`` when the ``feast``
    CLI imports it (as a top-level module), ``{}`` when the app imports it.

    Build them for the app's configuration: the Django settings (``DJANGO_SETTINGS_MODULE``,
    ``config.settings`` by default), so the CLI reads the same environment variables, with the
    same defaults, as every process. The objects come from the package modules, so each is
    built once and the CLI sees no duplicates.
    """
    if module_name.startswith("features."):
        return {}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    config = FeatureConfig.from_settings()
    from features.feature_repo import entities, services, sources, views

    objects = {
        "entities": entities.ENTITIES.values(),
        "sources": sources.view_sources(config).values(),
        "views": views.feature_views(config).values(),
        "services": services.feature_services(config).values(),
    }[module_name]
    return {obj.name: obj for obj in objects}
