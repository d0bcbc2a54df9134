"""The operator's part of an announcement through the gateway, in a process of its own as on the
operator's machine (`bench announce-gateway`): read a draft document, sign it with a key file,
write the signature to send back, and print the seconds that took (the interpreter's start left
out).

    python -m bench.sign_draft DRAFT.json KEY.json OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from client.publication import SignedDraft, audience, from_document
from domain.signing import Signer
from runtime.process import run_and_end


def main(draft_path: str, key_path: str, out_path: str) -> None:
    t0 = time.perf_counter()
    draft = from_document(json.loads(Path(draft_path).read_text(encoding="utf-8")))
    signer = Signer.from_jwk(json.loads(Path(key_path).read_text(encoding="utf-8")))
    signed = SignedDraft.of(signer.sign(draft, audience(draft.round_id)))
    Path(out_path).write_text(json.dumps(signed.model_dump(mode="json")), encoding="utf-8")
    print(f"{time.perf_counter() - t0:.6f}")


if __name__ == "__main__":
    run_and_end(lambda: main(*sys.argv[1:4]))
