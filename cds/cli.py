"""The ``cds`` command: serve, evaluate offline, and check or export the knowledge."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson
from pydantic import ValidationError

from cds import __version__
from cds.call.request_builder import bundle_resources, read_json_file, request_from_resources
from cds.call.service_call import run_offline
from cds.errors import BadRequest, CdsError, ConfigurationError, RequestError, SettingError
from cds.kb.loader import Knowledge, Service, load_knowledge
from cds.protocol.wire import HOOKS
from cds.settings import Settings, load_settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Handler] = {}

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_T = TypeVar("_T")


def _command(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _COMMANDS[name] = func
        return func

    return register


def _load(settings: Settings) -> Knowledge:
    return load_knowledge(
        settings.knowledge_dir, settings.cards_dir, site_terminology=settings.terminology_dir
    )


@_command("serve")
def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from cds.server import GuardedHttpToolsProtocol, freeze_long_lived_objects
    from cds.trust.clients import configured_trusted_clients

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
    app: Any = "cds.server:served_app"
    if args.workers == 1:
        from cds.app import create_app

        app = create_app(settings, knowledge=knowledge, store=store)
        freeze_long_lived_objects()
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

    from cds.errors import SettingError
    from cds.store.sql import open_store

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


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"--now {text[:40]!r} is not a date or date-time (e.g. 2026-01-01)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


ORDER_HOOKS = ("order-select", "order-sign")


def _evaluation_calls(
    data: Any, hook: str | None, knowledge: Knowledge
) -> list[tuple[Service, dict[str, Any]]]:
    """The calls `cds evaluate` makes: a request file as it is, a record on ``hook``."""
    if isinstance(data, dict) and "hook" in data and "context" in data:
        if hook is not None and hook != data["hook"]:
            raise BadRequest(
                f"--hook {hook} conflicts with the request file's hook {str(data['hook'])!r}: "
                "leave --hook out, or evaluate a Bundle"
            )
        return [(service, data) for service in knowledge.services_for(str(data["hook"]))]
    hook = hook or "patient-view"
    resources = bundle_resources(data)
    if not any(r.get("resourceType") == "Patient" for r in resources):
        raise BadRequest(
            "the Bundle has no Patient resource (the service would answer 412 to such a call)"
        )
    if hook in ORDER_HOOKS:
        raise BadRequest(
            f"the {hook} hook needs a draft order and a plain Bundle gives none: evaluate a "
            "CDS Hooks request file whose context.draftOrders holds the order"
        )
    return [
        (
            service,
            request_from_resources(
                resources, service.prefetch, hook=hook, hook_instance="cli-evaluate"
            ),
        )
        for service in knowledge.services_for(hook)
    ]


def _run_offline(service: Service, body: dict[str, Any], **kwargs: Any) -> Any:
    try:
        return run_offline(service, body, **kwargs)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise BadRequest(f"invalid CDS Hooks request: {where}: {first['msg']}") from None


@_command("evaluate")
def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.panel:
        return _evaluate_panel(args, settings)
    # the rule cases are test data: evaluating a record does not need them
    knowledge = load_knowledge(
        settings.knowledge_dir,
        settings.cards_dir,
        with_cases=False,
        site_terminology=settings.terminology_dir,
    )
    now = _parse_now(args.now)
    calls = _evaluation_calls(read_json_file(Path(args.file)), args.hook, knowledge)
    cards: list[dict[str, Any]] = []
    explanations: list[tuple[str, str, str, list[str]]] = []
    for service, body in calls:
        result = _run_offline(service, body, knowledge=knowledge, settings=settings, now=now)
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


def _evaluate_panel(args: argparse.Namespace, settings: Settings) -> int:
    from cds.call.burden_panel import run_panel
    from cds.store.burden_report import format_burden

    knowledge = load_knowledge(
        settings.knowledge_dir,
        settings.cards_dir,
        with_cases=False,
        site_terminology=settings.terminology_dir,
    )
    result = run_panel(knowledge, settings, Path(args.panel), _parse_now(args.now))
    if args.json:
        document = {
            **result.report.as_json(),
            "patients": result.patients,
            "median_detail": result.median_detail,
            "out_of_order": result.out_of_order,
            "info_repeated": result.info_repeated,
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(result.summary())
    print()
    print(format_burden(result.report))
    return 0


def _read_database(settings: Settings, read: Callable[[Engine], _T]) -> _T:
    """``read`` on the settings' database, which must have its schema (a report, not a write)."""
    from cds.store.migrate import current_revision
    from cds.store.sql import make_engine

    engine = make_engine(settings)
    try:
        if current_revision(engine) is None:
            raise CdsError("the database has no schema yet; run `cds db upgrade` first")
        return read(engine)
    finally:
        engine.dispose()


@_command("report burden")
def _report_burden(args: argparse.Namespace, settings: Settings) -> int:
    from cds.store.analytics import report_window
    from cds.store.burden_report import burden_report, format_burden

    since, until = report_window(args.since, args.until, datetime.now(UTC))
    report = _read_database(settings, lambda engine: burden_report(engine, since, until))
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_burden(report))
    return 0


@_command("knowledge review")
def _knowledge_review(args: argparse.Namespace, settings: Settings) -> int:
    from cds.kb.review import write_review

    knowledge = load_knowledge(settings.knowledge_dir, settings.cards_dir, with_cases=False)
    rule = knowledge.rules.get(args.rule)
    if rule is None:
        raise CdsError(f"no rule {args.rule!r}")
    on = datetime.fromisoformat(args.on).date() if args.on else datetime.now(UTC).date()
    digest = write_review(knowledge, rule, knowledge.rule_files[rule.id], args.by, on)
    print(f"{rule.id} v{rule.version} reviewed by {args.by} on {on.isoformat()} ({digest})")
    return 0


@_command("generate")
def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from cds.fhir.scenarios import example_patients

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    now = _parse_now(args.now).date() if args.now else None
    for scenario in example_patients(now=now, seed=args.seed):
        path = outdir / f"{scenario.id}.json"
        path.write_bytes(orjson.dumps(scenario.bundle, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"{path}  {scenario.title}")
    return 0


CHECK_WIDTH = 100  # columns `cds knowledge check` fits in (a rule id up to 60 characters)


def _print_valueset_table(knowledge: Knowledge) -> None:
    """Each value set's size and source, two lines a set so that it fits ``CHECK_WIDTH``."""
    from cds.kb.code_systems import RXNORM

    print(f"\n{'value set'}  codes")
    for vs_id, vs in sorted(knowledge.valuesets.items()):
        size = len(vs.codes) + len(vs.prefixes)
        source = knowledge.valueset_sources.get(vs_id, "")
        products = sum(
            1
            for ingredients in knowledge.ingredients.values()
            if any((RXNORM, i) in vs.codes for i in ingredients)
        )
        if products:
            source += f"; {products} RxNorm products through the product table"
        print(f"{vs_id}  {size}")
        if source:
            print(
                textwrap.fill(
                    source, CHECK_WIDTH, initial_indent="    ", subsequent_indent="      "
                )
            )


@_command("knowledge check")
def _knowledge_check(args: argparse.Namespace, settings: Settings) -> int:
    from cds.call.rule_cases import run_case
    from cds.kb.review import review_state

    knowledge = _load(settings)
    rows = []
    details: list[str] = []
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
                f"{len(results) - len(failed)}/{len(results)}",
                review_state(knowledge, rule),
            )
        )
        details.append(
            "hooks "
            + ", ".join(rule.hooks)
            + "; cites "
            + rule.source.section
            + (" [beyond source]" if rule.source.beyond_source else "")
        )
    headers = ("rule", "status", "indicator", "cases", "review")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row, detail in zip(rows, details, strict=True):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        print(textwrap.fill(detail, CHECK_WIDTH, initial_indent="    ", subsequent_indent="      "))
    _print_valueset_table(knowledge)
    print(
        f"\n{len(knowledge.rules)} rules, {len(knowledge.services)} services, "
        f"{len(knowledge.valuesets)} value sets, {len(knowledge.education)} education pages; "
        f"{failures} failing cases"
    )
    return 1 if failures else 0


@_command("knowledge export")
def _knowledge_export(args: argparse.Namespace, settings: Settings) -> int:
    from cds.fhir.export import VALIDATED_WITH, check_canonical_base, write_fhir_export

    base = check_canonical_base(
        args.canonical_base or settings.public_base_url, allow_loopback=args.allow_loopback
    )
    knowledge = _load(settings)
    written = write_fhir_export(knowledge, Path(args.outdir), base_url=base)
    counts: dict[str, int] = {}
    for path in written:
        kind = path.name.split("-", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    listed = ", ".join(f"{n} {kind}s" for kind, n in counts.items() if kind != "Bundle")
    print(f"wrote {listed} and one collection Bundle to {args.outdir}")
    print(f"canonical URLs under {base}/fhir/; validated with the {VALIDATED_WITH}")
    return 0


@_command("knowledge coverage")
def _knowledge_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from cds.kb.source_coverage import coverage_gaps, render_coverage

    knowledge = _load(settings)
    output = Path(args.output) if args.output else settings.knowledge_dir / "COVERAGE.md"
    text = render_coverage(knowledge)
    gaps = coverage_gaps(knowledge)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: run `cds knowledge coverage`", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    for heading in gaps:
        print(f"gap: {heading}")
    return 0


@_command("db upgrade")
def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from cds.store.migrate import upgrade_database
    from cds.store.sql import make_engine

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
    from cds.store.migrate import current_revision, head_revision
    from cds.store.sql import make_engine

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
    from cds.store.analytics import report_window, rule_feedback_stats

    since, until = report_window(args.since, args.until, datetime.now(UTC))
    stats = _read_database(settings, lambda engine: rule_feedback_stats(engine, since, until))
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


# --- terminology: a site's own releases ---------------------------------------------------


def _site_folder(args: argparse.Namespace, settings: Settings) -> Path:
    out = Path(args.out) if args.out else settings.terminology_dir
    if out is None:
        raise ConfigurationError(["give --out or set CDS_TERMINOLOGY_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    return out


@_command("terminology import")
def _terminology_import(args: argparse.Namespace, settings: Settings) -> int:
    release = Path(args.release)
    knowledge = load_knowledge(settings.knowledge_dir, settings.cards_dir, with_cases=False)
    out = _site_folder(args, settings)
    if args.kind == "rxnorm":
        from cds.kb.code_systems import RXNORM
        from cds.kb.rxnorm_import import import_rxnorm

        wanted = {c for vs in knowledge.valuesets.values() for s, c in vs.codes if s == RXNORM}
        text, count = import_rxnorm(release, wanted)
        target = out / "rxnorm-ingredients.yaml"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {count} products of {len(wanted)} value-set ingredients to {target}")
    else:
        from cds.kb.snomed_expansion import import_snomed

        concepts = {e.code for vs in knowledge.valueset_files.values() for e in vs.descendants_of}
        text, count = import_snomed(release, concepts)
        target = out / "snomed-descendants.yaml"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {count} descendants of {len(concepts)} SNOMED CT concepts to {target}")
    return 0


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help texts end with their default, unless there is none (the help then says where the
    value comes from)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``error: ...`` and exit status 2.

    Subcommand parsers are made with the class of their parent, so every command has it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cds", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the CDS Hooks service",
        description="Run the CDS Hooks service. Other settings come from CDS_* variables.",
        formatter_class=_DefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, help="port to listen on (default: CDS_PORT, else 8080)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (each loads the knowledge)"
    )
    serve.add_argument(
        "--graceful-seconds", type=int, default=20, help="time in-flight calls get on SIGTERM"
    )

    evaluate = sub.add_parser("evaluate", help="evaluate a Bundle or a CDS Hooks request offline")
    record = evaluate.add_mutually_exclusive_group(required=True)
    record.add_argument(
        "file", nargs="?", help="FHIR Bundle or CDS Hooks request (.json, .json.bz2, .gz)"
    )
    record.add_argument(
        "--panel", metavar="DIR", help="every Bundle in DIR, every hook, twice: the burden table"
    )
    evaluate.add_argument(
        "--hook",
        choices=HOOKS,
        help="hook to call with a Bundle (default: patient-view); a request file has its own",
    )
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
        "--canonical-base",
        "--base-url",
        dest="canonical_base",
        help="base of the resources' canonical URLs, e.g. https://cds.example.org "
        "(default: CDS_PUBLIC_BASE_URL)",
    )
    export.add_argument(
        "--allow-loopback",
        action="store_true",
        help="accept a base on this machine (localhost, 127.0.0.1), e.g. for a local test",
    )
    coverage = ksub.add_parser("coverage", help="write knowledge/COVERAGE.md")
    coverage.add_argument("--output", help="where to write (default: <knowledge dir>/COVERAGE.md)")
    coverage.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is out of date"
    )

    terminology = sub.add_parser("terminology", help="use a site's RxNorm or SNOMED CT release")
    tsub = terminology.add_subparsers(dest="terminology_command", required=True)
    timport = tsub.add_parser("import", help="expand the knowledge's codes from a release")
    timport.add_argument("kind", choices=["rxnorm", "snomed"], help="which release")
    timport.add_argument(
        "release",
        help="release folder: RxNorm (RXNCONSO.RRF, RXNREL.RRF) or SNOMED CT RF2 "
        "(sct2_Relationship_Snapshot, sct2_Description_Snapshot)",
    )
    timport.add_argument("--out", help="site terminology folder (default: CDS_TERMINOLOGY_DIR)")

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

    reports = sub.add_parser("report", help="reports from the database")
    rsub = reports.add_subparsers(dest="report_command", required=True)
    burden = rsub.add_parser("burden", help="cards per 100 calls, repeats, silent, overrides")
    burden.add_argument("--since", help="start, a date or date-time (default: 30 days ago)")
    burden.add_argument("--until", help="end, a date or date-time (default: now)")
    burden.add_argument("--json", action="store_true", help="print JSON")
    review = ksub.add_parser("review", help="sign a rule off: reviewer, date, content hash")
    review.add_argument("rule", help="the rule id")
    review.add_argument("--by", required=True, help="the reviewer's name")
    review.add_argument("--on", help="the review date (default: today)")
    return parser


def _one_line(exc: BaseException) -> str:
    """What a user error says, on one line."""
    if isinstance(exc, RequestError):
        return exc.diagnostics
    if isinstance(exc, SettingError):  # already one line naming the variable
        return str(exc)
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        head = str(exc).split(":\n", 1)[0]
        return f"{head}: " + "; ".join(str(p) for p in problems)
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user error (anything of :mod:`cds.errors`' tree, or a file that
    cannot be read) prints one line starting ``error:`` and exits 2; a bug keeps its traceback.
    """
    args = _parser().parse_args(argv)
    name = args.command
    action = getattr(args, f"{name}_command", None)
    if action:
        name = f"{name} {action}"
    try:
        return _COMMANDS[name](args, load_settings())
    except (CdsError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
