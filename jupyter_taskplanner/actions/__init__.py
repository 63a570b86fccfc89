"""Built-in action types: e-mail results, save them to a folder, post them to a webhook,
start the next task.  Each registers through the ``jupyter_taskplanner.components`` entry
points like a plugin's would."""
