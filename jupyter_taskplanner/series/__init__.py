"""Built-in series types: inline values, CSV/JSON files, a directory listing, an SQL query and a
Python callable.  Each registers through the ``jupyter_taskplanner.components`` entry points
like a plugin's would."""
