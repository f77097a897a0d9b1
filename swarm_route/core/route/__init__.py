"""Route: pheromone trails, per-query ability and the ant-colony choice of a set of agent paths."""
