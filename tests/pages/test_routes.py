"""The page routes through the app (TestClient): status codes, content, escaping, headers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cds.call.request_builder import bundle_resources, request_from_resources
from cds.call.rule_cases import run_case
from cds.kb.loader import Knowledge
from cds.settings import Settings
from tests.trust.conftest import patient_view_request

WARNING_PATIENT = "scenario:breast-cancer-new-back-pain"
RULE = "bone-pain-after-breast-cancer"
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class _Controls(HTMLParser):
    """Collects form controls, label targets, scripts and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.scripts: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        if tag in ("select", "textarea") or (
            tag == "input" and found.get("type") not in ("hidden", "submit")
        ):
            self.controls.append(found)
        if tag == "label" and found.get("for"):
            self.label_for.add(str(found["for"]))
        if tag == "script":
            self.scripts.append(found)
        if tag in ("h1", "h2", "h3"):
            self.headings.append(tag)


def _parse(html: str) -> _Controls:
    parser = _Controls()
    parser.feed(html)
    return parser


def _card_uuids(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-card-uuid="([^"]+)"\s+data-service-id="([^"]+)"', html)


def _hostile_bundle() -> dict[str, Any]:
    active = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "p1",
                    "gender": "female",
                    "name": [{"text": PAYLOAD}],
                }
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "bc",
                    "code": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": "C50.911",
                                "display": PAYLOAD,
                            }
                        ]
                    },
                    "onsetDateTime": "2019-03-04",
                }
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "pain",
                    "clinicalStatus": active,
                    "code": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": "M54.50",
                                "display": PAYLOAD,
                            }
                        ]
                    },
                    "onsetDateTime": "2026-05-10",
                }
            },
        ],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/preview",
        f"/preview?patient={WARNING_PATIENT}",
        "/knowledge",
        f"/knowledge/{RULE}",
        "/education",
        "/analytics",
    ],
)
def test_every_page_is_accessible_html(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = _parse(response.text)
    assert page.lang == "en"
    assert page.headings.count("h1") == 1
    unlabelled = [c for c in page.controls if c.get("id") not in page.label_for]
    assert unlabelled == []
    assert all((s.get("src") or "").startswith("/static/") for s in page.scripts)


def test_every_education_page_renders(client: TestClient, knowledge: Knowledge) -> None:
    index = client.get("/education").text
    assert knowledge.education
    for slug, page in knowledge.education.items():
        assert f'href="/education/{slug}"' in index
        response = client.get(f"/education/{slug}")
        assert response.status_code == 200
        assert ">" + _escape(page.title) + "</h1>" in response.text
        for section in page.sections:
            assert _escape(section) in response.text


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def test_home_gives_the_discovery_url_from_the_public_base_url(
    knowledge: Knowledge, settings: Settings
) -> None:
    from cds.app import create_app

    custom = settings.model_copy(update={"public_base_url": "https://cds.example.org/base/"})
    with TestClient(create_app(custom, knowledge=knowledge)) as client:
        html = client.get("/").text
    assert "https://cds.example.org/base/cds-services" in html
    for service in knowledge.services.values():
        assert service.spec.id in html
        assert service.spec.hook in html


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/static/site.css", 200),
        ("/static/preview.js", 200),
        ("/static/nothing.css", 404),
        ("/static/..%2Fapp.py", 404),
        ("/knowledge/no-such-rule", 404),
        ("/education/no-such-page", 404),
    ],
)
def test_static_files_and_unknown_pages(client: TestClient, path: str, status: int) -> None:
    assert client.get(path).status_code == status


def test_preview_of_a_patient_with_a_warning_card(client: TestClient) -> None:
    response = client.get(f"/preview?patient={WARNING_PATIENT}&hook=patient-view")
    assert response.status_code == 200
    html = response.text
    assert "cds-card--warning" in html
    assert "Order a whole-body bone scan" in html
    assert "&#34;resourceType&#34;: &#34;ServiceRequest&#34;" in html
    assert "Why this card fired" in html
    assert "Request and response JSON" in html
    assert _card_uuids(html)


def test_preview_runs_every_rule_case_as_a_patient(
    client: TestClient, knowledge: Knowledge
) -> None:
    rule = knowledge.rules[RULE]
    # The preview sends every prefetch key, so cases about null or missing prefetch do not apply.
    cases = [
        case
        for case in knowledge.cases[RULE]
        if case.expect.status == 200 and not case.null_prefetch and not case.omit_prefetch
    ]
    assert cases
    for case in cases:
        html = client.get(f"/preview?patient=case:{RULE}:{case.name}").text
        fired = f"(rule <code>{RULE}</code>)" in html
        expected = run_case(knowledge, rule, case).fired
        assert fired == expected, case.name


def test_uploaded_bundle_with_markup_is_escaped(client: TestClient) -> None:
    response = client.post(
        "/preview",
        data={"hook": "patient-view", "as_of": "2026-06-01"},
        files={"upload": ("hostile.json", json.dumps(_hostile_bundle()), "application/json")},
    )
    assert response.status_code == 200
    html = response.text
    assert f"(rule <code>{RULE}</code>)" in html  # the card fired, so the data was shown
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html


def test_uploaded_cds_hooks_request_uses_its_own_hook(
    client: TestClient, knowledge: Knowledge
) -> None:

    service = knowledge.services_for("encounter-start")[0]
    body = request_from_resources(
        bundle_resources(_hostile_bundle()),
        service.prefetch,
        hook="encounter-start",
        hook_instance="upload-test",
    )
    response = client.post(
        "/preview",
        data={"hook": "patient-view", "as_of": "2026-06-01"},
        files={"upload": ("request.json", json.dumps(body), "application/json")},
    )
    assert response.status_code == 200
    assert "hook <code>encounter-start</code>" in response.text
    assert service.spec.id in response.text


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"   ", 400, "empty"),
        (b'{"resourceType": "Bundle", "entry": []}', 400, "no Patient"),
        (b"[1, 2]", 400, "Expected a FHIR Bundle"),
    ],
)
def test_bad_uploads_say_what_is_wrong(
    client: TestClient, content: bytes, status: int, message: str
) -> None:
    response = client.post(
        "/preview",
        data={"hook": "patient-view"},
        files={"upload": ("bad.json", content, "application/json")},
    )
    assert response.status_code == status
    assert message in response.text
    assert 'role="alert"' in response.text


def test_too_large_upload_is_refused(knowledge: Knowledge, settings: Settings) -> None:
    from cds.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small, knowledge=knowledge)) as client:
        big = json.dumps({"resourceType": "Bundle", "entry": [], "pad": "x" * 2000})
        response = client.post(
            "/preview",
            data={"hook": "patient-view"},
            files={"upload": ("big.json", big, "application/json")},
        )
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("patient=scenario:nobody", "No example patient"),
        (f"patient={WARNING_PATIENT}&hook=no-such-hook", "Unknown hook"),
        (f"patient={WARNING_PATIENT}&order=aspirin", "Unknown draft order"),
        (f"patient={WARNING_PATIENT}&as_of=yesterday", "not a date"),
    ],
)
def test_bad_preview_choices_say_what_is_wrong(
    client: TestClient, query: str, message: str
) -> None:
    response = client.get(f"/preview?{query}")
    assert response.status_code == 400
    assert message in response.text


def test_order_hook_needs_a_draft_order_when_a_service_answers_it(
    client: TestClient, knowledge: Knowledge
) -> None:
    order_hooks = [h for h in ("order-select", "order-sign") if knowledge.services_for(h)]
    if not order_hooks:
        pytest.skip("no service answers an order hook yet")
    hook = order_hooks[0]
    missing = client.get(f"/preview?patient={WARNING_PATIENT}&hook={hook}")
    assert missing.status_code == 400
    assert "Pick a draft order" in missing.text
    placed = client.get(f"/preview?patient={WARNING_PATIENT}&hook={hook}&order=olaparib")
    assert placed.status_code == 200
    assert "1597582" in placed.text


def test_knowledge_index_lists_every_rule_with_its_review_state(
    client: TestClient, knowledge: Knowledge
) -> None:
    html = client.get("/knowledge").text
    for rule in knowledge.rules.values():
        assert f'href="/knowledge/{rule.id}"' in html
        assert _escape(rule.source.section) in html
    if any(rule.review.state == "unreviewed" for rule in knowledge.rules.values()):
        assert "unreviewed" in html


def test_rule_page_shows_logic_value_sets_and_case_results(
    client: TestClient, knowledge: Knowledge
) -> None:
    rule = knowledge.rules[RULE]
    html = client.get(f"/knowledge/{RULE}").text
    assert "dated in the last 90 days" in html
    for file in (knowledge.valueset_files["bone-pain"],):
        for code in file.codes:
            assert f"<code>{code.code}</code>" in html
    cases = knowledge.cases[RULE]
    passing = sum(run_case(knowledge, rule, case).passed for case in cases)
    assert f"{passing} of {len(cases)} cases pass right now" in html


def _hook_card(client: TestClient, patient_id: str) -> tuple[str, str]:
    """(card uuid, service id) of the warning card a real hook call gets for a patient with a
    breast cancer history and new back pain (one patient per card: a warning is not shown to
    the same patient twice in a day)."""
    service = "breast-cancer-followup-patient-view"
    response = client.post(
        f"/cds-services/{service}", json=patient_view_request(patient_id=patient_id)
    )
    assert response.status_code == 200, response.text
    card = next(c for c in response.json()["cards"] if c["indicator"] == "warning")
    return card["uuid"], service


def _feedback_on(accepted_card: str, overridden_card: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat()
    reason = {
        "system": "urn:cds:breast-cancer-followup:override-reason",
        "code": "patient-declined",
        "display": "Patient declined",
    }
    return {
        "feedback": [
            {"card": accepted_card, "outcome": "accepted", "outcomeTimestamp": stamp},
            {
                "card": overridden_card,
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": PAYLOAD},
                "outcomeTimestamp": stamp,
            },
        ]
    }


def _rule_row(html: str) -> dict[str, str] | None:
    row = re.search(rf'<tr data-rule-id="{RULE}">(.*?)</tr>', html, re.DOTALL)
    if row is None:
        return None
    return dict(re.findall(r'<td class="num (\w+)">(\d+)</td>', row.group(1)))


def test_accepted_and_overridden_feedback_shows_on_analytics(
    client: TestClient, knowledge: Knowledge
) -> None:
    accepted_card, service = _hook_card(client, "analytics-accepted")
    overridden_card, _ = _hook_card(client, "analytics-overridden")
    response = client.post(
        f"/cds-services/{service}/feedback", json=_feedback_on(accepted_card, overridden_card)
    )
    assert response.status_code == 200
    html = client.get("/analytics").text
    assert _rule_row(html) == {"shown": "2", "accepted": "1", "overridden": "1"}
    assert "Patient declined (1)" in html
    assert 'class="bar bar--accepted"' in html


def test_preview_cards_and_their_feedback_stay_out_of_the_card_log(client: TestClient) -> None:
    html = client.get(f"/preview?patient={WARNING_PATIENT}").text
    accepted_card, service = _card_uuids(html)[0]
    html = client.get(f"/preview?patient={WARNING_PATIENT}").text
    overridden_card, _ = _card_uuids(html)[0]
    feedback = _feedback_on(accepted_card, overridden_card)
    response = client.post(f"/cds-services/{service}/feedback", json=feedback)
    assert response.status_code == 200  # the preview page's buttons still get an answer
    assert response.json() == {"received": 2, "new": 2}
    assert _rule_row(client.get("/analytics").text) is None
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM shown_cards")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM feedback")).scalar() == 0
    held = runtime.preview_store.feedback_for(overridden_card)
    assert [f.outcome for f in held] == ["overridden"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=2026-02-30", "Since is not a date"),
        ("since=2026-05-02&until=2026-05-01", "on or before"),
    ],
)
def test_bad_analytics_window(client: TestClient, query: str, message: str) -> None:
    response = client.get(f"/analytics?{query}")
    assert response.status_code == 400
    assert message in response.text


def test_empty_analytics_window(client: TestClient) -> None:
    html = client.get("/analytics?since=2001-01-01&until=2001-01-31").text
    assert "No cards were shown from 2001-01-01 to 2001-01-31" in html


def test_analytics_words_a_code_only_override_reason_as_the_service_does(
    client: TestClient, knowledge: Knowledge
) -> None:
    """The CDS Hooks Sandbox sends an override reason's system and code, with no display.

    The card comes from a call as an EHR makes it: the preview's own calls are not counted."""
    service = "breast-cancer-followup-patient-view"
    answer = client.post(f"/cds-services/{service}", json=patient_view_request())
    card = next(c["uuid"] for c in answer.json()["cards"] if c["indicator"] == "warning")
    feedback = {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "urn:cds:breast-cancer-followup:override-reason",
                "code": "already-addressed",
            }
        },
        "outcomeTimestamp": datetime.now(UTC).isoformat(),
    }
    assert client.post(
        f"/cds-services/{service}/feedback", json={"feedback": [feedback]}
    ).is_success
    html = client.get("/analytics").text
    row = re.search(rf'<tr data-rule-id="{RULE}">(.*?)</tr>', html, re.DOTALL)
    assert row is not None
    wording = knowledge.override_reasons["already-addressed"].display
    assert wording != "already-addressed"
    assert f"{wording} (1)" in row.group(1)
    assert "<li>already-addressed" not in row.group(1)
    # the chart names rules by title, and its axis counts whole cards
    chart = html[html.index("<svg") : html.index("</svg>")]
    first_words = knowledge.rules[RULE].title.split()[0]
    assert re.search(rf'class="chart__label"[^>]*><tspan[^>]*>{first_words}', chart)
    ticks = re.findall(r'class="chart__tick"[^>]*>([^<]*)<', chart)
    assert ticks
    assert all(tick.isdigit() for tick in ticks)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/knowledge/nope", "/education/nope"])
def test_an_unknown_page_is_html_for_a_browser_and_an_outcome_for_an_api_client(
    client: TestClient, path: str
) -> None:
    page = client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No such" in page.text
    assert "&#39;nope&#39;" in page.text
    assert _parse(page.text).headings.count("h1") == 1
    for accept in (
        "application/json",
        "application/fhir+json",
        "*/*",
        "",
        "text/html;q=0.5, application/json",
    ):
        answer = client.get(path, headers={"Accept": accept})
        assert answer.status_code == 404
        assert answer.json()["resourceType"] == "OperationOutcome", accept


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_another_host(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert not re.findall(r"https?://", page.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/docs-assets/")
        assert client.get(asset).status_code == 200
    assert client.get("/docs-assets/nothing.js").status_code == 404


def test_a_preview_with_neither_patient_nor_file_says_so(client: TestClient) -> None:
    response = client.post("/preview", data={"hook": "patient-view", "patient": ""})
    assert response.status_code == 400
    assert "Choose an example patient or upload a file" in response.text
    assert client.get("/preview").status_code == 200  # the empty form is no error


def test_an_upload_is_kept_for_the_next_run_and_may_be_bz2(client: TestClient) -> None:
    import bz2

    packed = bz2.compress(json.dumps(_hostile_bundle()).encode())
    first = client.post(  # a patient still chosen from the run before: the new file wins
        "/preview",
        data={"hook": "patient-view", "as_of": "2026-06-01", "patient": WARNING_PATIENT},
        files={"upload": ("record.json.bz2", packed, "application/x-bzip2")},
    )
    assert first.status_code == 200
    assert f"(rule <code>{RULE}</code>)" in first.text
    token = re.search(r'name="kept_upload" value="([^"]+)"', first.text)
    assert token is not None
    assert "<strong>record.json.bz2</strong>" in first.text
    assert "Uploaded file record.json.bz2" in first.text
    assert f'value="{WARNING_PATIENT}" selected' not in first.text
    again = client.post(
        "/preview",
        data={"hook": "patient-view", "as_of": "2026-06-01", "kept_upload": token.group(1)},
    )
    assert again.status_code == 200
    assert "Uploaded file record.json.bz2" in again.text
    assert f"(rule <code>{RULE}</code>)" in again.text
    # choosing an example patient wins over the kept file, which stays offered
    patient = client.post(
        "/preview",
        data={"patient": WARNING_PATIENT, "kept_upload": token.group(1)},
    )
    assert "Uploaded file" not in patient.text
    assert token.group(1) in patient.text
    gone = client.post("/preview", data={"hook": "patient-view", "kept_upload": "forgotten"})
    assert gone.status_code == 400
    assert "no longer kept" in gone.text


def test_a_compressed_upload_that_unpacks_too_far_is_refused(
    knowledge: Knowledge, settings: Settings
) -> None:
    import bz2

    from cds.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 1000})
    bomb = bz2.compress(b" " * 100_000 + b"{}")
    assert len(bomb) < 1000
    with TestClient(create_app(small, knowledge=knowledge)) as client:
        response = client.post(
            "/preview",
            data={"hook": "patient-view"},
            files={"upload": ("bomb.json.bz2", bomb, "application/x-bzip2")},
        )
    assert response.status_code == 413
    assert "unpacks to more than 4000 bytes" in response.text


def test_rule_page_shows_a_descendants_of_concept(client: TestClient) -> None:
    html = client.get("/knowledge/metastatic-without-palliative-care").text
    assert "<code>254837009</code>" in html
    assert "Malignant neoplasm of breast and its descendants" in html
