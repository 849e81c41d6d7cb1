"""apikey create|list|revoke|policy DEPLOY: the deploy's API keys and per-scope policies.

Keys and policies live in ``<ROOT>/<DEPLOY>/data/access.json`` (access/store.py); the running
service re-reads the file on its next request, so nothing here restarts or signals anything.
A key is printed once, by ``create``, and stored only as its SHA-256.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ...access import store
from ...access.model import POLICIES, SCOPES, AccessState
from ...errors import NotInstalled
from .. import journal
from ..context import Context
from ..layout import DeployPaths

SEND = "'Authorization: Bearer KEY', 'X-API-Key: KEY' or the query parameter '?access_token=KEY'"


def configure(
    p: argparse.ArgumentParser,
    parser_class: type[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    run: Callable[[Context, argparse.Namespace], Any],
) -> None:
    """The ``apikey`` sub-commands under ``p`` (called by cli.build_parser)."""
    sub = p.add_subparsers(dest="apikey_action", metavar="ACTION", parser_class=parser_class, required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_, parents=[common])
        a.add_argument("deploy", metavar="DEPLOY")
        a.set_defaults(func=run)
        return a

    a = add("create", "create a key and print it (once; only its hash is stored)")
    a.add_argument(
        "--scope",
        action="append",
        metavar="S",
        help=f"{' | '.join(SCOPES)}; repeat or comma-separate for several (default infer)",
    )
    a.add_argument("--name", default="", help="a label for 'list' and the logs (who holds the key)")
    a.add_argument("--json", action="store_true", help="one JSON document on stdout, the key in the field 'key'")
    a = add("list", "list the keys (never the keys themselves) and the policies")
    a.add_argument("--json", action="store_true", help="one JSON document on stdout")
    a = add("revoke", "revoke a key; the running service refuses it from its next request on")
    a.add_argument("key_id", metavar="KEY_ID", help="the id 'create' and 'list' show")
    a.add_argument("--json", action="store_true", help="one JSON document on stdout")
    a = add(
        "policy",
        "set who may use a scope: open (anyone, no key checked), loopback (this machine, "
        "others with a key) or key (everyone with a key)",
    )
    a.add_argument("--scope", required=True, choices=SCOPES)
    a.add_argument("--policy", required=True, choices=POLICIES)
    a.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    """Dispatch one action; returns its JSON document (the CLI prints it or renders it)."""
    paths = _installed(ctx, a.deploy)
    if a.apikey_action == "create":
        return create(ctx, paths, store.parse_scopes(a.scope), store.check_name(a.name))
    if a.apikey_action == "list":
        return list_keys(paths)
    if a.apikey_action == "revoke":
        return revoke(paths, a.key_id)
    return policy(ctx, paths, a.scope, a.policy)


def _installed(ctx: Context, deploy: str) -> DeployPaths:
    paths = ctx.root.deploy(deploy)
    if journal.load(paths) is None:
        raise NotInstalled(f"{deploy!r} is not installed under {ctx.root.path}")
    return paths


def create(ctx: Context, paths: DeployPaths, scopes: tuple[str, ...], name: str) -> dict[str, Any]:
    key, rec = store.create_key(paths.data, scopes, name)
    state = store.load(paths.data)
    unused = [s for s in scopes if state.policies[s] == "open"]
    if unused:
        ctx.warn(
            f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} open: no key is checked there until "
            f"'install.py apikey policy {paths.name} --scope {unused[0]} --policy key' (or loopback)"
        )
    return {
        "action": "create",
        "deploy": paths.name,
        "key": key,
        "id": rec.id,
        "name": rec.name,
        "scopes": list(rec.scopes),
        "created_at": rec.created_at,
    }


def list_keys(paths: DeployPaths) -> dict[str, Any]:
    state = store.load(paths.data)
    return {
        "action": "list",
        "deploy": paths.name,
        "policies": dict(state.policies),
        "keys": [k.public() for k in state.keys],
    }


def revoke(paths: DeployPaths, key_id: str) -> dict[str, Any]:
    rec, before = store.revoke_key(paths.data, key_id)
    return {
        "action": "revoke",
        "deploy": paths.name,
        "id": rec.id,
        "name": rec.name,
        "revoked_at": rec.revoked_at,
        "already_revoked": before,
    }


def policy(ctx: Context, paths: DeployPaths, scope: str, value: str) -> dict[str, Any]:
    previous = store.set_policy(paths.data, scope, value)
    state = store.load(paths.data)
    if value != "open" and not any(scope in k.scopes and k.active() for k in state.keys):
        who = "every client" if value == "key" else "every client on another machine"
        ctx.warn(
            f"no active key holds the {scope} scope: {who} is refused (110) until "
            f"'install.py apikey create {paths.name} --scope {scope}'"
        )
    return {
        "action": "policy",
        "deploy": paths.name,
        "scope": scope,
        "policy": value,
        "previous": previous,
        "policies": dict(state.policies),
    }


def describe_policies(state: AccessState) -> str:
    return ", ".join(f"{s} {state.policies[s]}" for s in SCOPES)


def render(doc: dict[str, Any]) -> list[str]:
    act = doc["action"]
    if act == "create":
        label = f"name {doc['name']!r}, " if doc["name"] else ""
        return [
            f"created API key {doc['id']} ({label}scopes {','.join(doc['scopes'])}) for {doc['deploy']}:",
            doc["key"],
            "It is shown only this once (only its hash is stored): keep it now.",
            f"Clients send it as {SEND}.",
        ]
    if act == "revoke":
        if doc["already_revoked"]:
            return [f"key {doc['id']} of {doc['deploy']} was already revoked (at {doc['revoked_at']})"]
        return [f"revoked key {doc['id']} of {doc['deploy']}; the service refuses it from its next request on"]
    if act == "policy":
        return [
            f"{doc['deploy']}: {doc['scope']} is now {doc['policy']} (was {doc['previous']}); "
            f"applies from the service's next request on",
            f"policies: {', '.join(f'{s} {p}' for s, p in doc['policies'].items())}",
        ]
    lines = [f"{doc['deploy']}: policies {', '.join(f'{s} {p}' for s, p in doc['policies'].items())}"]
    if not doc["keys"]:
        return lines + ["no API keys ('install.py apikey create DEPLOY' makes one)"]
    lines.append(f"{'ID':<9} {'STATE':<8} {'SCOPES':<19} {'CREATED':<21} NAME")
    for k in doc["keys"]:
        state = "active" if k["active"] else ("revoked" if k["revoked"] else "expired")
        lines.append(f"{k['id']:<9} {state:<8} {','.join(k['scopes']):<19} {k['created_at']:<21} {k['name']}")
    return lines
