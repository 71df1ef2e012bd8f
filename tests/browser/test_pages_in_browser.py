"""The pages in a real browser: cards, feedback, knowledge, printing and hostile uploads."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect
from pypdf import PdfReader

from cds.kb.loader import Knowledge
from tests.trust.conftest import patient_view_request

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WARNING_PATIENT = "scenario:breast-cancer-new-back-pain"
RULE = "bone-pain-after-breast-cancer"


def _open_warning_card(page: Page) -> None:
    page.goto(f"/preview?patient={WARNING_PATIENT}&hook=patient-view")
    expect(page.locator(f'article.cds-card:has(code:text-is("{RULE}"))').first).to_be_visible()


def _rule_card(page: Page):  # type: ignore[no-untyped-def]
    return page.locator(f'article.cds-card:has(.cds-card__source code:text-is("{RULE}"))').first


def _feedback_numbers(page: Page) -> tuple[int, int, int]:
    """(shown, accepted, overridden) of RULE on /analytics; zeros when it has no row."""
    page.goto("/analytics")
    row = page.locator(f'tr[data-rule-id="{RULE}"]')
    if row.count() == 0:
        return 0, 0, 0
    return tuple(  # type: ignore[return-value]
        int(row.locator(f"td.{name}").inner_text()) for name in ("shown", "accepted", "overridden")
    )


def test_home_page(page: Page, server: str, artifacts: Path) -> None:
    page.goto("/")
    expect(page.locator("h1")).to_contain_text("CDS Hooks service")
    expect(page.locator("#discovery-url")).to_have_text(f"{server}/cds-services")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.screenshot(path=artifacts / "home.png", full_page=True)


def test_preview_shows_warning_card_and_suggestion(page: Page, artifacts: Path) -> None:
    _open_warning_card(page)
    card = _rule_card(page)
    expect(card).to_have_class(re.compile(r"cds-card--warning"))
    expect(card.locator(".indicator")).to_have_text("Warning")
    expect(card.locator(".cds-card__summary")).to_contain_text("bone metastasis")
    toggle = card.locator(".suggestion__toggle").first
    expect(toggle).to_contain_text("bone scan")
    panel = card.locator(".suggestion__detail").first
    expect(panel).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(panel).to_be_visible()
    resource = json.loads(panel.locator("pre code").inner_text())
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["subject"]["reference"].startswith("Patient/")
    card.locator(".cds-card__why summary").click()
    expect(card.locator(".cds-card__why li").first).to_contain_text("breast")
    page.locator(".json-panel summary").first.click()
    request_text = page.locator(".json-panel pre code").first.inner_text()
    assert json.loads(request_text)["hook"] == "patient-view"
    page.screenshot(path=artifacts / "preview.png", full_page=True)


def test_suggestion_opens_from_the_keyboard(page: Page) -> None:
    _open_warning_card(page)
    toggle = _rule_card(page).locator(".suggestion__toggle").first
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(_rule_card(page).locator(".suggestion__detail").first).to_be_visible()


def test_accept_sends_feedback_that_stays_out_of_the_analytics(page: Page, artifacts: Path) -> None:
    before = _feedback_numbers(page)
    _open_warning_card(page)
    card = _rule_card(page)
    card.locator(".suggestion__toggle").first.click()
    card.locator(".js-accept").first.click()
    expect(card.locator(".feedback-status")).to_have_text("Accepted. Feedback recorded.")
    expect(card).to_have_attribute("data-feedback", "accepted")
    # The preview's cards and their feedback live in its own store, never in the card log.
    assert _feedback_numbers(page) == before
    page.screenshot(path=artifacts / "analytics.png", full_page=True)


def test_dismiss_with_reason(page: Page) -> None:
    before = _feedback_numbers(page)
    _open_warning_card(page)
    card = _rule_card(page)
    reason = card.locator("select[name=reason]")
    reason_label = page.locator(f'label[for="{reason.get_attribute("id")}"]')
    expect(reason_label).to_have_text("Dismiss reason")
    reason.select_option("not-clinically-relevant")
    card.locator("input[name=comment]").fill("seen by orthopaedics last week")
    card.get_by_role("button", name="Dismiss with reason").click()
    expect(card.locator(".feedback-status")).to_contain_text("Not clinically relevant")
    expect(card).to_have_attribute("data-feedback", "overridden")
    assert _feedback_numbers(page) == before  # the preview stays out of the analytics


def test_knowledge_rule_page(page: Page, knowledge: Knowledge, artifacts: Path) -> None:
    page.goto("/knowledge")
    page.get_by_role("link", name=knowledge.rules[RULE].title).click()
    expect(page).to_have_url(re.compile(rf"/knowledge/{RULE}$"))
    expect(page.locator("h1")).to_have_text(knowledge.rules[RULE].title)
    expect(page.locator("ul.logic").first).to_contain_text("dated in the last 90 days")
    expect(page.locator("#vs-bone-pain table")).to_contain_text("M54.50")
    cases = knowledge.cases[RULE]
    expect(page.locator("section[aria-labelledby=cases]")).to_contain_text(
        f"{len(cases)} of {len(cases)} cases pass"
    )
    page.screenshot(path=artifacts / "knowledge-rule.png", full_page=True)
    page.goto("/knowledge")
    page.screenshot(path=artifacts / "knowledge.png", full_page=True)


def test_education_page_prints_with_its_headings(
    page: Page, knowledge: Knowledge, artifacts: Path
) -> None:
    slug = "when-to-call-your-doctor"
    if slug not in knowledge.education:
        slug = sorted(knowledge.education)[0]
    education = knowledge.education[slug]
    headings = [line[3:].strip() for line in education.body.splitlines() if line.startswith("## ")]
    assert headings, "the page has section headings"
    page.goto("/education")
    page.screenshot(path=artifacts / "education-index.png", full_page=True)
    page.get_by_role("link", name=education.title).click()
    expect(page.locator("h1")).to_have_text(education.title)
    page.screenshot(path=artifacts / "education.png", full_page=True)
    pdf = page.pdf(format="A4")
    (artifacts / "education.pdf").write_bytes(pdf)
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    text = re.sub(r"\s+", " ", text)
    for heading in [education.title, *headings]:
        assert re.sub(r"\s+", " ", heading) in text
    assert "Card preview" not in text  # the print stylesheet leaves out the menus


def test_uploaded_script_is_shown_as_text_not_run(
    page: Page, tmp_path: Path, artifacts: Path
) -> None:
    payload = '<script>window.__injected = 1</script><img src=x onerror="window.__injected=2">'
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-xss", "gender": "female"}},
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "bc",
                    "code": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": "C50.911",
                                "display": payload,
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
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": "M54.50",
                                "display": payload,
                            }
                        ]
                    },
                    "onsetDateTime": "2026-05-10",
                }
            },
        ],
    }
    upload = tmp_path / "hostile.json"
    upload.write_text(json.dumps(bundle))
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto("/preview")
    page.get_by_label("Or upload a FHIR Bundle or CDS Hooks request").set_input_files(upload)
    page.get_by_label("Evaluate as of").fill("2026-06-01")
    page.get_by_role("button", name="Show cards").click()
    card = _rule_card(page)
    expect(card).to_be_visible()
    card.locator(".cds-card__why summary").click()
    expect(card.locator(".cds-card__why")).to_contain_text("<script>window.__injected = 1</script>")
    assert page.evaluate("window.__injected") is None
    assert page.locator("article script, article img").count() == 0
    assert dialogs == []
    page.screenshot(path=artifacts / "preview-hostile-upload.png", full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_the_open_json_panel_does_not_widen_the_page(
    browser: Browser, base_url: str, artifacts: Path, width: int
) -> None:
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        _open_warning_card(page)
        panels = page.locator(".json-panel summary")
        for index in range(panels.count()):
            panels.nth(index).click()
        expect(page.locator(".json-panel pre").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # the JSON scrolls inside its own box instead
        pre = page.locator(".json-panel pre").first
        assert pre.evaluate("e => e.scrollWidth > e.clientWidth")
        page.screenshot(path=artifacts / f"preview-json-{width}.png", full_page=True)
    finally:
        context.close()


def test_the_patient_filter_narrows_the_list(page: Page) -> None:
    page.goto("/preview")
    search = page.get_by_label("Filter the example patients")
    expect(search).to_be_visible()
    search.fill("new back pain")
    shown = page.locator("#patient option:not([hidden])")
    texts = [t.lower() for t in shown.all_inner_texts()]
    assert any("back pain" in t for t in texts)
    assert len(texts) < page.locator("#patient option").count() / 4


def test_chart_labels_are_whole_and_ticks_count_cards(
    page: Page, knowledge: Knowledge, base_url: str
) -> None:
    # A card shown to an EHR's call and accepted (the preview's own cards are not counted).
    service = "breast-cancer-followup-patient-view"
    request = patient_view_request(patient_id=f"chart-{uuid.uuid4().hex[:12]}")
    with httpx.Client(base_url=base_url, timeout=30) as http:
        cards = http.post(f"/cds-services/{service}", json=request).json()["cards"]
        card = next(c["uuid"] for c in cards if c["indicator"] == "warning")
        stamp = datetime.now(UTC).isoformat()
        feedback = {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": stamp}]}
        assert http.post(f"/cds-services/{service}/feedback", json=feedback).is_success
    page.goto("/analytics")
    labels = page.locator("svg.chart text.chart__label")
    assert labels.count() >= 1
    for index in range(labels.count()):
        box = labels.nth(index).evaluate("e => { const b = e.getBBox(); return [b.x, b.width]; }")
        assert box[0] >= 0, labels.nth(index).text_content()
    title = knowledge.rules[RULE].title
    assert any(title.startswith(label[:20]) for label in labels.all_text_contents())
    ticks = page.locator("svg.chart text.chart__tick").all_text_contents()
    assert ticks
    assert all(tick.isdigit() for tick in ticks)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
