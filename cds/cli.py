"""The ``cds`` command: serve, evaluate offline, and check or export the knowledge."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds.errors import CdsError, KnowledgeError, RequestError
from cds.hooks import HOOKS
from cds.knowledge import Knowledge, Service, load_knowledge
from cds.offline import bundle_resources, read_json_file, request_from_resources
from cds.service_call import run_offline
from cds.settings import Settings, load_settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Handler] = {}


def _command(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _COMMANDS[name] = func
        return func

    return register


def _load(settings: Settings) -> Knowledge:
    return load_knowledge(settings.knowledge_dir, settings.cards_dir)


@_command("serve")
def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from cds.http_guard import GuardedHttpToolsProtocol
    from cds.trusted_clients import configured_trusted_clients

    port: int = settings.port if args.port is None else args.port
    settings = _with_own_base_url(settings, args.host, port)
    settings.refuse_unsafe_defaults()
    knowledge = _load(settings)  # fail fast, with the problems listed, before uvicorn starts
    configured_trusted_clients(settings)
    store = _open_database(settings, knowledge)  # one line and exit 2 when it does not answer
    print(
        f"CDS Hooks discovery: http://{args.host}:{port}/cds-services",
        file=sys.stderr,
        flush=True,
    )
    # One worker serves the knowledge just loaded; several each build their own app.
    app: Any = "cds.cli:served_app"
    if args.workers == 1:
        from cds.app import create_app

        app = create_app(settings, knowledge=knowledge, store=store)
        _freeze_long_lived_objects()
    else:
        if store is not None:
            store.close()  # checked and migrated once here; each worker opens its own
        from cds.metrics import use_multiprocess_metrics

        use_multiprocess_metrics()
    # uvicorn re-raises a SIGTERM it handled once it has shut down, which would end this
    # process with 143; with this handler in place that raise is a plain exit 0, as with
    # several workers (whose supervisor returns 0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        app,
        factory=args.workers != 1,
        host=args.host,
        port=port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=args.graceful_seconds,
        proxy_headers=True,
        http=GuardedHttpToolsProtocol,  # caps the size and time of a request head
    )
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _with_own_base_url(settings: Settings, host: str, port: int) -> Settings:
    """Without ``CDS_PUBLIC_BASE_URL``, the URL this server listens on: card links, pages and the
    JWT audience then name the port actually served. Workers read it from the environment."""
    if "public_base_url" in settings.model_fields_set:
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    base_url = f"http://{shown}:{port}"
    os.environ["CDS_PUBLIC_BASE_URL"] = base_url
    return settings.model_copy(update={"public_base_url": base_url})


def _open_database(settings: Settings, knowledge: Knowledge) -> Any:
    """The store, opened (and migrated) before uvicorn starts, so that a database that does
    not answer is one line and a non-zero exit instead of a traceback from the lifespan."""
    from sqlalchemy.exc import SQLAlchemyError

    from cds.db import open_store
    from cds.errors import SettingError

    suppressing = [c for c, r in knowledge.override_reasons.items() if r.suppresses]
    try:
        return open_store(settings, suppressing)
    except (SQLAlchemyError, OSError) as exc:
        variable = "CDS_DATABASE_URL" if settings.database_url else "CDS_DATA_DIR"
        first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SettingError(
            f"the {settings.database_backend} database named by {variable} does not answer: "
            f"{first_line}"
        ) from None


SERVE_GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation


def _freeze_long_lived_objects() -> None:
    """Keep what lives as long as the process (knowledge, app, modules) out of the cyclic GC,
    and let the youngest generation grow to 10,000 objects before it is collected.

    A large request allocates hundreds of thousands of objects, and every full collection it
    triggers would otherwise walk the whole knowledge base as well: without the freeze,
    collection took about as long as the rest of a large call. Parsed request bodies are
    acyclic and freed by reference counting, so collecting every 700 allocations (the default)
    only re-walks a body still being built: with 10,000, a 2.4 MB call took about 13 % less
    (median of four alternating runs; small calls unchanged).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(SERVE_GC_THRESHOLD, 10, 10)


def served_app() -> Any:
    """The app of one of several `cds serve` workers (a uvicorn factory)."""
    from cds.app import create_app

    settings = load_settings()
    settings.refuse_unsafe_defaults()
    app = create_app(settings)
    _freeze_long_lived_objects()
    return app


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@_command("evaluate")
def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    # the rule cases are test data: evaluating a record does not need them
    knowledge = load_knowledge(settings.knowledge_dir, settings.cards_dir, with_cases=False)
    data = read_json_file(Path(args.file))
    now = _parse_now(args.now)
    calls: list[tuple[Service, dict[str, Any]]]
    if isinstance(data, dict) and "hook" in data and "context" in data:
        calls = [(service, data) for service in knowledge.services_for(str(data["hook"]))]
    else:
        resources = bundle_resources(data)
        calls = [
            (
                service,
                request_from_resources(
                    resources, service.prefetch, hook=args.hook, hook_instance="cli-evaluate"
                ),
            )
            for service in knowledge.services_for(args.hook)
        ]
    cards: list[dict[str, Any]] = []
    explanations: list[tuple[str, str, str, list[str]]] = []
    for service, body in calls:
        result = run_offline(service, body, knowledge=knowledge, settings=settings, now=now)
        cards += result.cards
        explanations += [
            (
                f.rule.id,
                card["indicator"],
                card["summary"],
                [e.line() for e in f.evidence] + list(f.absent),
            )
            for f, card in zip(result.fired, result.cards, strict=True)
        ]
    if args.json:
        sys.stdout.write(orjson.dumps({"cards": cards}, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not explanations:
        print("no cards")
    for rule_id, indicator, summary, facts in explanations:
        print(f"[{indicator.upper():8}] {rule_id}\n           {summary}")
        for fact in facts:
            print(f"           - {fact}")
    return 0


@_command("generate")
def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from cds.scenarios import example_patients

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    now = _parse_now(args.now).date() if args.now else None
    for scenario in example_patients(now=now, seed=args.seed):
        path = outdir / f"{scenario.id}.json"
        path.write_bytes(orjson.dumps(scenario.bundle, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"{path}  {scenario.title}")
    return 0


@_command("knowledge check")
def _knowledge_check(args: argparse.Namespace, settings: Settings) -> int:
    from cds.cases import run_case

    knowledge = _load(settings)
    rows = []
    failures = 0
    for rule_id, rule in sorted(knowledge.rules.items()):
        results = [run_case(knowledge, rule, case) for case in knowledge.cases.get(rule_id, ())]
        failed = [r for r in results if not r.passed]
        failures += len(failed)
        rows.append(
            (
                rule_id,
                rule.status,
                rule.card.indicator,
                ",".join(rule.hooks),
                rule.source.section + (" [beyond source]" if rule.source.beyond_source else ""),
                f"{len(results) - len(failed)}/{len(results)}",
                rule.review.state,
            )
        )
    headers = ("rule", "status", "indicator", "hooks", "cites section", "cases", "review")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        f"\n{len(knowledge.rules)} rules, {len(knowledge.services)} services, "
        f"{len(knowledge.valuesets)} value sets, {len(knowledge.education)} education pages; "
        f"{failures} failing cases"
    )
    return 1 if failures else 0


@_command("knowledge export")
def _knowledge_export(args: argparse.Namespace, settings: Settings) -> int:
    from cds.fhir_export import write_fhir_export

    knowledge = _load(settings)
    base_url = args.base_url or settings.public_base_url
    written = write_fhir_export(knowledge, Path(args.outdir), base_url=base_url)
    plans = sum(1 for p in written if p.name.startswith("PlanDefinition-"))
    valuesets = sum(1 for p in written if p.name.startswith("ValueSet-"))
    print(
        f"wrote {plans} PlanDefinitions, {valuesets} ValueSets and one collection Bundle "
        f"to {args.outdir} (all validated as FHIR R4)"
    )
    return 0


@_command("knowledge coverage")
def _knowledge_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from cds.coverage import coverage_gaps, render_coverage

    knowledge = _load(settings)
    output = Path(args.output) if args.output else settings.knowledge_dir / "COVERAGE.md"
    text = render_coverage(knowledge)
    gaps = coverage_gaps(knowledge)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: run `cds knowledge coverage`", file=sys.stderr)
            return 1
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    for heading in gaps:
        print(f"gap: {heading}")
    return 0


@_command("db upgrade")
def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from cds.db import make_engine
    from cds.migrate import upgrade_database

    engine = make_engine(settings)
    try:
        before, after = upgrade_database(engine, args.revision)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    print(f"{where}: schema {before or '(empty)'} -> {after}")
    return 0


@_command("db current")
def _db_current(args: argparse.Namespace, settings: Settings) -> int:
    from cds.db import make_engine
    from cds.migrate import current_revision, head_revision

    engine = make_engine(settings)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else f"behind: run `cds db upgrade` to reach {head}"
    print(
        f"{engine.url.render_as_string(hide_password=True)}: schema {current or '(empty)'}, {state}"
    )
    return 0 if current == head else 1


@_command("secrets generate")
def _secrets_generate(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    # 32 random bytes (256 bits), URL-safe: fit for CDS_PATIENT_HASH_KEY in a shell or a Secret.
    print(secrets.token_urlsafe(32))
    return 0


@_command("feedback report")
def _feedback_report(args: argparse.Namespace, settings: Settings) -> int:
    from cds.analytics import report_window, rule_feedback_stats
    from cds.db import make_engine
    from cds.migrate import current_revision

    since, until = report_window(args.since, args.until, datetime.now(UTC))
    engine = make_engine(settings)
    try:
        if current_revision(engine) is None:
            raise CdsError("the database has no schema yet; run `cds db upgrade` first")
        stats = rule_feedback_stats(engine, since, until)
    finally:
        engine.dispose()
    if args.json:
        document = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "rules": [row.as_json() for row in stats],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"cards shown from {since.isoformat()} until {until.isoformat()}")
    if not stats:
        print("no cards were shown in this window")
        return 0
    headers = (
        "rule",
        "version",
        "shown",
        "accepted",
        "overridden",
        "accept %",
        "top override reasons",
    )
    rows = [
        (
            row.rule_id,
            row.rule_version,
            str(row.shown),
            str(row.accepted),
            str(row.overridden),
            f"{row.acceptance_rate * 100:.0f}",
            "; ".join(f"{display} ({count})" for _, display, count in row.top_override_reasons),
        )
        for row in stats
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    for line in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the CDS Hooks service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: CDS_PORT, else 8080")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--graceful-seconds", type=int, default=20, help="time in-flight calls get on SIGTERM"
    )

    evaluate = sub.add_parser("evaluate", help="evaluate a Bundle or a CDS Hooks request offline")
    evaluate.add_argument("file", help="FHIR Bundle or CDS Hooks request (.json, .json.bz2, .gz)")
    evaluate.add_argument("--hook", default="patient-view", choices=HOOKS)
    evaluate.add_argument("--now", help="evaluation date, e.g. 2026-01-01 (default: now)")
    evaluate.add_argument("--json", action="store_true", help="print the CDS Hooks response JSON")

    generate = sub.add_parser("generate", help="write the synthetic example patients as Bundles")
    generate.add_argument("outdir", help="directory to write <scenario-id>.json files into")
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument("--now", help="date the records are relative to (default: today)")

    knowledge = sub.add_parser("knowledge", help="check or export the knowledge")
    ksub = knowledge.add_subparsers(dest="knowledge_command", required=True)
    ksub.add_parser("check", help="validate all knowledge, run every case, print the rules")
    export = ksub.add_parser("export", help="write the knowledge as FHIR resources")
    export.add_argument("outdir", help="directory to write the JSON files into")
    export.add_argument("--format", choices=["fhir"], default="fhir", help="only fhir (R4)")
    export.add_argument(
        "--base-url", help="canonical URL base of the resources (default: CDS_PUBLIC_BASE_URL)"
    )
    coverage = ksub.add_parser("coverage", help="write knowledge/COVERAGE.md")
    coverage.add_argument("--output", help="where to write (default: <knowledge dir>/COVERAGE.md)")
    coverage.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is out of date"
    )

    db = sub.add_parser("db", help="database schema migrations")
    dsub = db.add_subparsers(dest="db_command", required=True)
    upgrade = dsub.add_parser("upgrade", help="bring the schema up to date (Alembic)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    dsub.add_parser("current", help="print the schema revision; exit 1 when behind")

    secrets_parser = sub.add_parser("secrets", help="make secrets for the settings")
    ssub = secrets_parser.add_subparsers(dest="secrets_command", required=True)
    ssub.add_parser("generate", help="print a random key fit for CDS_PATIENT_HASH_KEY")

    feedback = sub.add_parser("feedback", help="what clinicians did with the cards")
    fsub = feedback.add_subparsers(dest="feedback_command", required=True)
    report = fsub.add_parser("report", help="per rule: shown, accepted, overridden, reasons")
    report.add_argument("--since", help="start, a date or date-time (default: 30 days ago)")
    report.add_argument("--until", help="end, a date or date-time (default: now)")
    report.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    name = args.command
    action = getattr(args, f"{name}_command", None)
    if action:
        name = f"{name} {action}"
    try:
        settings = load_settings()
        return _COMMANDS[name](args, settings)
    except KnowledgeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except RequestError as exc:
        print(f"error: {exc.diagnostics}", file=sys.stderr)
        return 2
    except CdsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
