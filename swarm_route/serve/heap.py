"""The garbage collector of a replica that serves requests: what it holds from start-up is left out of every
collection, and young objects are collected less often.

A query allocates thousands of short-lived container objects (pydantic models, dicts, Ray's request
structs), so CPython's default young-generation threshold (700) ran a collection every few requests, and
each full collection walked everything loaded at start-up (Ray, FastAPI, the classifier's and the ability
model's vocabularies). perf on the ingress at 32 clients (routed RouterBench queries) put ~3.5% of its
samples in the collector, ~0.35 ms a query; with start-up frozen and young objects collected every 50,000
allocations, ~0.03 ms. Reference cycles are still collected, only later: the young generation holds at most
that many objects (a few MB).
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # net allocations of container objects between young-generation collections (CPython: 700)


def settle() -> None:
    """Collect once, freeze what start-up left (it is never garbage-collected after), and raise the young
    generation's threshold. Call at the end of a replica's start-up."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG, older, oldest)
