"""Feast entities, one per ``features.definitions.ENTITIES``: ``card`` (join key ``card_id``)..."""

from __future__ import annotations

from feast import Entity, ValueType

from features import definitions
from features.feature_repo import cli_objects


def feast_entity(entity: definitions.Entity) -> Entity:
    """Return the Feast entity of ``entity``: same name and join key, string keys."""
    return Entity(
        name=entity.name,
        join_keys=[entity.join_key],
        value_type=ValueType.STRING,
        description=entity.description,
    )


# Entity name -> Feast entity.
ENTITIES: dict[str, Entity] = {e.name: feast_entity(e) for e in definitions.ENTITIES}

# The feast CLI discovers objects as module attributes (see the package docstring).
globals().update(cli_objects(__name__))
