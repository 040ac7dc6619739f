"""The web dashboard at ``{base}/``: server-rendered pages (Jinja2) and a little JavaScript.

Pages read through the client; actions (terminate, suspend, resume, raise event, restart,
rewind, purge, dead-letter re-drive and delete) are ``fetch`` calls to the JSON API from the
page, so they pass the same scope checks and audit log as any other caller. Behind keys, a
browser signs in once on ``/ui/login``: the key is exchanged for a signed, ``HttpOnly``,
``SameSite=Strict`` session cookie (wrong keys are rate limited per address, see
:mod:`ostinato.http.ratelimit`). Templates, CSS and JS ship in the package (no CDN).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ostinato.client import AsyncClient
from ostinato.history_table import history_rows
from ostinato.http import params, wire
from ostinato.http.counts import COUNT_LIMIT, StatusCounter
from ostinato.http.params import ApiError
from ostinato.http.ratelimit import FailedAttempts, too_many_message
from ostinato.http.security import (
    NOBODY,
    SESSION_COOKIE,
    SESSION_SECONDS,
    AccessPolicy,
    Scope,
    principal,
)
from ostinato.http.timeline import timeline
from ostinato.ids import validate_instance_id
from ostinato.status import OrchestrationStatus

#: Rows per page on the list pages.
PAGE_SIZES = (20, 50, 100)

#: Dead letters shown at once (the oldest first).
DEAD_LETTER_LIMIT = 100

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("ostinato.http", "templates"),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
)


def _pretty(value: Any) -> str:
    """A payload as indented JSON text."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def _short(text: str | None, width: int = 80) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


_environment.filters.update(
    pretty=_pretty, short=_short, time=_time, status=wire.status_name, quote=wire.quote_segment
)


def _readable(body: str) -> str:
    """A dead letter's stored text, indented when it is JSON (it often is not)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


class Dashboard:
    """The dashboard's routes over one client, under ``base``."""

    def __init__(
        self,
        client: AsyncClient,
        access: AccessPolicy,
        base: str,
        attempts: FailedAttempts | None = None,
        counter: StatusCounter | None = None,
    ) -> None:
        self.client = client
        self.access = access
        self.base = base
        self.attempts = attempts if attempts is not None else FailedAttempts()
        self.counter = counter if counter is not None else StatusCounter(client)

    def routes(self) -> list[BaseRoute]:
        b = self.base
        static = StaticFiles(packages=[("ostinato.http", "static")])
        return [
            Route(f"{b}/", self.instances, methods=["GET"], name="dashboard"),
            Route(f"{b}/ui/instances/{{instance_id}}", self.instance, methods=["GET"]),
            Route(f"{b}/ui/entities", self.entities, methods=["GET"]),
            Route(f"{b}/ui/dead-letters", self.dead_letters, methods=["GET"]),
            Route(f"{b}/ui/dead-letters/{{letter_id}}", self.dead_letter, methods=["GET"]),
            Route(f"{b}/ui/login", self.login_page, methods=["GET"]),
            Route(f"{b}/ui/session", self.sign_in, methods=["POST"]),
            Route(f"{b}/ui/session", self.sign_out, methods=["DELETE"]),
            Mount(f"{b}/ui/static", app=static, name="dashboard_static"),
        ]

    def public_paths(self) -> tuple[list[str], list[str]]:
        """Paths and path prefixes the security middleware lets through without a key; the
        pages check the caller themselves (a login redirect, or 403)."""
        return [f"{self.base}/"], [f"{self.base}/ui/"]

    # -- rendering ------------------------------------------------------------------------
    def _root(self, request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{self.base}"

    def _render(
        self, request: Request, template: str, status_code: int = 200, **data: Any
    ) -> Response:
        caller = principal(request)
        page = _environment.get_template(template).render(
            root=self._root(request),
            caller=caller,
            signed_in=self.access.requires_key and caller is not NOBODY,
            can_start=Scope.START in caller.scopes,
            can_manage=Scope.MANAGE in caller.scopes,
            **data,
        )
        headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
            ),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
        }
        return HTMLResponse(page, status_code=status_code, headers=headers)

    def _reader(self, request: Request) -> Response | None:
        """A login redirect or a 403 page for callers that may not read, else None."""
        caller = principal(request)
        if Scope.READ in caller.scopes:
            return None
        if caller is NOBODY:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = urlencode({"next": target})
            return RedirectResponse(f"{self._root(request)}/ui/login?{query}", status_code=303)
        return self._render(
            request, "error.html", 403, message=f"API key {caller.name!r} may not read"
        )

    def _error_page(self, request: Request, exc: ApiError) -> Response:
        return self._render(request, "error.html", exc.status_code, message=exc.message)

    # -- pages ----------------------------------------------------------------------------
    async def instances(self, request: Request) -> Response:
        """The instance list: status counts, filters, one page, and the next page's link."""
        refused = self._reader(request)
        if refused is not None:
            return refused
        query = request.query_params
        try:
            statuses = params.statuses(query.getlist("status"), "status")
            created_from = params.timestamp(query, "createdFrom")
            created_to = params.timestamp(query, "createdTo")
            size = int(query.get("size") or PAGE_SIZES[0])
            if size not in PAGE_SIZES:
                raise params.bad_request(f"size must be one of {PAGE_SIZES}")
            after = query.get("after") or None
            token = wire.decode_token(after, self.access.secret) if after else None
            if after and token is None:
                raise params.bad_request("Invalid page link: go back to the first page")
        except ApiError as exc:
            return self._error_page(request, exc)
        except ValueError:
            return self._error_page(request, params.bad_request("size must be a number"))
        filters: dict[str, Any] = {
            "name_prefix": params.text(query, "name"),
            "instance_id_prefix": params.text(query, "id"),
            "created_from": created_from,
            "created_to": created_to,
        }
        page = await self.client.query_instances(
            runtime_status=statuses or None,
            page_size=size,
            continuation_token=token,
            fetch_payloads=False,
            **filters,
        )
        counts = await self.counter.get(filters)
        form = {k: v for k, v in query.multi_items() if k != "after"}
        next_token = wire.encode_token(page.continuation_token, self.access.secret)
        return self._render(
            request,
            "instances.html",
            instances=page.items,
            counts=counts,
            count_limit=self.counter.limit,
            count_ttl=self.counter.ttl,
            all_statuses=list(OrchestrationStatus),
            selected={wire.status_name(s) for s in statuses},
            form=dict(form),
            size=size,
            page_sizes=PAGE_SIZES,
            next_url=(
                f"?{urlencode([*form.items(), ('after', next_token)])}" if next_token else None
            ),
            first_url=f"?{urlencode(list(form.items()))}" if after else None,
        )

    async def instance(self, request: Request) -> Response:
        """One instance: its data, actions, timeline and history table."""
        refused = self._reader(request)
        if refused is not None:
            return refused
        try:
            instance_id = validate_instance_id(request.path_params["instance_id"])
        except ValueError as exc:
            return self._error_page(request, ApiError(400, str(exc)))
        state = await self.client.get_orchestration_state(instance_id)
        if state is None:
            return self._error_page(request, ApiError(404, f"No instance '{instance_id}'"))
        events = await self.client.get_orchestration_history(instance_id)
        letters = await self.client.list_dead_letters(
            instance_id=instance_id, limit=DEAD_LETTER_LIMIT
        )
        api_url = f"{self._root(request)}/instances/{wire.quote_segment(instance_id)}"
        return self._render(
            request,
            "instance.html",
            state=state,
            data=wire.state_json(state),
            rows=history_rows(events),
            timeline=timeline(events, datetime.now(UTC)),
            api_url=api_url,
            active=not state.runtime_status.is_terminal,
            suspended=state.runtime_status is OrchestrationStatus.SUSPENDED,
            failed=state.runtime_status is OrchestrationStatus.FAILED,
            dead_letters=len(letters),
        )

    async def entities(self, request: Request) -> Response:
        """The entity browser: entities by name and key prefix, one page at a time."""
        refused = self._reader(request)
        if refused is not None:
            return refused
        query = request.query_params
        name = params.text(query, "name")
        key_prefix = params.text(query, "key") or ""
        after = query.get("after") or None
        token = wire.decode_token(after, self.access.secret) if after else None
        if after and token is None:
            return self._error_page(request, params.bad_request("Invalid page link"))
        if key_prefix and name is None:
            return self._error_page(request, params.bad_request("A key prefix needs a name"))
        page = await self.client.query_entities(
            name=name, key_prefix=key_prefix, page_size=PAGE_SIZES[0], continuation_token=token
        )
        form = {k: v for k, v in query.multi_items() if k != "after"}
        next_token = wire.encode_token(page.continuation_token, self.access.secret)
        return self._render(
            request,
            "entities.html",
            entities=[(e, wire.payload(e.serialized_state)) for e in page.items],
            form=form,
            next_url=(
                f"?{urlencode([*form.items(), ('after', next_token)])}" if next_token else None
            ),
            first_url=f"?{urlencode(list(form.items()))}" if after else None,
        )

    async def dead_letters(self, request: Request) -> Response:
        """The dead letters (records moved aside as undecodable), oldest first."""
        refused = self._reader(request)
        if refused is not None:
            return refused
        instance_id = params.text(request.query_params, "instance")
        letters = await self.client.list_dead_letters(
            instance_id=instance_id, limit=DEAD_LETTER_LIMIT
        )
        return self._render(
            request,
            "dead_letters.html",
            letters=letters,
            instance=instance_id or "",
            limit=DEAD_LETTER_LIMIT,
        )

    async def dead_letter(self, request: Request) -> Response:
        """One dead letter: the record as stored, why it was moved, re-drive and delete."""
        refused = self._reader(request)
        if refused is not None:
            return refused
        letter_id = request.path_params["letter_id"]
        letter = await self.client.get_dead_letter(letter_id)
        if letter is None:
            return self._error_page(
                request, ApiError(404, f"No dead letter with ID {letter_id!r} was found.")
            )
        return self._render(
            request,
            "dead_letter.html",
            letter=letter,
            body=_readable(letter.body),
            api_url=f"{self._root(request)}/deadLetters/{wire.quote_segment(letter.id)}",
        )

    # -- signing in -----------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        target = request.query_params.get("next") or f"{self._root(request)}/"
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = f"{self._root(request)}/"  # only this site's pages
        return self._render(
            request, "login.html", target=target, needs_key=self.access.requires_key
        )

    async def sign_in(self, request: Request) -> Response:
        """Exchange a key (JSON ``{"key": ...}``) for a session cookie."""
        body = await params.json_body(request)
        given = body.get("key") if isinstance(body, dict) else None
        if not isinstance(given, str) or not given:
            raise ApiError(400, 'Send {"key": "<your API key>"}')
        address = request.client.host if request.client else None
        wait = self.attempts.retry_after(address)
        if wait is not None:
            raise ApiError(429, too_many_message(address, wait), headers={"Retry-After": str(wait)})
        key = self.access.key_for(given)
        if key is None:
            self.attempts.failed(address)
            raise ApiError(401, "Invalid API key")
        response = Response(status_code=204)
        response.set_cookie(
            SESSION_COOKIE,
            self.access.sessions.issue(key),
            max_age=SESSION_SECONDS,
            path=f"{self._root(request)}/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def sign_out(self, request: Request) -> Response:
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path=f"{self._root(request)}/")
        return response


__all__ = ["COUNT_LIMIT", "DEAD_LETTER_LIMIT", "Dashboard"]
