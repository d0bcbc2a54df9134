"""Side effects: the PostgreSQL read model, NIP issuance, notifications, announcement delivery.

Every activity is idempotent, because Temporal retries it.
"""
