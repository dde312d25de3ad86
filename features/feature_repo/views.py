"""Feast feature views, one per declared view and named as declared, with Int64/Float64 features,
online serving on and the declared ttl."""

from __future__ import annotations

from functools import cache

from feast import FeatureView, Field, FileSource
from feast.types import Float64, Int64, String

from features.definitions import VIEWS, View
from features.feature_repo import cli_objects
from features.feature_repo.entities import ENTITIES
from features.feature_repo.sources import view_sources
from features.store import FeatureConfig

FEAST_TYPES = {"int64": Int64, "float64": Float64}


def feature_view(view: View, *, source: FileSource) -> FeatureView:
    """Return the Feast view of ``view`` reading ``source``."""
    return FeatureView(
        name=view.name,
        entities=[ENTITIES[entity.name] for entity in view.entities],
        schema=[Field(name=key, dtype=String) for key in view.join_keys]
        + [Field(name=f.name, dtype=FEAST_TYPES[f.dtype]) for f in view.features],
        source=source,
        ttl=view.ttl,
        online=True,
        description=view.description,
        tags={"mode": view.mode},
    )


@cache
def feature_views(config: FeatureConfig) -> dict[str, FeatureView]:
    """Return view name -> Feast view, for every declared view, in declaration order (the same
    objects per config)."""
    sources = view_sources(config)
    return {view.name: feature_view(view, source=sources[view.name]) for view in VIEWS}


# The feast CLI discovers objects as module attributes (see the package docstring).
globals().update(cli_objects(__name__))
