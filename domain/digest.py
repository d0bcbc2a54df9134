"""One canonical digest: SHA-256 over JSON with sorted keys and no whitespace.

Used for the rules' digest recorded with every decision, a report's content digest (the same
idempotency key with other content is a conflict) and a registration's digest (a repeated
import tells a repeat from a conflict). One function, so the three can never disagree on form.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def canonical_json(value: BaseModel | Any) -> str:
    """The canonical JSON text of a model (its JSON-mode dump) or of plain JSON data."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def canonical_digest(value: BaseModel | Any) -> str:
    """SHA-256 of the canonical JSON, as 64 hex digits."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
