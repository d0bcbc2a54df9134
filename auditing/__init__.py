"""The auditor's side: fetch and replay histories, recompute decisions, sign and check bundles."""
