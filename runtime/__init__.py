"""Wiring shared by worker.py, starter.py, audit.py and the tests: settings, logs, servers, client."""
