"""API keys, scopes and per-deploy policies (README "API keys", docs/design.md "API keys").

- model.py   access.json's schema, key generation and hashing, the access decision (pure)
- scopes.py  which scope each route needs
- guard.py   the service side: re-reads access.json when it changes, checks each request
- store.py   the installer side: create/list/revoke keys and set policies, atomically
- probe.py   the installer's own short-lived key for probing a deploy whose policy wants one
"""
