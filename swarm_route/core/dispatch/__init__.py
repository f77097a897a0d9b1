"""Dispatch and merge: call the chosen paths on their replicas, retry and fall back, and aggregate the answers."""
