"""Agent backends: how one (agent, model) hop is actually called."""
