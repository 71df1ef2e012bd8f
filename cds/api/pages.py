"""The web pages (server-rendered HTML). Thin: the work is in :mod:`cds.web`."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from cds.api.dependencies import runtime_of
from cds.api.openapi import html_responses, merge_responses, outcome_responses, text_responses
from cds.api.responses import packaged_file
from cds.errors import BadRequest, RequestError
from cds.kb.loader import Knowledge
from cds.protocol.wire import HOOKS
from cds.store.analytics import rule_feedback_stats
from cds.store.burden_report import burden_report
from cds.web.analytics_view import (
    SERIES,
    SERIES_COLOURS,
    Window,
    feedback_chart,
    feedback_rows,
    parse_window,
)
from cds.web.case_status import CaseStatusCache
from cds.web.draft_orders import DRAFT_ORDERS
from cds.web.education import education_index, render_education_html
from cds.web.examples import ExamplePatient, example_catalogue, synthea_with_breast_cancer
from cds.web.kept_uploads import KeptUpload, KeptUploads
from cds.web.knowledge_view import rule_detail, rule_rows
from cds.web.negotiation import prefers_html
from cds.web.preview import (
    PreviewResult,
    parse_upload,
    patient_banner,
    preview_hook_request,
    preview_resources,
    request_patient,
)
from cds.web.site import base_context, home_context
from cds.web.templating import render_page, sentence

__all__ = ["router"]

router = APIRouter(tags=["pages"])

_STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
_STATIC_TYPES = {
    "site.css": "text/css; charset=utf-8",
    "preview.js": "text/javascript; charset=utf-8",
}
_REPO_ROOT = Path(__file__).resolve().parent.parent.parent
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


_PAGE = merge_responses(html_responses({200: "The page."}), outcome_responses())
_PREVIEW = merge_responses(
    html_responses(
        {
            200: "The preview page, with the cards when a patient or file was given.",
            400: "The page, saying what is wrong with the form or the uploaded file.",
            412: "The page, saying which data the uploaded request lacks.",
            413: "The page, saying the uploaded file is too large.",
        }
    ),
    outcome_responses(),
)
# A form field of the wrong type is refused before the page is built.
_PREVIEW_FORM = merge_responses(_PREVIEW, outcome_responses(400))
_NOT_FOUND = merge_responses(
    _PAGE,
    outcome_responses(404),
    html_responses({404: "A page saying so, for a caller that asks for HTML (a browser)."}),
)


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)


def _page(knowledge: Knowledge, template: str, *, nav: str, title: str, **context: object) -> str:
    return render_page(template, **base_context(knowledge, nav=nav, title=title), **context)


def _not_found(request: Request, detail: str, *, nav: str, title: str, back: str) -> HTMLResponse:
    """A 404: an HTML page for a browser, the API's OperationOutcome for anyone else."""
    if not prefers_html(request.headers.get("accept")):
        raise HTTPException(status_code=404, detail=detail)
    body = _page(
        runtime_of(request).knowledge,
        "not_found.html",
        nav=nav,
        title=title,
        message=sentence(detail) + ".",
        back_href=nav,
        back_label=back,
    )
    return _html(body, status_code=404)


@router.get(
    "/static/{name}",
    response_class=Response,
    responses=merge_responses(
        text_responses(200, "The stylesheet or script.", "text/css", "text/javascript"),
        outcome_responses(404),
    ),
)
async def static_file(name: str) -> Response:
    return await packaged_file(_STATIC, name, _STATIC_TYPES, max_age=300, what="static file")


@router.get("/", response_class=HTMLResponse, responses=_PAGE)
async def home(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    context = home_context(runtime.knowledge, runtime.settings)
    return _html(_page(runtime.knowledge, "home.html", nav="/", title="Home", **context))


# --- preview -----------------------------------------------------------------------------------


def _groups(examples: list[ExamplePatient]) -> list[tuple[str, list[ExamplePatient]]]:
    groups: dict[str, list[ExamplePatient]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    return list(groups.items())


def _parse_day(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'Evaluate as of' is not a date: {text[:20]!r}") from None


def _kept_uploads(request: Request) -> KeptUploads:
    kept: KeptUploads | None = getattr(request.app.state, "kept_uploads", None)
    if kept is None:
        kept = request.app.state.kept_uploads = KeptUploads()
    return kept


async def _preview(
    request: Request,
    *,
    patient: str,
    hook: str,
    order: str,
    as_of: str,
    upload: KeptUpload | None,
    fresh_upload: bool = False,
    submitted: bool = False,
    failed: RequestError | None = None,
) -> HTMLResponse:
    """The preview page; with a patient or a file, its cards. A file uploaded with this very
    submit is used even if a patient is still chosen from the run before; a file kept from an
    earlier run is used only while no patient is chosen."""
    runtime = runtime_of(request)
    knowledge, settings = runtime.knowledge, runtime.settings
    if upload is not None and fresh_upload:
        patient = ""
    today = datetime.now(UTC).date()
    examples = await asyncio.to_thread(example_catalogue, knowledge, settings.synthea_dir, today)
    synthea_pending = (
        settings.synthea_dir is not None
        and settings.synthea_dir.is_dir()
        and synthea_with_breast_cancer(knowledge, settings.synthea_dir) is None
    )
    selected = next((e for e in examples if e.key == patient), None) if patient else None
    hook = hook or (selected.hook if selected and selected.hook else "") or "patient-view"
    form = {"patient": patient, "hook": hook, "order": order, "as_of": as_of}
    result: PreviewResult | None = None
    error: str | None = None
    banner = None
    subject = ""
    status = 200
    try:
        if hook not in HOOKS:
            raise BadRequest(f"unknown hook {hook[:40]!r}")
        draft = DRAFT_ORDERS.get(order) if order else None
        if order and draft is None:
            raise BadRequest(f"unknown draft order {order[:40]!r}")
        day = _parse_day(as_of)
        if failed is not None:
            raise failed
        if submitted and not patient and upload is None:
            raise BadRequest("choose an example patient or upload a file")
        if upload is not None and not patient:
            parsed = parse_upload(upload.content, settings.max_body_bytes, upload.filename)
            now = _moment(day, today)
            subject = f"Uploaded file {upload.filename}"
            if parsed.hook_request is not None:
                result = await preview_hook_request(
                    parsed.hook_request,
                    knowledge=knowledge,
                    settings=settings,
                    call_log=runtime.preview_store,
                    now=now,
                )
                banner = patient_banner(request_patient(parsed.hook_request))
            else:
                assert parsed.resources is not None
                result = await preview_resources(
                    parsed.resources,
                    hook=hook,
                    draft_order=draft,
                    knowledge=knowledge,
                    settings=settings,
                    call_log=runtime.preview_store,
                    now=now,
                )
                banner = patient_banner(parsed.resources)
        elif patient:
            if selected is None:
                raise BadRequest(f"no example patient {patient[:80]!r}")
            resources = await asyncio.to_thread(selected.load)
            now = _moment(day or selected.as_of, today)
            subject = selected.title
            result = await preview_resources(
                resources,
                hook=hook,
                draft_order=draft,
                extra_draft_orders=selected.draft_orders if hook == selected.hook else (),
                knowledge=knowledge,
                settings=settings,
                call_log=runtime.preview_store,
                now=now,
            )
            banner = patient_banner(resources)
    except RequestError as exc:
        error, status, result = exc.diagnostics, exc.status, None
    body = _page(
        knowledge,
        "preview.html",
        nav="/preview",
        title="Card preview",
        example_groups=_groups(examples),
        example_count=len(examples),
        synthea_pending=synthea_pending,
        selected_example=selected,
        hooks=[(h, bool(knowledge.services_for(h))) for h in HOOKS],
        orders=list(DRAFT_ORDERS.values()),
        form=form,
        result=result,
        banner=banner,
        subject=subject,
        draft_label=DRAFT_ORDERS[order].label if order in DRAFT_ORDERS else "",
        error=error,
        upload=upload,
    )
    return _html(body, status_code=status)


def _moment(day: date | None, today: date) -> datetime:
    """When a preview is evaluated: now for today, else the start of the day (UTC).

    The start of the day is also the instant rule cases run at, so a case previewed at its own
    date gives the same answer as the case runner.
    """
    if day is None or day == today:
        return datetime.now(UTC)
    return datetime.combine(day, time.min, tzinfo=UTC)


@router.get("/preview", response_class=HTMLResponse, responses=_PREVIEW)
async def preview_page(
    request: Request,
    patient: str = "",
    hook: str = "",
    order: str = "",
    as_of: str = "",
) -> HTMLResponse:
    return await _preview(
        request, patient=patient, hook=hook, order=order, as_of=as_of, upload=None
    )


async def _received_upload(
    request: Request, upload: UploadFile | None, kept_upload: str
) -> tuple[KeptUpload | None, bool]:
    """The file of this run and whether it was uploaded just now (then it is kept for the next
    runs), else the one kept from before."""
    kept = _kept_uploads(request)
    if upload is not None and upload.filename:
        raw = await upload.read(runtime_of(request).settings.max_body_bytes + 1)
        return kept.keep(upload.filename, raw), True
    if kept_upload:
        found = kept.get(kept_upload)
        if found is None:
            raise BadRequest("the uploaded file is no longer kept: upload it again")
        return found, False
    return None, False


@router.post("/preview", response_class=HTMLResponse, responses=_PREVIEW_FORM)
async def preview_submit(
    request: Request,
    patient: Annotated[str, Form()] = "",
    hook: Annotated[str, Form()] = "",
    order: Annotated[str, Form()] = "",
    as_of: Annotated[str, Form()] = "",
    upload: Annotated[UploadFile | None, File()] = None,
    kept_upload: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    received, fresh, failed = None, False, None
    try:
        received, fresh = await _received_upload(request, upload, kept_upload)
    except RequestError as exc:
        failed = exc
    return await _preview(
        request,
        patient=patient,
        hook=hook,
        order=order,
        as_of=as_of,
        upload=received,
        fresh_upload=fresh,
        submitted=True,
        failed=failed,
    )


# --- knowledge ---------------------------------------------------------------------------------


def _case_cache(request: Request) -> CaseStatusCache:
    cache: CaseStatusCache | None = getattr(request.app.state, "case_status", None)
    if cache is None:
        runtime = runtime_of(request)
        cache = CaseStatusCache(runtime.knowledge, runtime.settings)
        request.app.state.case_status = cache
    return cache


@router.get("/knowledge", response_class=HTMLResponse, responses=_PAGE)
async def knowledge_index(request: Request) -> HTMLResponse:
    knowledge = runtime_of(request).knowledge
    return _html(
        _page(
            knowledge,
            "knowledge.html",
            nav="/knowledge",
            title="Knowledge",
            rows=rule_rows(knowledge),
        )
    )


@router.get("/knowledge/{rule_id}", response_class=HTMLResponse, responses=_NOT_FOUND)
async def knowledge_rule(request: Request, rule_id: str) -> HTMLResponse:
    knowledge = runtime_of(request).knowledge
    rule = knowledge.rules.get(rule_id)
    if rule is None:
        return _not_found(
            request,
            f"no rule with id {rule_id[:80]!r}",
            nav="/knowledge",
            title="No such rule",
            back="All rules",
        )
    results = await asyncio.to_thread(_case_cache(request).results, rule_id)
    context = rule_detail(knowledge, rule, results, repo_root=_REPO_ROOT)
    return _html(_page(knowledge, "rule.html", nav="/knowledge", title=rule.title, **context))


# --- education ---------------------------------------------------------------------------------


@router.get("/education", response_class=HTMLResponse, responses=_PAGE)
async def education_list(request: Request) -> HTMLResponse:
    knowledge = runtime_of(request).knowledge
    body = _page(
        knowledge,
        "education_index.html",
        nav="/education",
        title="Patient education",
        pages=education_index(knowledge),
    )
    return _html(body)


@router.get("/education/{slug}", response_class=HTMLResponse, responses=_NOT_FOUND)
async def education_page(request: Request, slug: str) -> HTMLResponse:
    knowledge = runtime_of(request).knowledge
    page = knowledge.education.get(slug)
    if page is None:
        return _not_found(
            request,
            f"no education page {slug[:80]!r}",
            nav="/education",
            title="No such page",
            back="All patient education pages",
        )
    body = _page(
        knowledge,
        "education.html",
        nav="/education",
        title=page.title,
        page=page,
        # render_education_html returns sanitised HTML (markdown-it without raw HTML, then nh3).
        body=Markup(render_education_html(page)),
        source=knowledge.source,
    )
    return _html(body)


# --- analytics ---------------------------------------------------------------------------------


@router.get(
    "/analytics",
    response_class=HTMLResponse,
    responses=merge_responses(
        _PAGE, html_responses({400: "The page, saying what is wrong with the dates."})
    ),
)
async def analytics(request: Request, since: str = "", until: str = "") -> HTMLResponse:
    runtime = runtime_of(request)
    knowledge = runtime.knowledge
    window: Window | None = None
    rows = []
    burden = None
    error = None
    status = 200
    try:
        window = parse_window(since, until, datetime.now(UTC).date())
        if runtime.database is not None:
            stats = await asyncio.to_thread(
                rule_feedback_stats, runtime.database, window.since, window.until
            )
            rows = feedback_rows(knowledge, stats)
            burden = await asyncio.to_thread(
                burden_report, runtime.database.engine, window.since, window.until
            )
        else:
            error = "This service runs without a database, so there is no feedback to show."
    except RequestError as exc:
        error, status = exc.diagnostics, exc.status
    body = _page(
        knowledge,
        "analytics.html",
        nav="/analytics",
        title="Feedback",
        form={"since": since[:20], "until": until[:20]},
        window=window,
        rows=rows,
        burden=burden,
        error=error,
        chart=feedback_chart(rows, window) if rows and window else None,
        series=SERIES,
        colours=SERIES_COLOURS,
    )
    return _html(body, status_code=status)
