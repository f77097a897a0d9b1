"""The ``swarm-route`` command: start the service on embedded defaults, or inspect a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from swarm_route.config import Settings, load_settings
from swarm_route.store import exit_on_sigterm


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    serve_opts = settings.serve.model_copy(
        update={k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    )
    settings = settings.model_copy(update={"serve": serve_opts})
    from swarm_route.serve.local import LocalService

    service = LocalService(settings)
    started = time.monotonic()
    stop = threading.Event()
    try:
        service.start()
        # After ray.init: Ray installs its own SIGTERM handler, which would kill us before cleanup.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        store = f"{'embedded ' if service._redis else ''}Redis at {service.settings.redis_url}"
        print(
            f"swarm_route ready at {service.url} in {time.monotonic() - started:.1f} s ({store}); Ctrl-C stops",
            flush=True,
        )
        print(f"metrics at {service.metrics_url}", flush=True)
        stop.wait()
    finally:
        print("stopping…", flush=True)
        service.stop()
    return 0


def _request(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _remote(args: argparse.Namespace) -> int:
    """``agents`` and ``keys``: one call to a running service, its JSON reply printed."""
    base = args.url.rstrip("/")
    try:
        status, body = _agents_call(args, base) if args.command == "agents" else _keys_call(args, base)
    except urllib.error.URLError as exc:
        print(f"cannot reach {base}: {exc.reason}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if body is not None else f"HTTP {status}")
    return 0 if status < 400 else 1


def _agents_call(args: argparse.Namespace, base: str) -> tuple[int, object]:
    if args.action == "list":
        return _request("GET", f"{base}/v1/agents", key=args.key)
    if args.action == "add":
        with open(args.target) as fh:
            return _request("POST", f"{base}/v1/agents", json.load(fh), key=args.key)
    return _request("DELETE", f"{base}/v1/agents/{args.target}", key=args.key)


def _keys_call(args: argparse.Namespace, base: str) -> tuple[int, object]:
    if args.action == "list":
        return _request("GET", f"{base}/v1/keys", key=args.key)
    path = f"{base}/v1/keys/{urllib.parse.quote(args.target or 'me', safe='')}/spend"
    return _request("GET" if args.action == "spend" else "DELETE", path, key=args.key)


def _bench_routing(args: argparse.Namespace) -> int:
    from swarm_route.bench import routing

    lambdas = [float(x) for x in args.lambdas.split(",")] if args.lambdas else routing.DEFAULT_LAMBDAS
    asyncio.run(
        routing.run(
            args.train,
            args.test,
            holdout=args.holdout,
            lambdas=lambdas,
            json_path=args.json,
            plot_path=args.plot,
            seed=args.seed,
            settings=load_settings(args.config),
            by_task=args.by_task,
            resamples=args.resamples,
        )
    )
    return 0


def _split_args(p: argparse.ArgumentParser) -> None:
    """What the benches on routing matrices learn from and route: ``--train``, ``--test``, ``--holdout``."""
    p.add_argument("--train", nargs="+", required=True, help="routing-matrix CSVs to learn from")
    p.add_argument("--test", nargs="*", help="CSVs to route; omitted or equal to --train: a held-out slice")
    p.add_argument("--holdout", type=float, default=0.3, help="share of --train held out when no --test")


def _bench_drift(args: argparse.Namespace) -> int:
    from swarm_route.bench import drift

    asyncio.run(
        drift.run(
            args.train,
            args.test,
            holdout=args.holdout,
            at=args.at,
            event=args.event,
            lam=args.cost_weight,
            json_path=args.json,
            seed=args.seed,
            settings=load_settings(args.config),
        )
    )
    return 0


def _bench_intent(args: argparse.Namespace) -> int:
    from swarm_route.bench import intent

    intent.run(args.data, json_path=args.json, embeddings=not args.lexical, settings=load_settings(args.config))
    return 0


def _bench_agents(args: argparse.Namespace) -> int:
    from swarm_route.bench import agents
    from swarm_route.core.llm import LLMSettings

    settings = load_settings(args.config)
    llm = LLMSettings(base_url=args.llm_url, model=args.llm_model) if args.llm_url else settings.reasoning.llm
    agents.run(
        args.agents,
        args.test,
        train_path=args.train,
        json_path=args.json,
        embeddings=not args.lexical,
        llm=llm,
        settings=settings,
        compound=args.compound,
        limit=args.limit,
    )
    return 0


def _bench_load(args: argparse.Namespace) -> int:
    from swarm_route.bench import load

    load.run(
        args.data,
        url=args.url,
        key=args.key,
        agent=args.agent,
        concurrency=args.concurrency,
        requests=args.requests,
        json_path=args.json,
        settings=_with_topology(load_settings(args.config), args.topology),
    )
    return 0


def _with_topology(settings: Settings, topology: str | None) -> Settings:
    if topology is None:
        return settings
    return settings.model_copy(update={"serve": settings.serve.model_copy(update={"topology": topology})})


def _bench_chaos(args: argparse.Namespace) -> int:
    from swarm_route.bench import chaos

    result = chaos.run(
        seconds=args.seconds,
        redis_down_s=args.redis_down,
        concurrency=args.concurrency,
        json_path=args.json,
        settings=_with_topology(load_settings(args.config), args.topology),
    )
    return 0 if result["failed"] == 0 and result["lost"] == 0 else 1


def _bench_hostile(args: argparse.Namespace) -> int:
    from swarm_route.bench import hostile

    result = hostile.run(args.url, args.key, args.client_key, args.json)
    return 1 if result["failures"] else 0


def _store_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if not settings.redis_url:
        raise SystemExit("needs the service's Redis: set REDIS_URL (the URL `swarm-route serve` prints)")
    return settings


def _warmup(args: argparse.Namespace) -> int:
    from swarm_route.warmup import warm_service

    print(asyncio.run(warm_service(_store_settings(args), args.files)))
    return 0


def _pheromones(args: argparse.Namespace) -> int:
    from swarm_route.bench.heatmap import heatmap
    from swarm_route.store import connect
    from swarm_route.wiring import pheromone_store

    settings = _store_settings(args)

    async def go() -> tuple[dict[str, float], dict[str, int]]:
        client = connect(settings.redis_url or "")
        store = pheromone_store(settings, client)
        trails, on_trial = await store.trails(args.intent), await store.on_trial(args.intent)
        await client.aclose()
        return trails, on_trial

    trails, on_trial = asyncio.run(go())
    if not trails:
        print(f"no trails for intent {args.intent!r}")
        return 1
    for edge, tau in sorted(trails.items(), key=lambda kv: -kv[1]):
        trial = f"  (on trial: {on_trial[edge]} graded events left)" if edge in on_trial else ""
        print(f"{tau:8.4f}  {edge}{trial}")
    if args.png:
        heatmap(trails, args.intent, args.png)
        print(f"wrote {args.png}")
    return 0


def _remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--key", default=os.environ.get("SWARM_API_KEY"), help="API key (default: $SWARM_API_KEY)")
    p.set_defaults(func=_remote)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swarm-route", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="start local Ray, Redis (embedded unless REDIS_URL) and the app; Ctrl-C stops")
    p.add_argument("--config", help="YAML settings file (see deployments/local.yaml)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_serve)
    p = sub.add_parser("agents", help="list, add or remove agents of a running service")
    p.add_argument("action", choices=["list", "add", "remove"])
    p.add_argument("target", nargs="?", help="add: a JSON file with the agent; remove: the agent's name")
    _remote_args(p)
    p = sub.add_parser("keys", help="API keys' spend and budgets on a running service; reset a key's spend")
    p.add_argument("action", choices=["list", "spend", "reset"])
    p.add_argument("target", nargs="?", help="spend: a key id (default: me, the calling key); reset: a key id")
    _remote_args(p)
    p = sub.add_parser("warmup", help="register replay agents and warm trails and ability from routing matrices")
    p.add_argument("files", nargs="+", help="routing-matrix CSVs")
    p.add_argument("--config")
    p.set_defaults(func=_warmup)
    p = sub.add_parser("pheromones", help="print an intent's trails; --png draws them as a heatmap")
    p.add_argument("intent")
    p.add_argument("--png")
    p.add_argument("--config")
    p.set_defaults(func=_pheromones)
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = bench.add_parser("routing", help="quality/cost frontier on routing matrices, against baselines")
    _split_args(p)
    p.add_argument("--lambdas", help="comma-separated cost weights λ to sweep")
    p.add_argument("--json")
    p.add_argument("--plot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config")
    p.add_argument(
        "--by-task", action="store_true", help="AIQ per eval_name too (a report: the routers never see the task)"
    )
    p.add_argument(
        "--resamples",
        type=int,
        default=1000,
        help="bootstrap draws of the test prompts behind each AIQ's 95%% interval and the gaps (0: none)",
    )
    p.set_defaults(func=_bench_routing)
    p = bench.add_parser(
        "drift", help="a model the router relies on breaks, or joins, mid-stream: frozen against online"
    )
    _split_args(p)
    p.add_argument("--at", type=float, default=0.5, help="share of the test stream before the model changes")
    p.add_argument(
        "--event", choices=("break", "join"), default="break", help="it answers wrong from then on, or registers then"
    )
    p.add_argument("--cost-weight", type=float, help="λ every prompt is routed at (default: aco.cost_weight)")
    p.add_argument("--json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config")
    p.set_defaults(func=_bench_drift)
    p = bench.add_parser("intent", help="in-scope accuracy, out-of-scope detection, latency on a CLINC150-layout file")
    p.add_argument("--data", required=True, help="JSON with train/val/test (+ oos_*) lists of [text, label]")
    p.add_argument("--json")
    p.add_argument("--lexical", action="store_true", help="lexical path only, no sentence embeddings")
    p.add_argument("--config")
    p.set_defaults(func=_bench_intent)
    p = bench.add_parser("agents", help="agent-set selection and declines on an agent-set file")
    p.add_argument("--agents", required=True, help="JSON list of {name, description, examples?}")
    p.add_argument("--test", required=True, help="JSONL of {query, agents}: the gold set ([] = decline)")
    p.add_argument("--train", help="JSONL of past traffic in the same format, learned from before the test")
    p.add_argument("--json")
    p.add_argument("--lexical", action="store_true", help="lexical path only, no sentence embeddings")
    p.add_argument("--llm-url", help="OpenAI-compatible base URL of a model to reason-then-select with")
    p.add_argument("--llm-model", default="default", help="the model name at --llm-url")
    p.add_argument(
        "--compound", type=int, default=500, help="two-need queries joined from the test's single-agent ones (0: none)"
    )
    p.add_argument("--limit", type=int, help="route only a seeded sample of this many test queries (a quick look)")
    p.add_argument("--config")
    p.set_defaults(func=_bench_agents)
    p = bench.add_parser("load", help="routed vs direct calls under concurrency; updates on vs off")
    p.add_argument("--data", nargs="+", required=True, help="routing-matrix CSVs: the replay agents and prompts")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=600, help="per mode")
    p.add_argument("--url", help="a running service instead of one started on embedded defaults")
    p.add_argument("--key", help="an admin API key of the running service")
    p.add_argument("--agent", help="with --url: the agent the direct calls go to")
    p.add_argument("--json")
    p.add_argument("--config")
    p.add_argument("--topology", choices=["fast", "split"], help="the app's topology (default: the settings')")
    p.set_defaults(func=_bench_load)
    p = bench.add_parser("chaos", help="steady load while Redis stops, an agent replica and a router replica die")
    p.add_argument("--seconds", type=float, default=40.0, help="how long the load runs")
    p.add_argument("--redis-down", type=float, default=10.0, help="seconds Redis stays stopped")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--json")
    p.add_argument("--config")
    p.add_argument("--topology", choices=["fast", "split"], help="the app's topology (default: the settings')")
    p.set_defaults(func=_bench_chaos)
    p = bench.add_parser("hostile", help="hostile input against a running service: 0 5xx, hangs, bad registrations")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--key", default=os.environ.get("SWARM_API_KEY"), help="an admin key, when keys are configured")
    p.add_argument("--client-key", help="a client key, to probe what a client may not do")
    p.add_argument("--json")
    p.set_defaults(func=_bench_hostile)
    args = parser.parse_args(argv)
    if args.command == "agents" and args.action != "list" and not args.target:
        parser.error(f"agents {args.action} needs a {'file' if args.action == 'add' else 'name'}")
    if args.command == "keys" and args.action == "reset" and not args.target:
        parser.error("keys reset needs a key id")
    exit_on_sigterm()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        if args.command != "bench":
            raise
        parser.exit(2, f"swarm-route bench {args.bench}: {exc}\n")  # a missing file or a bad value: no traceback


if __name__ == "__main__":
    sys.exit(main())
