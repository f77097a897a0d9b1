"""Learn: finished requests onto a Redis stream, graded by the quality gate, deposited as pheromone."""
