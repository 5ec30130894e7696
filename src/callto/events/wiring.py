"""Plugs the cluster into the server when nodes share a Redis (called by :mod:`callto.app`): the session
registry and the requests addressed to one node (:mod:`callto.events.cluster`). Without Redis, nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from callto.events.cluster import Cluster

if TYPE_CHECKING:
    from callto.app import Services


def install(app: FastAPI, services: Services) -> None:
    settings = services.settings
    if not settings.redis_url:
        return
    cluster = Cluster(services.bus, services.hub, services.status, settings.effective_node_id)
    services.components.append(cluster)
    services.features["cluster"] = cluster
    app.state.cluster = cluster
