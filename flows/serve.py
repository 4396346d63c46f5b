"""Serve every flow as a deployment, so that the Prefect UI's "Run" form can start it.

    PREFECT_API_URL=http://prefect:4200/api python -m flows.serve --name production

As `flow.serve` does, one runner holds the flows in memory, polls the server
for runs of their deployments and runs each in a subprocess of its own, to
which the flow travels by value. A process work pool is the other way: deploy
with `flow.from_source(...).deploy(work_pool_name=...)` and run
`prefect worker start --pool <name>`.
"""

import argparse
import asyncio
from typing import Any

from prefect import Flow
from prefect.runner import Runner

from flows.backup import backup
from flows.drill import drill
from flows.prune import prune
from flows.replicate import replicate
from flows.restore import restore
from flows.restore_test import restore_test
from flows.validate import validate

#: Every flow of the project; each must run from a deployment (tests/integration/test_deployments.py).
FLOWS: list[Flow[..., Any]] = [backup, restore, prune, replicate, validate, restore_test, drill]


def main(argv: list[str] | None = None) -> None:
    """Serve every flow under one deployment name until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve", description="Serve every redis-dr flow as a deployment."
    )
    parser.add_argument("--name", default="local", help="deployment name (e.g. the environment)")
    parser.add_argument("--limit", type=int, default=None, help="most runs at once in this process")
    args = parser.parse_args(argv)
    runner = Runner(name=f"redis-dr-{args.name}", limit=args.limit)
    for flow in FLOWS:
        runner.add_flow(flow, name=args.name)
    asyncio.run(runner.start())


if __name__ == "__main__":
    main()
