"""The inbox in a real headless Chromium (Debian's ``chromium`` driven by Playwright): what a person sees.

One browser session for the whole module (a launch costs a second or two). Screenshots are saved under
``artifacts/inbox/`` (ignored by git; ``CHATLOG_ARTIFACTS`` moves it) and their paths are printed.
The test fails, never skips, when the browser cannot start: ``apt-get install chromium`` and
``pip install -e '.[dev]'`` (Playwright; it needs none of its own browser downloads) fix that.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatlog import ChatHandler
from chatlog.testing import PLATFORMS, FakePlatforms
from chatlog.testing.serve import add_receivers

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("CHATLOG_ARTIFACTS", ROOT / "artifacts")) / "inbox"
MARKER = "payment failed for order 4711 · 订单支付失败"
WAIT_MS = 10_000
PAGE_ERRORS: list[str] = []


def chromium_path() -> str:
    for candidate in (os.environ.get("CHATLOG_CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    pytest.fail("no Chromium found: install Debian's package (apt-get install chromium) or set "
                "CHATLOG_CHROMIUM=/path/to/chromium", pytrace=False)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.fail(f"Playwright for Python is missing ({exc}): pip install -e '.[dev]'", pytrace=False)
    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as exc:
            pytest.fail(f"Chromium at {executable} did not start: {exc}", pytrace=False)
        opened = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        opened.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
        yield opened
        browser.close()


@pytest.fixture(scope="module")
def served() -> Iterator[FakePlatforms]:
    """The fake server with the receivers ``chatlog serve`` builds: one bot per platform, one app."""
    with FakePlatforms() as fake:
        add_receivers(fake, {}, "browser-test")
        yield fake


def shot(target: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", css)[:3])


def wait_until_shown(page: Any, requests: int) -> None:
    """Until the page has taken in `requests` requests (polled from here: the page's CSP rightly forbids
    the eval that ``wait_for_function`` needs)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while page.evaluate("window.chatlogInbox.state.last") < requests:
        assert time.monotonic() < deadline, f"the page did not show {requests} requests within {WAIT_MS} ms"
        page.wait_for_timeout(50)


def send_through_handlers(served: FakePlatforms, make_handler: Callable[..., ChatHandler],
                          app_logger: logging.Logger) -> None:
    """One ERROR to every bot and the app, as an application would: ChatHandlers over real HTTP."""
    # Mentions only where their form is known here; other platforms get the alert without one.
    mentions = {"feishu": ["all"], "dingtalk": ["13800000000"]}
    handlers = [make_handler(bot.url, mentions={"ERROR": mentions.get(bot.platform, [])}, service="checkout")
                for bot in served.bots]
    handlers += [make_handler(app.url("open_id"), service="checkout") for app in served.apps]
    for handler in handlers:
        app_logger.addHandler(handler)
    try:
        raise ConnectionError("db-primary:5432 refused the connection")
    except ConnectionError:
        app_logger.exception(MARKER)
    for handler in handlers:
        handler.close()
        app_logger.removeHandler(handler)


def test_inbox_shows_each_platforms_message_as_its_client_would_live_without_reload(
    page: Any, served: FakePlatforms, make_handler: Callable[..., ChatHandler], app_logger: logging.Logger
) -> None:
    page.goto(f"{served.base_url}/")
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")

    send_through_handlers(served, make_handler, app_logger)
    wrong = next(bot for bot in served.bots if bot.platform == "feishu")
    refused = make_handler(wrong.url.replace("demo-feishu-secret", "not-the-secret"))
    app_logger.addHandler(refused)
    app_logger.error("this one is refused")
    refused.close()
    app_logger.removeHandler(refused)
    httpx.post(f"{served.base_url}/robot/send?access_token=no-such-robot",
               json={"msgtype": "text", "text": {"content": "to nobody"}}, timeout=5)

    wait_until_shown(page, len(served.all_received()))
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    def alert(platform: str) -> Any:  # a platform may send more than one message per alert (WeCom)
        return page.locator(f"article.msg.accepted[data-platform='{platform}']", has_text=MARKER)

    for platform in PLATFORMS:  # every platform's message, readable as text
        assert alert(platform).count() == 1, platform
    for recipient in served.apps[0].settings.recipients["open_id"]:
        assert page.locator(f"article.msg.accepted[data-recipient='{recipient}']").count() == 1

    card = alert("feishu")
    header = card.locator(".card-header")
    red, green, blue = rgb(header.evaluate("node => getComputedStyle(node).backgroundColor"))
    assert red > 200 and green < 110 and blue < 110, "an ERROR card's header is red"
    assert "ERROR" in header.inner_text()
    assert card.locator(".code-block").count() == 1  # the traceback, in a code block

    ding = alert("dingtalk")
    mention = ding.locator(".bubble .mention.notifies")
    assert mention.inner_text() == "@13800000000"
    assert rgb(mention.evaluate("node => getComputedStyle(node).backgroundColor")) != (0, 0, 0)
    assert "13800000000" in ding.locator(".notifies-line").inner_text()

    signature = page.locator("article.msg.refused[data-platform='feishu']").first
    refusal = signature.locator(".refusal")
    red, green, blue = rgb(refusal.evaluate("node => getComputedStyle(node).color"))
    assert red > 150 and green < 80 and blue < 80, "a refusal is written in red"
    assert "19021" in refusal.inner_text() and "chatlog: " in refusal.inner_text()
    assert "no-such-robot" in page.locator("#receivers").inner_text()  # an unknown token is listed too
    assert PAGE_ERRORS == []

    shot(card, "feishu-card.png")
    shot(ding, "dingtalk-markdown.png")
    shot(alert("wecom"), "wecom-markdown.png")
    shot(signature, "refused-signature.png")
    page.set_viewport_size({"width": 1280, "height": 1800})
    shot(page, "inbox-page.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    lead = served.apps[0].settings.recipients["open_id"][1]
    page.locator(f".receiver[data-recipient='{lead}']").click()  # one recipient's conversation
    shown = page.locator("article.msg")
    assert shown.count() == 1 and shown.first.get_attribute("data-recipient") == lead


def test_markup_in_a_message_shows_as_text_and_never_runs(page: Any, served: FakePlatforms) -> None:
    wecom = next(bot for bot in served.bots if bot.platform == "wecom")
    hostile = ('<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
               '[click](javascript:window.__pwned=3) <font color="red;background:url(x)">x</font>')
    httpx.post(wecom.url, json={"msgtype": "markdown", "markdown": {"content": hostile}}, timeout=5)
    page.goto(f"{served.base_url}/")
    body = page.locator("article.msg[data-platform='wecom'] .bubble", has_text="window.__pwned=2").first
    body.wait_for(timeout=WAIT_MS)

    assert "<script>window.__pwned=2</script>" in body.inner_text()
    assert body.locator("img, script, a[href^='javascript']").count() == 0
    assert page.evaluate("window.__pwned") is None


SAMPLES: dict[str, dict[str, Any]] = {
    "discord": {"content": "**deploy** failed @everyone", "allowed_mentions": {"parse": []},
                "username": "chatlog",
                "embeds": [{"title": "ERROR ×3 · checkout", "description": "db-primary:5432 refused",
                            "color": 0xE74C3C, "footer": {"text": "pid 42"},
                            "fields": [{"name": "service", "value": "checkout", "inline": True}]}]},
    "slack": {"text": "fallback", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "ERROR ×3 · checkout"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*payment failed* <!channel> &lt;b&gt;"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "pid 42"}]}]},
    "telegram": {"chat_id": -100, "parse_mode": "HTML",
                 "text": "<b>ERROR ×3</b> checkout\n<pre>Traceback …</pre><script>x</script> &lt;ok&gt;"},
}


def test_discord_slack_and_telegram_payloads_render_as_their_clients_do(
    page: Any, served: FakePlatforms
) -> None:
    page.goto(f"{served.base_url}/")
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    seen = page.evaluate("""samples => {
        const out = {};
        const stage = document.createElement("div");
        stage.id = "samples";
        stage.style.display = "grid";
        stage.style.gap = "10px";
        stage.style.marginBottom = "12px";
        document.getElementById("feed").prepend(stage);
        for (const [platform, payload] of Object.entries(samples)) {
            const node = window.chatlogInbox.renderPayload(platform, payload, [], null);
            stage.appendChild(node);
            const all = (selector, f) => [...node.querySelectorAll(selector)].map(f);
            out[platform] = {
                text: node.innerText, strong: all("strong", n => n.textContent),
                pre: node.querySelectorAll("pre").length, scripts: node.querySelectorAll("script").length,
                border: all(".embed", n => getComputedStyle(n).borderLeftColor),
                header: all(".slack-header", n => n.textContent),
                silent: node.querySelectorAll(".mention.silent").length,
            };
        }
        return out;
    }""", SAMPLES)

    assert seen["discord"]["border"] == ["rgb(231, 76, 60)"] and "deploy" in seen["discord"]["strong"]
    assert seen["discord"]["silent"] == 1  # @everyone with allowed_mentions parse [] pings nobody
    assert seen["slack"]["header"] == ["ERROR ×3 · checkout"] and "payment failed" in seen["slack"]["strong"]
    assert "<b>" in seen["slack"]["text"]  # Slack's &lt;b&gt; is text
    assert seen["telegram"]["strong"] == ["ERROR ×3"] and seen["telegram"]["pre"] == 1
    assert seen["telegram"]["scripts"] == 0 and "<script>x</script>" in seen["telegram"]["text"]
    shot(page.locator("#samples"), "discord-slack-telegram.png")


CARD = {"msg_type": "interactive", "card": {
    "header": {"title": {"tag": "plain_text", "content": "CRITICAL · payments 支付"}, "template": "carmine"},
    "elements": [
        {"tag": "div", "text": {"tag": "lark_md", "content": "**数据库** <font color='red'>down</font>"},
         "fields": [{"is_short": True, "text": {"tag": "lark_md", "content": "**host**\ndb-1"}},
                    {"is_short": True, "text": {"tag": "lark_md", "content": "**since**\n20:00"}}]},
        {"tag": "action", "actions": [
            {"tag": "button", "text": {"tag": "plain_text", "content": "Open runbook"},
             "url": "https://example.com/runbook", "type": "primary"},
            {"tag": "button", "text": {"tag": "plain_text", "content": "Not a link"},
             "url": "javascript:alert(1)", "type": "danger"}]},
        {"tag": "note", "elements": [{"tag": "plain_text", "content": "host vm · pid 42"}]}]}}
WECOM_FONTS = {"msgtype": "markdown", "markdown": {"content": (
    '<font color="info">recovered</font> <font color="comment">note</font> '
    '<font color="warning">failing</font>')}}
DINGTALK_FONT = {"msgtype": "markdown", "markdown": {"title": "t", "text": "<font color=#FF0000>down</font>"}}


def test_card_elements_and_font_colours_render_as_in_the_clients(page: Any, served: FakePlatforms) -> None:
    page.goto(f"{served.base_url}/")
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    seen = page.evaluate("""([card, wecom, ding]) => {
        const stage = document.createElement("div");
        stage.id = "cards";
        document.getElementById("feed").prepend(stage);
        const feishu = stage.appendChild(window.chatlogInbox.renderPayload("feishu", card, [], null));
        const fonts = stage.appendChild(window.chatlogInbox.renderPayload("wecom", wecom, [], null));
        const dingFont = stage.appendChild(window.chatlogInbox.renderPayload("dingtalk", ding, [], null));
        const style = (node, name) => getComputedStyle(node)[name];
        return {
            header: style(feishu.querySelector(".card-header"), "backgroundColor"),
            red: style(feishu.querySelector(".font"), "color"),
            fields: feishu.querySelectorAll(".field.short").length,
            buttons: [...feishu.querySelectorAll(".button")]
                .map(n => [n.tagName, n.getAttribute("href"), n.textContent]),
            note: feishu.querySelector(".card-note").textContent,
            fonts: [...fonts.querySelectorAll(".font")].map(n => style(n, "color")),
            ding: style(dingFont.querySelector(".font"), "color"),
        };
    }""", [CARD, WECOM_FONTS, DINGTALK_FONT])

    carmine = rgb(seen["header"])
    assert carmine[0] > 150 and carmine[0] > 2 * carmine[1] and carmine[2] > carmine[1], "carmine: a pink-red"
    assert rgb(seen["red"])[0] > 200 and rgb(seen["red"])[1] < 100, "lark_md <font color='red'>"
    assert seen["fields"] == 2 and seen["note"] == "host vm · pid 42"
    assert seen["buttons"] == [["A", "https://example.com/runbook", "Open runbook"],
                               ["SPAN", None, "Not a link"]]
    info, comment, warning = (rgb(colour) for colour in seen["fonts"])
    assert info[1] > info[0] and info[1] > info[2], "WeCom info is green"
    assert max(comment) - min(comment) < 20, "WeCom comment is grey"
    assert warning[0] > warning[1] > warning[2], "WeCom warning is orange"
    assert seen["ding"] == "rgb(255, 0, 0)", "DingTalk <font color=#FF0000>"
    shot(page.locator("#cards"), "feishu-card-elements.png")
