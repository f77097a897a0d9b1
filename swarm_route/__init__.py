"""swarm_route: route each query to the cheapest agent path that answers it well, and learn from outcomes."""

__version__ = "0.1.0"
