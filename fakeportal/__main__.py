"""``python -m fakeportal --port 8765 [--seed demo]``: run the emulated portal in the foreground."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from fakeportal import serve
from fakeportal.admin import create_webhook, portal_info
from fakeportal.state import World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakeportal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--seed",
        default=None,
        help="seed the world: 'demo' (a module fakeportal.seeds.<name> with seed(world)) "
        "or nothing for one empty portal",
    )
    args = parser.parse_args(argv)
    world = World()
    server = serve(world, args.host, args.port)
    if args.seed:
        try:
            module = importlib.import_module(f"fakeportal.seeds.{args.seed}")
        except ModuleNotFoundError:
            print(f"unknown seed {args.seed!r}", file=sys.stderr)
            server.stop()
            return 2
        module.seed(world)
    if not world.portals:
        world.add_portal("demo.bitrix24.test", timezone="Europe/Moscow")
    print(f"fakeportal listening on {server.url}", flush=True)
    print(f"admin: {server.url}/_admin/", flush=True)
    for portal in list(world.portals.values()):
        hook = create_webhook(world, portal.member_id)["url"]
        info = portal_info(portal)
        print(f"portal {info['domain']} member_id={info['member_id']} webhook={hook}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
