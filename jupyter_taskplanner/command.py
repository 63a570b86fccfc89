"""The ``jupyter-taskplanner`` command's entry point, which imports the command line.

jsonschema checks the ``iri`` formats with ``rfc3987-syntax`` when that is installed (Jupyter
Server's dependencies install it), and importing it builds its grammar: 0.8 s of CPU, half of
every command's start.  No schema of the planner uses those formats, so the command imports
jsonschema without it.  The server and a kernel import the planner elsewhere, unchanged.
"""

from __future__ import annotations

import sys


def skip_iri_formats() -> None:
    """Have jsonschema, when next imported, leave the ``iri`` formats unchecked."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main() -> None:
    """``jupyter-taskplanner``: see ``cli.main``."""
    skip_iri_formats()
    from .cli import main as run

    run()
