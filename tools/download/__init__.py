"""Helpers of download.sh: lock files, fetching the wheelhouse and sources, verifying original/.

Pure standard library on purpose: ``verify`` must run with the system python3 before any venv exists.
"""
