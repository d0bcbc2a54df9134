"""Errors as RFC 9457 problem details (application/problem+json), each naming its field."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.registration import mask_nik

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Refused",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid message",
    429: "Too many requests",
    503: "Unavailable",
}


class Problem(Exception):
    """An answer other than success: raised anywhere in a request, rendered as problem+json.

    `errors` lists the fields at fault, each `{"field", "value", "reason"}`; `members` are
    further members of the problem (RFC 9457 extensions), such as the registration number of a
    refused registration."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        members: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.members = members or {}
        self.status = status
        self.detail = detail
        self.type = type_
        self.errors = errors or []
        self.headers = headers or {}

    @property
    def title(self) -> str:
        """The status's short title (RFC 9457 `title`)."""
        return _TITLES.get(self.status, "Error")

    @property
    def shown_detail(self) -> str:
        """`detail` as it is answered: a NIK-shaped run in it masked (without_niks)."""
        return without_niks(self.detail)

    def body(self, instance: str, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.shown_detail,
            "instance": without_niks(instance),
            "request_id": request_id,
        }
        if self.errors:
            body["errors"] = [
                {**e, "value": without_niks(e["value"])} if isinstance(e.get("value"), str) else e
                for e in self.errors
            ]
        return {**self.members, **body}  # the standard members win


# A NIK's shape: 16 digits standing alone (in a path between slashes, in a sentence, as a value).
# Any decimal digits (\d matches Unicode's): normalise_nik reads a fullwidth '３２７３…' as the
# same NIK, so it is masked in the same way.
_NIK_SHAPED = re.compile(r"(?<![\dA-Za-z])\d{16}(?![\dA-Za-z])")


def without_niks(text: str) -> str:
    """`text` with every run of 16 digits standing alone masked as `mask_nik` masks a NIK: a
    caller that puts a NIK where a registration number goes (a path, a lookup's `applicant_id`, a
    batch item) does not get it back whole in the answer's `detail`, `instance` or `errors`, nor
    does whatever keeps error answers on the way (a client's log, a proxy's)."""
    return _NIK_SHAPED.sub(lambda run: mask_nik(run[0]), text)


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    return JSONResponse(
        problem.body(request.url.path, request_id),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _shown(value: Any) -> Any:
    """A rejected value as it may be echoed back: short, and never a whole object."""
    if isinstance(value, dict | list):
        return None
    text = without_niks(str(value))
    return text if len(text) <= 80 else text[:77] + "..."


# What a report the engine could not take now is answered with (503, a repeat is safe): one
# request's, or one item's of a batch (gateway/service_api.py).
ENGINE_LATE = (
    "the engine did not answer in time; the message may or may not have been taken: send the same "
    "message again (its report_id makes a repeat safe)"
)
ENGINE_UNREADABLE = (
    "the engine cannot read this record now (its worker could not answer for it); nothing was "
    "changed; send the same request again later"
)


def validation_errors(
    exc: RequestValidationError | ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, Any]]:
    """pydantic's errors as `{"field", "value", "reason"}`, the field as a dotted path in the
    message (the `body.` prefix dropped); `prefix` goes before each error's own path (an item of
    a batch validated on its own)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in (*prefix, *err.get("loc", ()))]
        if loc and loc[0] in {"body", "query", "path", "header"}:
            where, loc = loc[0], loc[1:]
        else:
            where = "body"
        field = ".".join(loc) or "(body)"
        if where == "header":
            field = f"header {field}"
        value = None if err.get("type") == "missing" else _shown(err.get("input"))
        if loc and loc[-1] == "nik" and value is not None:
            value = mask_nik(str(value))  # a NIK is never echoed whole, not even to its sender
        out.append({"field": field, "value": value, "reason": err.get("msg", "")})
    return out


def install(app) -> None:
    """Render every error of the JSON API as problem+json (the portal renders its own pages)."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        return problem_response(request, Problem(422, detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem_response(
            request, Problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
        )
