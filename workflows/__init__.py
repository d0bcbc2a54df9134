"""Orchestration: when and in what order. Every decision calls a domain/ function."""
