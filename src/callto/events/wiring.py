"""Builds the cluster when nodes share a Redis (called by :mod:`callto.app`): the session registry and the
requests addressed to one node (:mod:`callto.events.cluster`). Without Redis, none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callto.events.cluster import Cluster

if TYPE_CHECKING:
    from callto.app import Services


def build(services: Services) -> Cluster | None:
    settings = services.settings
    if not settings.redis_url:
        return None
    return Cluster(services.bus, services.hub, services.status, settings.effective_node_id)
