"""The web app in headless Chromium against the running service and library."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from browsing import Site, screenshot

from servers import TEST_PASSWORD

CONTRAST_AUDIT = Path(__file__).with_name("contrast.js")
NAMES_AUDIT = Path(__file__).with_name("names.js")
pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.browser]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"
HEBREW_QUESTION = "איפה כתוב ואהבת לרעך כמוך?"
HOSTILE_QUESTION = "Show the markup <img src=x onerror=alert(1)> for love your neighbor"
LONG_QUESTION = "Explain at length: love your neighbor as yourself"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def new_email() -> str:
    return f"learner-{uuid.uuid4().hex[:10]}@example.org"


def register(page: Any, email: str) -> None:
    page.goto("/")
    page.get_by_role("button", name="New here? Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()


def ask(page: Any, question: str) -> None:
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


def ask_and_wait(page: Any, question: str) -> Any:
    """Ask ``question`` and return the answer once it is complete."""
    ask(page, question)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=60_000)
    return answer


def last_answer(page: Any) -> Any:
    return page.get_by_test_id("assistant-message").last


def access_token(page: Any) -> str:
    token = page.evaluate("localStorage.getItem('torah-study.access')")
    assert token, "no access token in local storage"
    return str(token)


def api_get(site: Site, page: Any, path: str) -> Any:
    with site.client() as client:
        response = client.get(
            path, headers={"Authorization": f"Bearer {access_token(page)}"}
        )
    assert response.status_code == 200, response.text
    return response.json()


def hebrew_letters(locator: Any) -> str:
    """The element's text without vowel points, cantillation or maqaf."""
    return re.sub(r"[\u0591-\u05C7]", "", locator.inner_text())


def record_answer_growth(page: Any) -> None:
    """Note every length the newest answer's text has while it streams."""
    page.evaluate(
        """() => {
        window.__lengths = [];
        const list = document.querySelector('[data-testid=messages]');
        new MutationObserver(() => {
            const answers = list.querySelectorAll('[data-testid=assistant-message]');
            const last = answers[answers.length - 1];
            if (!last || last.dataset.status !== 'streaming') return;
            const text = last.querySelector('.answer').innerText;
            window.__lengths.push(text.length);
        }).observe(list, {subtree: true, childList: true, characterData: true,
                          attributes: true});
    }"""
    )


def test_login_screen_is_the_first_page(page: Any) -> None:
    response = page.goto("/")
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    scripts = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert "'unsafe-inline'" not in scripts
    assert "'sha256-" in scripts
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    screenshot(page, "01-sign-in")


def test_wrong_password_shows_a_clear_error(page: Any) -> None:
    email = new_email()
    register(page, email)
    page.get_by_test_id("sign-out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("auth-error")).to_have_text(
        "Incorrect email or password."
    )
    page.get_by_test_id("language-toggle").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.get_by_role("button", name="כניסה", exact=True).click()
    expect(page.get_by_test_id("auth-error")).to_have_text("הדוא״ל או הסיסמה שגויים.")
    screenshot(page, "11-hebrew-sign-in")


def test_weak_password_is_refused_on_registration(page: Any) -> None:
    page.goto("/")
    page.get_by_role("button", name="New here? Create an account").click()
    page.get_by_label("Email").fill(new_email())
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_test_id("auth-error")).to_be_visible()
    expect(page.get_by_test_id("sidebar")).to_have_count(0)


def test_learner_flow_from_sign_in_to_delete(page: Any, site: Site) -> None:
    email = new_email()
    register(page, email)
    expect(page.get_by_test_id("no-conversations")).to_be_visible()
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    screenshot(page, "02-empty-state")

    # Ask; the answer arrives in pieces while its status is streaming.
    record_answer_growth(page)
    ask(page, QUESTION)
    expect(page.get_by_test_id("stop")).to_be_visible()
    expect(last_answer(page)).to_have_attribute("data-status", "streaming")
    expect(last_answer(page).get_by_text("love of one's neighbour")).to_be_visible()
    screenshot(page, "03-streaming")
    expect(last_answer(page)).to_have_attribute(
        "data-status", "complete", timeout=60_000
    )
    lengths = page.evaluate("window.__lengths")
    growth = sorted({n for n in lengths if n > 0})
    assert len(growth) >= 3, f"the answer did not stream: {growth}"
    expect(page.get_by_test_id("send")).to_be_visible()
    answer = last_answer(page)
    expect(answer.locator("strong")).to_have_text("love of one's neighbour as oneself")

    # The sources and the verified citation.
    expect(answer.get_by_test_id("show-sources")).to_contain_text("Sources (")
    citation = answer.locator("button.citation").first
    rank = int(citation.get_attribute("data-rank") or "0")
    citation.click()
    panel = page.get_by_test_id("source-panel")
    expect(panel).to_be_visible()
    card = panel.locator("[data-testid=source-card][data-active]")
    expect(card).to_have_attribute("data-ref", "Leviticus 19:18")
    hebrew = card.get_by_test_id("source-he")
    english = card.get_by_test_id("source-en")
    expect(hebrew).to_have_attribute("dir", "rtl")
    expect(hebrew).not_to_be_empty()
    assert "ואהבת לרעך כמוך" in hebrew_letters(hebrew)
    expect(english).to_contain_text("love thy neighbour")
    expect(card.get_by_test_id("source-verified")).to_have_text(
        "Cited and checked against the text · "
        "1 quotation found word for word in this text"
    )
    expect(panel.get_by_test_id("verification-summary")).to_contain_text(
        "1 quotation and"
    )
    link = card.get_by_role("link", name="Open on Sefaria")
    expect(link).to_have_attribute("href", "https://www.sefaria.org/Leviticus.19.18")
    screenshot(page, "04-source-panel")

    card.get_by_role("button", name="Open in context").click()
    context = card.get_by_test_id("context-view")
    expect(context).to_contain_text("Leviticus 19")
    marked = context.locator("[data-highlight]")
    expect(marked).to_have_count(1)
    expect(marked).to_contain_text("Leviticus 19:18")
    assert context.locator("[data-testid=source-he]").count() > 10
    screenshot(page, "05-open-in-context")
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)

    # The answer is saved with its sources and the citation's rank.
    conversation_id = re.search(r"[?&]c=([^&]+)", page.url).group(1)  # type: ignore[union-attr]
    saved = api_get(site, page, f"/conversations/{conversation_id}")
    assistant = saved["messages"][1]
    assert assistant["status"] == "complete"
    cited = [s for s in assistant["sources"] if s["rank"] == rank]
    assert len(cited) == 1
    assert cited[0]["ref"] == "Leviticus 19:18"
    assert cited[0]["verified"]

    # Rate it, then reload: conversation, sources and rating are still there.
    answer.get_by_test_id("thumbs-up").click()
    expect(answer.get_by_test_id("thumbs-up")).to_have_attribute("aria-pressed", "true")
    page.reload()
    item = page.get_by_test_id("conversation-item")
    expect(item).to_have_count(1)
    # The title is the question without its question mark.
    expect(item.get_by_role("button").first).to_have_text(QUESTION.rstrip("?"))
    expect(item.get_by_role("button").first).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("user-text")).to_have_text(QUESTION)
    answer = last_answer(page)
    expect(answer.get_by_test_id("thumbs-up")).to_have_attribute("aria-pressed", "true")
    answer.locator(f"button.citation[data-rank='{rank}']").first.click()
    card = page.locator("[data-testid=source-card][data-active]")
    expect(card.get_by_test_id("source-he")).not_to_be_empty()
    assert "ואהבת לרעך" in hebrew_letters(card.get_by_test_id("source-he"))
    expect(card.get_by_test_id("source-en")).to_contain_text("love thy neighbour")
    page.get_by_role("button", name="Close sources").click()

    # Export as Markdown.
    with page.expect_download() as download:
        page.get_by_test_id("export").click()
    exported = download.value.path().read_text(encoding="utf-8")
    assert QUESTION.replace("?", "") in exported
    assert "Leviticus 19:18" in exported

    # Rename, then delete after confirming.
    page.get_by_role("button", name=re.compile("^Conversation actions")).click()
    page.get_by_role("menuitem", name="Rename").click()
    title = page.get_by_label("Title")
    title.fill("Love of neighbour")
    title.press("Enter")
    expect(item.get_by_role("button").first).to_have_text("Love of neighbour")
    page.reload()
    expect(page.get_by_test_id("conversation-title")).to_have_text("Love of neighbour")

    page.get_by_role("button", name=re.compile("^Conversation actions")).click()
    page.get_by_role("menuitem", name="Delete").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("Love of neighbour")
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("no-conversations")).to_be_visible()
    assert api_get(site, page, "/conversations")["items"] == []

    # Sign out: the tokens are gone and the sign-in screen is back.
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('torah-study.refresh')") is None


def test_hebrew_question_and_interface_render_right_to_left(page: Any) -> None:
    register(page, new_email())
    ask_and_wait(page, HEBREW_QUESTION)
    question = page.get_by_test_id("user-text").last
    assert question.evaluate("e => e.matches(':dir(rtl)')")
    paragraph = last_answer(page).locator(".answer p").first
    assert paragraph.evaluate("e => e.matches(':dir(rtl)')")
    expect(last_answer(page)).to_contain_text("ואהבת לרעך כמוך")

    page.get_by_test_id("language-toggle").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "he")
    expect(page.get_by_test_id("new-conversation")).to_have_text("שיחה חדשה")
    sidebar = page.get_by_test_id("sidebar").bounding_box()
    main = page.get_by_role("main").bounding_box()
    assert sidebar["x"] > main["x"], "the sidebar should be on the right"
    font = page.evaluate(
        "getComputedStyle(document.querySelector('.hebrew') ||"
        " document.body).fontFamily"
    )
    last_answer(page).locator("button.citation").first.click()
    card = page.locator("[data-testid=source-card][data-active]")
    expect(card.get_by_test_id("source-he")).to_be_visible()
    font = card.get_by_test_id("source-he").evaluate(
        "e => getComputedStyle(e).fontFamily"
    )
    assert "Noto Serif Hebrew" in font
    screenshot(page, "06-hebrew-interface")
    page.reload()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")


def test_markup_in_questions_and_answers_stays_text(page: Any) -> None:
    register(page, new_email())
    ask_and_wait(page, HOSTILE_QUESTION)
    expect(page.get_by_test_id("user-text").last).to_have_text(HOSTILE_QUESTION)
    messages = page.get_by_test_id("messages")
    assert messages.locator("img").count() == 0
    assert messages.locator("script").count() == 0
    assert messages.locator("a[href^='javascript']").count() == 0
    assert messages.locator("[onerror]").count() == 0
    expect(last_answer(page)).to_contain_text("<img src=x onerror=alert(1)>")
    code = last_answer(page).locator("code")
    expect(code).to_have_text("[1]")
    expect(code.locator("button")).to_have_count(0)
    expect(last_answer(page).locator("a")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("user-text").last).to_have_text(HOSTILE_QUESTION)
    assert page.get_by_test_id("messages").locator("img").count() == 0
    time.sleep(0.5)  # a handler that fired would have opened a dialog by now
    assert not page.problems


def test_stop_marks_the_answer_interrupted(page: Any, site: Site) -> None:
    register(page, new_email())
    ask(page, LONG_QUESTION)
    answer = last_answer(page)
    expect(answer.get_by_text("The verse teaches")).to_be_visible()
    page.get_by_test_id("stop").click()
    expect(answer).to_have_attribute("data-status", "interrupted")
    expect(answer.get_by_test_id("message-status")).to_have_text(
        "Stopped before the end"
    )
    expect(page.get_by_test_id("send")).to_be_visible()
    conversation_id = re.search(r"[?&]c=([^&]+)", page.url).group(1)  # type: ignore[union-attr]

    deadline = time.time() + 20
    while True:
        saved = api_get(site, page, f"/conversations/{conversation_id}")
        status = saved["messages"][1]["status"]
        if status != "streaming" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert status == "interrupted"
    assert saved["messages"][1]["content"].startswith("The verse teaches")
    page.reload()
    expect(last_answer(page)).to_have_attribute("data-status", "interrupted")
    expect(last_answer(page).get_by_test_id("retry")).to_be_visible()
    screenshot(page, "07-stopped")


def test_parashah_card_matches_the_api(page: Any, site: Site) -> None:
    register(page, new_email())
    day = "2025-10-14"
    page.goto(f"/?date={day}")
    card = page.get_by_test_id("parashah-card")
    expect(card).to_be_visible()
    week = api_get(site, page, f"/calendar/parashah?date={day}&diaspora=false")
    expect(card.get_by_test_id("parashah-name")).to_have_text(week["name"])
    expect(card.get_by_test_id("parashah-refs")).to_contain_text(
        week["parashot"][0]["ref"]
    )
    questions = card.get_by_test_id("suggested-question")
    expect(questions).to_have_count(len(week["questions"]))
    assert len(week["questions"]) == 3
    expect(questions.first).to_have_text(week["questions"][0]["en"])

    page.get_by_label("Diaspora").check()
    diaspora = api_get(site, page, f"/calendar/parashah?date={day}&diaspora=true")
    expect(card.get_by_test_id("parashah-name")).to_have_text(diaspora["name"])
    expect(card).to_contain_text("Diaspora")

    questions.first.click()
    expect(page.get_by_test_id("user-text")).to_have_text(week["questions"][0]["en"])
    expect(last_answer(page)).to_have_attribute(
        "data-status", "complete", timeout=60_000
    )


def test_keyboard_alone_asks_and_opens_a_source(page: Any) -> None:
    register(page, new_email())
    # A new conversation puts the focus in the question box.
    expect(page.get_by_label("Your question")).to_be_focused()
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    expect(last_answer(page)).to_have_attribute(
        "data-status", "complete", timeout=60_000
    )
    citation = last_answer(page).locator("button.citation").first
    for _ in range(60):
        page.keyboard.press("Shift+Tab")
        if citation.evaluate("e => e === document.activeElement"):
            break
    else:
        pytest.fail("Shift+Tab never reached the citation")
    outline = citation.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none", "a focused citation must show a focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("source-panel")).to_be_visible()
    expect(page.locator("[data-testid=source-card][data-active]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("source-panel")).to_have_count(0)
    expect(citation).to_be_focused()


def test_text_contrast_passes_wcag_aa(page: Any) -> None:
    register(page, new_email())
    ask_and_wait(page, QUESTION)
    last_answer(page).locator("button.citation").first.click()
    expect(page.locator("[data-testid=source-card][data-active]")).to_be_visible()
    failures = page.evaluate(CONTRAST_AUDIT.read_text(encoding="utf-8"))
    assert failures == [], failures


def test_every_control_has_a_name(page: Any) -> None:
    register(page, new_email())
    ask_and_wait(page, QUESTION)
    last_answer(page).locator("button.citation").first.click()
    expect(page.locator("[data-testid=source-card][data-active]")).to_be_visible()
    unnamed = page.evaluate(NAMES_AUDIT.read_text(encoding="utf-8"))
    assert unnamed == [], unnamed
    page.get_by_test_id("language-toggle").click()
    unnamed = page.evaluate(NAMES_AUDIT.read_text(encoding="utf-8"))
    assert unnamed == [], unnamed


def test_email_code_step_signs_in(mfa_page: Any, mfa_site: tuple[Any, Any]) -> None:
    page, (_, mailbox) = mfa_page, mfa_site
    email = new_email()
    page.goto("/")
    page.get_by_role("button", name="New here? Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.get_by_label("Six-digit code").fill(mailbox.code_for(email))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()

    page.get_by_test_id("sign-out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    screenshot(page, "08-email-code")
    code = mailbox.code_for(email)
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label("Six-digit code").fill(wrong)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("auth-error")).to_be_visible()
    page.get_by_label("Six-digit code").fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()


def test_expired_access_token_is_renewed(page: Any, site: Site) -> None:
    register(page, new_email())
    ask_and_wait(page, QUESTION)
    refresh = page.evaluate("localStorage.getItem('torah-study.refresh')")
    page.evaluate("localStorage.setItem('torah-study.access', 'expired')")
    page.reload()
    expect(page.get_by_test_id("conversation-item")).to_have_count(1)
    expect(page.get_by_test_id("user-text")).to_have_text(QUESTION)
    assert access_token(page) != "expired"
    assert page.evaluate("localStorage.getItem('torah-study.refresh')") != refresh


def test_ended_session_returns_to_sign_in(page: Any, site: Site) -> None:
    register(page, new_email())
    with site.client() as client:
        response = client.post(
            "/auth/logout", headers={"Authorization": f"Bearer {access_token(page)}"}
        )
    assert response.status_code == 204
    ask(page, QUESTION)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "Your session ended. Please sign in again."
    )


def test_question_outside_the_library_looks_abstained(page: Any) -> None:
    register(page, new_email())
    ask(page, "What is the capital of France?")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(answer).to_have_attribute("data-mode", "abstain")
    expect(answer.get_by_test_id("abstained")).to_have_text("No source in the library")
    expect(answer.locator("button.citation")).to_have_count(0)


def test_phone_layout_folds_the_sidebar(phone: Any) -> None:
    register(phone, new_email())
    sidebar = phone.get_by_test_id("sidebar")
    box = sidebar.bounding_box()
    assert box["x"] + box["width"] <= 0, "the sidebar should start folded away"
    ask_and_wait(phone, QUESTION)
    last_answer(phone).locator("button.citation").first.click()
    panel = phone.get_by_test_id("source-panel")
    expect(panel).to_be_in_viewport()
    expect(phone.get_by_role("dialog", name="Sources")).to_be_visible()
    assert phone.get_by_role("main").evaluate("e => e.inert")
    screenshot(phone, "09-phone-sources")
    phone.get_by_role("button", name="Close sources").click()
    expect(panel).to_have_count(0)

    phone.get_by_role("button", name="Show conversations").click()
    phone.wait_for_timeout(400)  # the slide-in transition
    box = sidebar.bounding_box()
    assert box["x"] >= 0
    expect(phone.get_by_test_id("conversation-item")).to_have_count(1)
    screenshot(phone, "10-phone-sidebar")
    expect(phone.get_by_test_id("new-conversation")).to_be_focused()
    assert phone.get_by_role("main").evaluate("e => e.inert")
    phone.keyboard.press("Escape")
    expect(phone.get_by_role("button", name="Show conversations")).to_be_focused()
    assert sidebar.evaluate("e => e.inert")

    phone.get_by_role("button", name="Show conversations").click()
    phone.get_by_test_id("new-conversation").click()
    phone.wait_for_timeout(400)
    box = sidebar.bounding_box()
    assert box["x"] + box["width"] <= 0
    expect(phone.get_by_test_id("empty-state")).to_be_visible()


def test_older_conversations_load_on_request(page: Any, site: Site) -> None:
    register(page, new_email())
    headers = {"Authorization": f"Bearer {access_token(page)}"}
    with site.client() as client:
        for number in range(55):
            response = client.post(
                "/conversations", headers=headers, json={"title": f"Study {number}"}
            )
            assert response.status_code == 201
    page.reload()
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(50)
    expect(items.first).to_contain_text("Study 54")
    page.get_by_test_id("more-conversations").click()
    expect(items).to_have_count(55)
    expect(items.last).to_contain_text("Study 0")
    expect(page.get_by_test_id("more-conversations")).to_have_count(0)


def test_copy_puts_the_answer_on_the_clipboard(page: Any) -> None:
    register(page, new_email())
    ask(page, QUESTION)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=60_000)
    answer.get_by_test_id("copy").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("The Torah commands **love of one's neighbour")
    assert "[1]" in copied or "[2]" in copied


def test_lookup_answer_keeps_each_source_apart(page: Any) -> None:
    register(page, new_email())
    ask(page, "Show me Genesis 1:1-3")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(answer).to_have_attribute("data-mode", "lookup")
    expect(answer.locator("blockquote")).to_have_count(0)
    expect(answer.locator("pre")).to_have_count(0)
    citations = answer.locator("button.citation")
    expect(citations).to_have_count(3)
    assert [c.get_attribute("data-rank") for c in citations.all()] == ["1", "2", "3"]
    citations.first.click()
    card = page.locator("[data-testid=source-card][data-active]")
    expect(card).to_have_attribute("data-ref", "Genesis 1:1")
    expect(card.get_by_test_id("source-verified")).to_have_text(
        "Quoted from the library's text"
    )
    # Rashi's comment on the verse is listed under the source and opens on
    # Sefaria.
    related = card.get_by_test_id("source-related").get_by_role(
        "link", name="Rashi on Genesis 1:1"
    )
    expect(related).to_have_attribute(
        "href", "https://www.sefaria.org/Rashi_on_Genesis.1.1"
    )
    expect(card.get_by_test_id("source-related")).to_contain_text("(commentary)")


def test_unusable_conversation_link_starts_afresh(page: Any) -> None:
    register(page, new_email())
    for link in ("/?c=.", "/?c=%2F", "/?c=..", f"/?c={'0' * 32}"):
        page.goto(link)
        expect(page.get_by_test_id("chat-error")).to_have_text(
            "This conversation does not exist or was deleted."
        )
        expect(page.get_by_test_id("conversation-title")).to_have_text(
            "New conversation"
        )
        assert "c=" not in page.url
    ask_and_wait(page, QUESTION)
    expect(page.get_by_test_id("conversation-item")).to_have_count(1)


def test_double_submit_asks_once(page: Any, site: Site) -> None:
    register(page, new_email())
    box = page.get_by_label("Your question")
    box.fill(QUESTION)
    box.press("Enter")
    box.press("Enter")
    expect(last_answer(page)).to_have_attribute(
        "data-status", "complete", timeout=60_000
    )
    page.get_by_test_id("new-conversation").click()
    box.fill(QUESTION)
    # The second click lands on Stop, which must not stop the new answer.
    page.get_by_test_id("send").dblclick()
    expect(last_answer(page)).to_have_attribute(
        "data-status", "complete", timeout=60_000
    )
    items = api_get(site, page, "/conversations")["items"]
    assert len(items) == 2
    for item in items:
        saved = api_get(site, page, f"/conversations/{item['id']}")
        assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
        assert saved["messages"][1]["status"] == "complete"
    expect(page.get_by_test_id("user-message")).to_have_count(1)


def test_refused_question_returns_to_the_box(page: Any) -> None:
    register(page, new_email())
    question = "A question with a \x0b control character"
    ask(page, question)
    expect(page.get_by_test_id("chat-error")).to_be_visible()
    expect(page.get_by_label("Your question")).to_have_value(question)
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_visible()


def test_tablet_source_panel_is_not_covered(browser: Any, site: Site) -> None:
    context = browser.new_context(
        base_url=site.url, viewport={"width": 820, "height": 1000}
    )
    tablet = context.new_page()
    try:
        register(tablet, new_email())
        ask_and_wait(tablet, QUESTION)
        last_answer(tablet).locator("button.citation").first.click()
        card = tablet.locator("[data-testid=source-card][data-active]")
        expect(card).to_be_visible()
        box = card.locator("h3").bounding_box()
        on_top = tablet.evaluate(
            "([x, y]) => !!document.elementFromPoint(x, y)"
            ".closest('[data-testid=source-panel]')",
            [box["x"] + 5, box["y"] + box["height"] / 2],
        )
        assert on_top, "the source panel's heading is covered"
    finally:
        context.close()


def test_other_tab_signing_in_is_followed(browser: Any, site: Site) -> None:
    context = browser.new_context(
        base_url=site.url, viewport={"width": 1200, "height": 800}
    )
    try:
        first = context.new_page()
        register(first, new_email())
        second = context.new_page()
        second.goto("/")
        expect(second.get_by_test_id("sidebar")).to_be_visible()
        second.get_by_test_id("sign-out").click()
        expect(first.get_by_role("heading", name="Sign in")).to_be_visible()
        other = new_email()
        register(second, other)
        expect(first.get_by_test_id("sidebar")).to_contain_text(other)
    finally:
        context.close()


def test_escape_in_a_dialog_keeps_the_phone_sidebar(phone: Any, site: Site) -> None:
    register(phone, new_email())
    with site.client() as client:
        response = client.post(
            "/conversations",
            headers={"Authorization": f"Bearer {access_token(phone)}"},
            json={"title": "Shema"},
        )
    assert response.status_code == 201
    phone.reload()
    phone.get_by_role("button", name="Show conversations").click()
    sidebar = phone.get_by_test_id("sidebar")
    actions = phone.get_by_role("button", name=re.compile("^Conversation actions"))
    actions.click()
    phone.get_by_role("menuitem", name="Delete").click()
    expect(phone.get_by_role("alertdialog")).to_be_visible()
    phone.keyboard.press("Escape")
    expect(phone.get_by_role("alertdialog")).to_have_count(0)
    assert not sidebar.evaluate("e => e.inert")
    expect(actions).to_be_focused()
