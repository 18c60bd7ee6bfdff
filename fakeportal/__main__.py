"""``python -m fakeportal --port 8765 [--seed demo]``: run the emulated portal in the foreground."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from fakeportal import serve
from fakeportal.admin import create_webhook, portal_info
from fakeportal.api import ADMIN_ACTIONS
from fakeportal.state import World


def seed_demo(world: World) -> None:
    """One portal with a company, two contacts and three deals in the default funnel."""
    portal = world.add_portal("demo.bitrix24.test", timezone="Europe/Moscow")
    act = ADMIN_ACTIONS
    if "create_deal" not in act:
        return
    member = portal.member_id
    company = act["create_company"](
        world, {"TITLE": "Teplo Plus LLC", "PHONE": [{"VALUE": "+74950001122"}]}, member
    )
    people = [
        act["create_contact"](
            world,
            {
                "NAME": name,
                "LAST_NAME": last,
                "PHONE": [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}],
                "COMPANY_ID": company["ID"],
            },
            member,
        )
        for name, last, phone in (
            ("Anna", "Volkova", "+79161234567"),
            ("Pavel", "Orlov", "+79167654321"),
        )
    ]
    for title, amount, contact in (
        ("Heat pump for a country house", 480000, people[0]),
        ("Boiler room service contract", 96000, people[1]),
        ("Solar collectors, 6 panels", 215000, people[0]),
    ):
        act["create_deal"](
            world,
            {
                "TITLE": title,
                "OPPORTUNITY": amount,
                "CURRENCY_ID": "RUB",
                "CONTACT_ID": contact["ID"],
                "COMPANY_ID": company["ID"],
                "ASSIGNED_BY_ID": 3,
            },
            member,
        )


def seed_world(world: World, name: str) -> None:
    """Fill the world: ``fakeportal.seeds.<name>.seed(world)`` if present, else built-ins."""
    try:
        module = importlib.import_module(f"fakeportal.seeds.{name}")
    except ModuleNotFoundError:
        module = None
    if module is not None:
        module.seed(world)
    elif name == "demo":
        seed_demo(world)
    else:
        raise LookupError(f"unknown seed {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakeportal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--seed",
        default=None,
        help="seed the world: 'demo' (one portal with a few deals), or the name of a module "
        "fakeportal.seeds.<name> with seed(world); default: one portal with no deals",
    )
    args = parser.parse_args(argv)
    world = World()
    server = serve(world, args.host, args.port)
    if args.seed:
        try:
            seed_world(world, args.seed)
        except LookupError as exc:
            print(str(exc), file=sys.stderr)
            server.stop()
            return 2
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
