"""vp_diag: visionpack diagnostics (trouble_shooting.sh), standard library only.

Runs on the system python3 (3.8+) with ``-I -S``, so it works when the deploy's runtime venv
is broken. Checks live in one module per group; :mod:`vp_diag.registry` finds every module
that defines ``GROUP`` and ``checks(ctx)``, so a new group (releases/upgrade, Docker) is one
new module and nothing else.
"""
