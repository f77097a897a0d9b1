"""Classify: a query's weights over the registered intents, and whether any fits (TF-IDF, then embeddings)."""
