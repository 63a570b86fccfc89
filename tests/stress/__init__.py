"""Reliability checks on real server processes, each sized by its caller.

``make stress`` runs them long (``python -m stress`` with ``tests`` on the path, which also
writes the table of docs/reliability.md); the fast tests (test_crash_safety.py,
test_two_servers.py, test_load.py) run them small.  Each check returns ``Figures``: the
cases it tried and a description of every failure it found.
"""
