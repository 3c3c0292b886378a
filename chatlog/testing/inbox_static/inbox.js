/* chatlog inbox, part 3 of 3: the page — one article per request, the sidebar of bots and recipients,
 * and live updates (server-sent events, polling where EventSource is missing). */
"use strict";

(function () {
  const { el, add, str, obj, arr, clock, markdown, context } = window.chatlogMarkdown;
  const { renderPayload, family } = window.chatlogRender;
  const state = { last: 0, receivers: [], messages: [], filter: null, source: null };

  // ---------------------------------------------------------------- one message
  const PLATFORM_LABEL = { feishu: "Feishu", lark: "Lark", "feishu-app": "Feishu app", "lark-app": "Lark app",
    dingtalk: "DingTalk", wecom: "WeCom", discord: "Discord", slack: "Slack", telegram: "Telegram" };
  const AVATAR = { feishu: "飞", dingtalk: "钉", wecom: "企", discord: "D", slack: "S", telegram: "T" };

  function receiverOf(key) { return state.receivers.find((r) => r.key === key) || { title: key, kind: "unknown" }; }

  function answerLine(message) {
    const a = obj(message.answer);
    const code = [a.code, a.errcode, a.error_code, a.StatusCode].find((v) => v !== undefined && v !== null);
    const words = [a.msg, a.errmsg, a.description, a.message, a.error, a.StatusMessage].find((v) => typeof v === "string");
    const parts = [message.status ? "HTTP " + message.status : "no HTTP answer"];
    if (code !== undefined) parts.push("code " + code);
    if (words) parts.push(words);
    else if (message.answer && code === undefined) parts.push(JSON.stringify(message.answer));
    return parts.join(" · ");
  }

  function renderMessage(message) {
    const receiver = receiverOf(message.receiver);
    const fam = family(message.platform, message.payload) || "generic";
    const article = el("article", "msg fam-" + fam + (message.accepted ? " accepted" : " refused"));
    article.dataset.seq = String(message.seq);
    article.dataset.platform = message.platform;
    article.dataset.receiver = message.receiver;
    article.dataset.recipient = message.recipient || "";
    article.dataset.accepted = String(message.accepted);

    const meta = el("div", "meta");
    add(meta, el("span", "platform-badge fam-" + fam, PLATFORM_LABEL[message.platform] || message.platform || "?"));
    add(meta, el("span", "who", message.known ? receiver.title : "unknown " + (message.kind === "token" ? "app" : "token")));
    if (message.recipient) add(meta, el("span", "recipient", "→ " + message.recipient + (message.recipient_type ? " (" + message.recipient_type + ")" : "")));
    add(meta, el("span", "time", clock(message.at)));
    add(meta, el("span", "verdict", message.accepted ? "delivered" : "refused"));
    add(article, meta);

    if (message.kind === "token") {
      add(article, el("div", "token-line", "tenant_access_token request for app " + (str(obj(message.payload).app_id) || "?")
        + (message.accepted ? ": token issued" : "")));
    } else {
      const row = el("div", "row");
      add(row, el("div", "avatar fam-" + fam, AVATAR[fam] || "?"));
      const body = el("div", "body");
      if (message.payload) add(body, renderPayload(message.platform, message.payload, message.notifies, message.content));
      else add(body, el("div", "bubble text generic", message.body || "(empty body)"));
      add(row, body);
      add(article, row);
      if (message.notifies && message.notifies.length) {
        const bell = el("div", "notifies-line", "notifies");
        for (const id of message.notifies) add(bell, el("span", "mention notifies", id === "all" ? "everyone in the chat" : id));
        add(article, bell);
      }
    }
    if (!message.accepted) {
      const box = el("div", "refusal");
      add(box, el("div", "refusal-answer", (message.known ? "Refused: " : "Refused (no bot has this token): ") + answerLine(message)));
      if (message.explanation) add(box, add(el("div", "refusal-why"), el("strong", null, "chatlog: "), document.createTextNode(message.explanation)));
      add(article, box);
    }
    const raw = el("details", "raw");
    add(raw, el("summary", null, "request body"), el("pre", null, message.payload ? JSON.stringify(message.payload, null, 2) : message.body));
    add(article, raw);
    return article;
  }

  // ---------------------------------------------------------------- sidebar, filter, updates
  function count(filter) { return state.messages.filter(filter).length; }

  function renderReceivers() {
    const nav = document.getElementById("receivers");
    nav.replaceChildren();
    add(nav, receiverItem("All messages", null, null, count(() => true), count((m) => !m.accepted)));
    for (const r of state.receivers) {
      const item = receiverItem(r.title, r.key, null, count((m) => m.receiver === r.key), count((m) => m.receiver === r.key && !m.accepted));
      item.classList.add("kind-" + r.kind);
      if (r.security && r.security.length) add(item, el("div", "security", r.security.join(" · ")));
      if (r.kind === "unknown") add(item, add(el("div", "url"), el("code", null, "token " + (r.token || "(none)"))));
      if (r.url) {
        const url = add(el("div", "url"), el("code", null, r.url));
        const copy = el("button", "copy", "copy");
        copy.type = "button";
        copy.addEventListener("click", (ev) => { ev.stopPropagation(); if (navigator.clipboard) navigator.clipboard.writeText(r.url); copy.textContent = "copied"; });
        add(item, add(url, copy));
      }
      add(nav, item);
      for (const rid of r.recipients || []) {
        const sub = receiverItem("→ " + rid, r.key, rid, count((m) => m.receiver === r.key && m.recipient === rid),
          count((m) => m.receiver === r.key && m.recipient === rid && !m.accepted));
        sub.classList.add("recipient-item");
        add(nav, sub);
      }
    }
  }

  function receiverItem(title, key, recipient, total, refused) {
    const item = el("div", "receiver");
    item.dataset.key = key || "";
    item.dataset.recipient = recipient || "";
    const active = state.filter ? state.filter.key === key && (state.filter.recipient || null) === recipient : key === null;
    if (active) item.classList.add("active");
    const head = add(el("div", "receiver-head"), el("span", "receiver-title", title), el("span", "count", String(total)));
    if (refused) add(head, el("span", "count refused-count", refused + " refused"));
    add(item, head);
    item.addEventListener("click", () => { state.filter = key === null ? null : { key, recipient }; renderAll(); });
    return item;
  }

  function visible(message) {
    const f = state.filter;
    return !f || (message.receiver === f.key && (!f.recipient || message.recipient === f.recipient));
  }

  function renderAll() {
    renderReceivers();
    const feed = document.getElementById("feed");
    feed.replaceChildren();
    for (let i = state.messages.length - 1; i >= 0; i--) if (visible(state.messages[i])) feed.appendChild(renderMessage(state.messages[i]));
    document.getElementById("empty").hidden = feed.children.length > 0;
  }

  function apply(update) {
    // New messages go on top; rendered ones are never replaced, so what a reader points at stays put.
    if (!update || typeof update.last !== "number") return;
    state.receivers = arr(update.receivers);
    const known = new Set(state.messages.map((m) => m.seq));
    const feed = document.getElementById("feed");
    for (const m of arr(update.messages)) {
      if (known.has(m.seq)) continue;
      state.messages.push(m);
      if (visible(m)) feed.prepend(renderMessage(m));
    }
    state.last = Math.max(state.last, update.last);
    renderReceivers();
    document.getElementById("empty").hidden = feed.children.length > 0;
  }

  function setStatus(kind, words) {
    const s = document.getElementById("status");
    s.dataset.state = kind;
    s.textContent = words;
  }

  function poll() {
    fetch("/api/messages?since=" + state.last).then((r) => r.json()).then((u) => { apply(u); setStatus("live", "live (polling)"); })
      .catch(() => setStatus("down", "server unreachable"))
      .finally(() => setTimeout(poll, 1000));
  }

  function listen() {
    if (!window.EventSource) { poll(); return; }
    const source = new EventSource("/api/events?since=" + state.last);
    state.source = source;
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("inbox", (ev) => { try { apply(JSON.parse(ev.data)); } catch (e) { /* a torn event: the next one carries it */ } });
    source.addEventListener("error", () => setStatus("down", "reconnecting…"));
  }

  window.chatlogInbox = { renderPayload, markdown: (t, d, n) => markdown(t, context(d || "feishu", n)), state };

  fetch("/api/messages").then((r) => r.json()).then((u) => { apply(u); listen(); })
    .catch(() => { setStatus("down", "server unreachable"); setTimeout(() => window.location.reload(), 3000); });
})();
