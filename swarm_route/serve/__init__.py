"""Ray Serve at the edge: thin deployments that each hold one core object, and the app that wires them."""
