"""The command lines: `starter.py` (the client API and the console) and `worker.py`."""
