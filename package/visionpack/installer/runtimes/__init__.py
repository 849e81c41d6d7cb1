"""How a deploy's service runs: as gunicorn processes on the host or as Docker containers.

``base.Runtime`` is every verb a runtime needs (install preflight, start, stop, describe,
remove, and the verbs switch.py drives for upgrade and rollback); ``process.py`` and
``docker.py`` implement it, and ``kinds.runtime_for`` is the one place that reads a deploy's
kind from its state. Nothing here is imported by this file, so a runtime module may import
its siblings without importing the package back.
"""
