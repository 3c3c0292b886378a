/* chatlog inbox: renders what the fake platforms received roughly as each chat client shows it.
 *
 * Safety rule for this file: text from a request never becomes markup. Every node is made with
 * createElement and filled with textContent; the markdown subsets below are parsed here, by regular
 * expressions over plain strings, and only ever produce elements from a fixed list. Links keep http(s)
 * URLs only; colours go through the CSSOM after a pattern check. The page's CSP forbids inline script.
 */
"use strict";

(function () {
  const state = { last: 0, receivers: [], messages: [], filter: null, source: null };

  // ---------------------------------------------------------------- small DOM helpers
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, ...children) {
    for (const child of children) if (child) parent.appendChild(child);
    return parent;
  }
  function str(value) { return typeof value === "string" ? value : ""; }
  function obj(value) { return value && typeof value === "object" && !Array.isArray(value) ? value : {}; }
  function arr(value) { return Array.isArray(value) ? value : []; }
  function safeUrl(url) {
    if (typeof url !== "string") return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) { return null; }
  }
  function link(text, url) {
    const href = safeUrl(url);
    if (!href) return el("span", "link-off", text);
    const a = el("a", "link", text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }
  function clock(at) {
    const d = new Date(at * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }
  const CSS_COLOUR = /^(#[0-9a-f]{3,8}|[a-z]{3,20})$/i;
  function coloured(node, colour) {
    if (CSS_COLOUR.test(colour)) node.style.color = colour;
    return node;
  }

  // ---------------------------------------------------------------- mentions
  const EVERYONE = new Set(["all", "@all", "everyone", "channel"]);
  function mention(id, label, ctx) {
    const everyone = EVERYONE.has(id);
    const notifies = ctx.notifies.has(everyone ? "all" : id) || (id === "here" && ctx.notifies.has("here"));
    const chip = el("span", "mention" + (notifies ? " notifies" : " silent"),
      label || (everyone ? ctx.everyoneLabel : "@" + id));
    chip.title = notifies ? (everyone ? "notifies everyone in the chat" : "notifies " + id)
      : "shown, but notifies nobody";
    return chip;
  }

  // ---------------------------------------------------------------- inline markdown subsets
  const FEISHU_FONT = { red: "#f54a45", green: "#2ea121", grey: "#8f959e", gray: "#8f959e", orange: "#ff8800",
    yellow: "#dc9b04", blue: "#3370ff", carmine: "#c7245d", violet: "#b64ecf", purple: "#7f3bf5",
    indigo: "#4954e6", wathet: "#1ea1e6", turquoise: "#10b5a4" };
  const WECOM_FONT = { info: "#06ad56", comment: "#8c8c8c", warning: "#f5780a" };

  function rule(name, re, make) { return { name, re: new RegExp(re.source, re.flags.replace("g", "") + "g"), make }; }
  function recurse(text, ctx) { return inline(text, ctx); }
  function wrap(tag, cls) { return (m, ctx) => add(el(tag, cls), recurse(m[1], ctx)); }

  const R = {
    code: rule("code", /`([^`\n]+)`/, (m) => el("code", "inline-code", m[1])),
    font: rule("font", /<font\s+color\s*=\s*["']?([#\w]+)["']?\s*>([\s\S]*?)<\/font>/i, (m, ctx) => {
      const colour = (ctx.fonts && ctx.fonts[m[1].toLowerCase()]) || m[1];
      return coloured(add(el("span", "font"), recurse(m[2], ctx)), colour);
    }),
    feishuCardAt: rule("at", /<at\s+id\s*=\s*["']?([^"'\s>]+)["']?\s*>\s*<\/at>/i, (m, ctx) => mention(m[1], "", ctx)),
    feishuTextAt: rule("at", /<at\s+user_id\s*=\s*["']([^"']*)["']\s*>([^<]*)<\/at>/i,
      (m, ctx) => mention(m[1], m[2] && m[1] !== "all" ? "@" + m[2] : "", ctx)),
    wecomAt: rule("at", /<@([^<>\s]+)>/, (m, ctx) => mention(m[1], "", ctx)),
    image: rule("image", /!\[([^\]]*)\]\(([^)\s]+)\)/, (m) => el("span", "image", "[image] " + (m[1] || "image"))),
    link: rule("link", /\[([^\]\n]+)\]\(([^)\s]+)\)/, (m) => link(m[1], m[2])),
    url: rule("url", /https?:\/\/[^\s<>()\]]+/, (m) => link(m[0], m[0])),
    bold: rule("bold", /\*\*([\s\S]+?)\*\*/, wrap("strong")),
    underline: rule("underline", /__([\s\S]+?)__/, wrap("u")),
    boldUnderscore: rule("bold", /__([\s\S]+?)__/, wrap("strong")),
    italic: rule("italic", /\*([^*\n]+)\*/, wrap("em")),
    italicUnderscore: rule("italic", /(?<![\w])_([^_\n]+)_(?![\w])/, wrap("em")),
    strike: rule("strike", /~~([\s\S]+?)~~/, wrap("s")),
    spoiler: rule("spoiler", /\|\|([\s\S]+?)\|\|/, wrap("span", "spoiler")),
    slackBold: rule("bold", /(?<![\w*])\*([^*\n]+)\*(?![\w*])/, wrap("strong")),
    slackStrike: rule("strike", /(?<![\w~])~([^~\n]+)~(?![\w~])/, wrap("s")),
    slackAngle: rule("angle", /<([@#!][^<>|]*|(?:https?|mailto):[^<>|]*)(?:\|([^<>]*))?>/, (m, ctx) => {
      const target = m[1];
      if (target.startsWith("@")) return mention(target.slice(1), m[2] ? "@" + m[2] : "", ctx);
      if (target.startsWith("!")) {
        const special = target.slice(1).split("^")[0];
        const id = special === "subteam" ? target.split("^")[1] : special;
        return mention(id, "@" + (m[2] || id), ctx);
      }
      if (target.startsWith("#")) return el("span", "channel", "#" + (m[2] || target.slice(1)));
      return link(m[2] || target, target);
    }),
    discordAt: rule("at", /<@[!&]?(\d+)>|@(everyone|here)\b/, (m, ctx) => m[2]
      ? mention(m[2] === "everyone" ? "all" : "here", "@" + m[2], ctx) : mention(m[1], "", ctx)),
    telegramAt: rule("at", /(?<![\w@])@([A-Za-z][A-Za-z0-9_]{4,31})\b/, (m, ctx) => mention(m[1], "", ctx)),
    escaped: rule("escaped", /\\([\\_*[\]()~`>#+\-=|{}.!])/, (m) => document.createTextNode(m[1])),
  };

  function idsRule(ids) {
    // DingTalk shows "@138…" as a mention only for ids listed in "at"; build the pattern from them.
    const quoted = ids.filter(Boolean).map((id) => String(id).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return quoted.length ? rule("at", new RegExp("@(" + quoted.join("|") + ")"), (m, ctx) => mention(m[1], "", ctx)) : null;
  }

  const DIALECTS = {
    plain: [],
    feishuText: [R.feishuTextAt, R.feishuCardAt, R.url],
    feishu: [R.code, R.font, R.feishuCardAt, R.feishuTextAt, R.image, R.link, R.url, R.bold, R.strike, R.italic],
    dingtalk: [R.code, R.font, R.image, R.link, R.url, R.bold, R.strike, R.italic],
    wecom: [R.code, R.font, R.wecomAt, R.image, R.link, R.url, R.bold, R.strike, R.italic],
    discord: [R.code, R.discordAt, R.link, R.url, R.bold, R.underline, R.strike, R.spoiler, R.italic, R.italicUnderscore],
    slack: [R.code, R.slackAngle, R.slackBold, R.italicUnderscore, R.slackStrike],
    telegramMd: [R.escaped, R.code, R.link, R.boldUnderscore, R.slackBold, R.italicUnderscore, R.slackStrike, R.spoiler, R.url],
  };

  function context(dialect, notifies, extra) {
    const ctx = { rules: DIALECTS[dialect].slice(), notifies: new Set(arr(notifies)), everyoneLabel: "@所有人",
      fonts: null, entities: false };
    Object.assign(ctx, extra || {});
    if (ctx.ids) { const r = idsRule(ctx.ids); if (r) ctx.rules.push(r); }
    return ctx;
  }

  function text(node, value, ctx) {
    const plain = ctx.entities ? value.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&") : value;
    node.appendChild(document.createTextNode(plain));
  }

  function inline(value, ctx) {
    // Earliest match wins; each rule's next match is cached so long texts stay linear in practice.
    const frag = document.createDocumentFragment();
    const rules = ctx.rules;
    const next = rules.map(() => null);
    let pos = 0;
    while (pos < value.length) {
      let best = -1;
      for (let i = 0; i < rules.length; i++) {
        if (next[i] === null || (next[i] !== false && next[i].index < pos)) {
          rules[i].re.lastIndex = pos;
          next[i] = rules[i].re.exec(value) || false;
        }
        if (next[i] && next[i][0].length && (best < 0 || next[i].index < next[best].index)) best = i;
      }
      if (best < 0) break;
      const m = next[best];
      if (m.index > pos) text(frag, value.slice(pos, m.index), ctx);
      frag.appendChild(rules[best].make(m, ctx));
      pos = m.index + m[0].length;
    }
    if (pos < value.length) text(frag, value.slice(pos), ctx);
    return frag;
  }

  // ---------------------------------------------------------------- block markdown
  function markdown(value, ctx) {
    const box = el("div", "md");
    const lines = str(value).replace(/\r\n?/g, "\n").split("\n");
    let para = [];
    const flush = () => {
      if (para.length) add(box, add(el("p"), inline(para.join("\n"), ctx)));
      para = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if (/^\s*```/.test(line)) {
        flush();
        const code = [];
        for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
        add(box, add(el("pre", "code-block"), el("code", null, code.join("\n"))));
      } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        add(box, add(el("div", "h h" + m[1].length), inline(m[2], ctx)));
      } else if (/^\s*(-{3,}|\*{3,}|_{3,})\s*$/.test(line)) {
        flush();
        add(box, el("hr"));
      } else if (/^\s*(>|&gt;)/.test(line)) {
        flush();
        const quoted = [];
        for (; i < lines.length && /^\s*(>|&gt;)/.test(lines[i]); i++) quoted.push(lines[i].replace(/^\s*(>|&gt;) ?/, ""));
        i--;
        add(box, add(el("blockquote"), markdown(quoted.join("\n"), ctx)));
      } else if (/^\s*([-*+]|\d+\.)\s+/.test(line)) {
        flush();
        const ordered = /^\s*\d+\./.test(line);
        const list = el(ordered ? "ol" : "ul");
        for (; i < lines.length && /^\s*([-*+]|\d+\.)\s+/.test(lines[i]); i++) {
          add(list, add(el("li"), inline(lines[i].replace(/^\s*([-*+]|\d+\.)\s+/, ""), ctx)));
        }
        i--;
        add(box, list);
      } else if (/^-#\s+/.test(line) && ctx.subtext) {
        flush();
        add(box, add(el("div", "subtext"), inline(line.replace(/^-#\s+/, ""), ctx)));
      } else if (!line.trim()) {
        flush();
      } else {
        para.push(line.replace(/ {2,}$/, ""));
      }
    }
    flush();
    return box;
  }

  // ---------------------------------------------------------------- Feishu / Lark
  const TEMPLATE = /^[a-z]{2,12}$/;

  function feishuMessage(msgType, content, notifies) {
    const ctx = context("feishu", notifies);
    if (msgType === "interactive") return feishuCard(obj(content), ctx);
    if (msgType === "post") return feishuPost(obj(content), ctx);
    if (msgType === "text") {
      return add(el("div", "bubble text"), inline(str(obj(content).text), context("feishuText", notifies)));
    }
    return el("div", "bubble placeholder", "[" + (msgType || "message") + "] not shown by this inbox");
  }

  function feishuCard(card, ctx) {
    const box = el("div", "card");
    const header = obj(card.header);
    if (card.header) {
      const template = TEMPLATE.test(str(header.template)) ? header.template : "default";
      const head = add(el("div", "card-header tpl-" + template));
      head.dataset.template = template;
      add(head, add(el("div", "card-title"), feishuText(obj(header.title), ctx)));
      if (header.subtitle) add(head, add(el("div", "card-subtitle"), feishuText(obj(header.subtitle), ctx)));
      add(box, head);
    }
    const body = el("div", "card-body");
    const elements = card.elements || obj(card.body).elements || obj(obj(card.i18n_elements)).zh_cn;
    for (const element of arr(elements)) add(body, feishuElement(obj(element), ctx));
    return add(box, body);
  }

  function feishuText(node, ctx) {
    if (node.tag === "lark_md") return inline(str(node.content), ctx);
    return document.createTextNode(str(node.content));
  }

  function feishuElement(element, ctx) {
    switch (element.tag) {
      case "markdown": return markdown(str(element.content), ctx);
      case "div": {
        const box = el("div", "card-div");
        if (element.text) add(box, add(el("div", "card-text"), feishuText(obj(element.text), ctx)));
        const fields = arr(element.fields);
        if (fields.length) {
          const grid = el("div", "card-fields");
          for (const field of fields) {
            add(grid, add(el("div", obj(field).is_short ? "field short" : "field"), feishuText(obj(obj(field).text), ctx)));
          }
          add(box, grid);
        }
        return box;
      }
      case "hr": return el("hr", "card-hr");
      case "note": {
        const note = el("div", "card-note");
        for (const item of arr(element.elements)) {
          const part = obj(item);
          add(note, part.tag === "img" ? el("span", "image", "[image]") : add(el("span"), feishuText(part, ctx)));
        }
        return note;
      }
      case "action": {
        const row = el("div", "card-actions");
        for (const action of arr(element.actions)) add(row, feishuButton(obj(action), ctx));
        return row;
      }
      case "button": return add(el("div", "card-actions"), feishuButton(element, ctx));
      case "column_set": {
        const row = el("div", "card-columns");
        for (const column of arr(element.columns)) {
          const col = el("div", "card-column");
          for (const inner of arr(obj(column).elements)) add(col, feishuElement(obj(inner), ctx));
          add(row, col);
        }
        return row;
      }
      case "img": return el("div", "image block", "[image] " + (str(obj(element.alt).content) || "image"));
      default: return el("div", "placeholder", "[" + str(element.tag || "element") + "] not shown by this inbox");
    }
  }

  function feishuButton(button, ctx) {
    const label = feishuText(obj(button.text), ctx);
    const url = button.url || obj(button.multi_url).url || obj(arr(button.behaviors)[0]).default_url;
    const type = ["primary", "danger"].includes(button.type) ? button.type : "default";
    const node = url ? link("", url) : el("span", "link-off");
    node.classList.add("button", "button-" + type);
    node.appendChild(label);
    return node;
  }

  function feishuPost(post, ctx) {
    const locale = post.zh_cn || post.en_us || post.ja_jp || obj(Object.values(post)[0]);
    const box = el("div", "bubble post");
    if (locale.title) add(box, el("div", "post-title", locale.title));
    for (const paragraph of arr(locale.content)) {
      const p = el("p");
      for (const node of arr(paragraph)) add(p, feishuPostNode(obj(node), ctx));
      add(box, p);
    }
    return box;
  }

  function feishuPostNode(node, ctx) {
    switch (node.tag) {
      case "text": return document.createTextNode(str(node.text));
      case "a": return link(str(node.text), node.href);
      case "at": return mention(str(node.user_id), node.user_name ? "@" + node.user_name : "", ctx);
      case "code_block": return add(el("pre", "code-block"), el("code", null, str(node.text)));
      case "md": return markdown(str(node.text), ctx);
      case "hr": return el("hr");
      case "img": return el("span", "image", "[image]");
      default: return el("span", "placeholder", "[" + str(node.tag) + "]");
    }
  }

  // ---------------------------------------------------------------- DingTalk
  function dingtalkMessage(payload, notifies) {
    const at = obj(payload.at);
    const ids = arr(at.atMobiles).concat(arr(at.atUserIds)).map(String);
    const ctx = context("dingtalk", notifies, { ids });
    const type = payload.msgtype;
    const part = obj(payload[type]);
    if (type === "text") return add(el("div", "bubble text"), inline(str(part.content), context("plain", notifies, { ids })));
    if (type === "markdown") return add(el("div", "bubble ding-md"), markdown(str(part.text), ctx));
    if (type === "actionCard") {
      const box = add(el("div", "bubble ding-card"), markdown(str(part.text), ctx));
      const row = el("div", "ding-buttons" + (part.btnOrientation === "1" ? " across" : ""));
      if (part.singleTitle) add(row, add(link(str(part.singleTitle), part.singleURL), null));
      for (const btn of arr(part.btns)) add(row, link(str(obj(btn).title), obj(btn).actionURL));
      for (const b of row.children) b.classList.add("ding-button");
      return add(box, row);
    }
    if (type === "link") {
      const box = el("div", "bubble ding-link");
      add(box, el("div", "link-title", part.title), el("div", "link-text", part.text));
      return add(box, link("open", part.messageUrl));
    }
    if (type === "feedCard") {
      const box = el("div", "bubble feed-card");
      for (const item of arr(part.links)) add(box, add(el("div", "feed-item"), link(str(obj(item).title), obj(item).messageURL)));
      return box;
    }
    return null;
  }

  // ---------------------------------------------------------------- WeCom
  function wecomMessage(payload, notifies) {
    const type = payload.msgtype;
    const part = obj(payload[type]);
    if (type === "markdown" || type === "markdown_v2") {
      return add(el("div", "bubble wecom-md"), markdown(str(part.content), context("wecom", notifies, { fonts: WECOM_FONT })));
    }
    if (type === "text") {
      const ctx = context("plain", notifies);
      const box = add(el("div", "bubble text"), inline(str(part.content), ctx));
      const listed = arr(part.mentioned_list).concat(arr(part.mentioned_mobile_list)).map(String);
      for (const id of listed) { box.appendChild(document.createTextNode(" ")); box.appendChild(mention(id === "@all" ? "all" : id, "", ctx)); }
      return box;
    }
    if (type === "news") {
      const box = el("div", "bubble feed-card");
      for (const item of arr(part.articles)) add(box, add(el("div", "feed-item"), link(str(obj(item).title), obj(item).url)));
      return box;
    }
    if (type === "template_card") {
      const box = el("div", "bubble card-plain");
      add(box, el("div", "link-title", obj(part.main_title).title), el("div", "link-text", obj(part.main_title).desc));
      if (part.sub_title_text) add(box, el("div", "link-text", part.sub_title_text));
      return box;
    }
    return null;
  }

  // ---------------------------------------------------------------- Discord
  function discordMessage(payload, notifies) {
    const ctx = context("discord", notifies, { subtext: true, everyoneLabel: "@everyone" });
    const box = el("div", "discord");
    add(box, add(el("div", "discord-name"), el("span", null, str(payload.username) || "chatlog"), el("span", "bot-tag", "APP")));
    if (payload.content) add(box, markdown(str(payload.content), ctx));
    for (const embed of arr(payload.embeds)) add(box, discordEmbed(obj(embed), ctx));
    return box;
  }

  function discordEmbed(embed, ctx) {
    const box = el("div", "embed");
    if (Number.isInteger(embed.color)) box.style.borderLeftColor = "#" + (embed.color & 0xffffff).toString(16).padStart(6, "0");
    if (embed.author) add(box, el("div", "embed-author", obj(embed.author).name));
    if (embed.title) add(box, add(el("div", "embed-title"), embed.url ? link(str(embed.title), embed.url) : inline(str(embed.title), ctx)));
    if (embed.description) add(box, markdown(str(embed.description), ctx));
    const fields = arr(embed.fields);
    if (fields.length) {
      const grid = el("div", "embed-fields");
      for (const field of fields) {
        const f = obj(field);
        add(grid, add(el("div", f.inline ? "embed-field inline" : "embed-field"),
          add(el("div", "embed-field-name"), inline(str(f.name), ctx)), markdown(str(f.value), ctx)));
      }
      add(box, grid);
    }
    const footer = [str(obj(embed.footer).text), embed.timestamp ? new Date(embed.timestamp).toLocaleString() : ""].filter(Boolean);
    if (footer.length) add(box, el("div", "embed-footer", footer.join(" • ")));
    return box;
  }

  // ---------------------------------------------------------------- Slack
  function slackMessage(payload, notifies) {
    const ctx = context("slack", notifies, { entities: true, everyoneLabel: "@channel" });
    const box = el("div", "slack");
    add(box, add(el("div", "slack-name"), el("span", null, str(payload.username) || "chatlog"), el("span", "bot-tag", "APP")));
    const blocks = arr(payload.blocks);
    if (blocks.length) for (const block of blocks) add(box, slackBlock(obj(block), ctx));
    else if (payload.text) add(box, markdown(str(payload.text), ctx));
    for (const attachment of arr(payload.attachments)) {
      const a = obj(attachment);
      const bar = el("div", "slack-attachment");
      const colour = { good: "#2eb67d", warning: "#ecb22e", danger: "#e01e5a" }[a.color] || a.color;
      if (typeof colour === "string" && CSS_COLOUR.test(colour)) bar.style.borderLeftColor = colour;
      if (a.pretext) add(bar, markdown(str(a.pretext), ctx));
      if (a.title) add(bar, el("div", "slack-title", a.title));
      if (a.text) add(bar, markdown(str(a.text), ctx));
      for (const block of arr(a.blocks)) add(bar, slackBlock(obj(block), ctx));
      for (const field of arr(a.fields)) add(bar, add(el("div", "slack-field"), el("strong", null, obj(field).title), markdown(str(obj(field).value), ctx)));
      if (a.footer) add(bar, el("div", "slack-context", a.footer));
      add(box, bar);
    }
    return box;
  }

  function slackText(t, ctx) {
    const node = obj(t);
    return node.type === "mrkdwn" ? markdown(str(node.text), ctx) : el("div", "slack-plain", str(node.text));
  }

  function slackBlock(block, ctx) {
    switch (block.type) {
      case "header": return el("div", "slack-header", str(obj(block.text).text));
      case "divider": return el("hr");
      case "section": {
        const box = el("div", "slack-section");
        if (block.text) add(box, slackText(block.text, ctx));
        const fields = arr(block.fields);
        if (fields.length) {
          const grid = el("div", "slack-fields");
          for (const f of fields) add(grid, slackText(f, ctx));
          add(box, grid);
        }
        if (obj(block.accessory).type === "button") add(box, slackButton(obj(block.accessory)));
        return box;
      }
      case "context": {
        const row = el("div", "slack-context");
        for (const item of arr(block.elements)) add(row, obj(item).type === "image" ? el("span", "image", "[image]") : slackText(item, ctx));
        return row;
      }
      case "actions": {
        const row = el("div", "slack-actions");
        for (const item of arr(block.elements)) if (obj(item).type === "button") add(row, slackButton(obj(item)));
        return row;
      }
      case "image": return el("div", "image block", "[image] " + (str(block.alt_text) || "image"));
      default: return el("div", "placeholder", "[" + str(block.type || "block") + "] not shown by this inbox");
    }
  }

  function slackButton(button) {
    const node = button.url ? link(str(obj(button.text).text), button.url) : el("span", "link-off", str(obj(button.text).text));
    node.classList.add("button", "button-" + (["primary", "danger"].includes(button.style) ? button.style : "default"));
    return node;
  }

  // ---------------------------------------------------------------- Telegram
  const TG_TAGS = { b: "strong", strong: "strong", i: "em", em: "em", u: "u", ins: "u", s: "s", strike: "s",
    del: "s", code: "code", pre: "pre", a: "a", blockquote: "blockquote", "tg-spoiler": "span", span: "span", "tg-emoji": "span" };

  function telegramMessage(payload, notifies) {
    const box = el("div", "bubble telegram");
    const value = str(payload.text) || str(payload.caption);
    const mode = str(payload.parse_mode).toLowerCase();
    if (mode === "html") add(box, telegramHtml(value, context("plain", notifies)));
    else if (mode === "markdownv2" || mode === "markdown") add(box, markdown(value, context("telegramMd", notifies)));
    else add(box, inline(value, context("plain", notifies)));
    return box;
  }

  function decodeEntities(value) {
    return value.replace(/&(lt|gt|amp|quot|#(\d+)|#x([0-9a-f]+));/gi, (all, name, dec, hex) => {
      if (dec) return String.fromCodePoint(Number(dec));
      if (hex) return String.fromCodePoint(parseInt(hex, 16));
      return { lt: "<", gt: ">", amp: "&", quot: '"' }[name.toLowerCase()];
    });
  }

  function telegramHtml(value, ctx) {
    // Telegram's HTML mode is a fixed tag list; anything else shows as the literal text it is.
    const root = el("div", "tg-html");
    const stack = [{ tag: "", node: root }];
    const tag = /<(\/?)([a-z-]+)((?:\s+[a-z-]+\s*=\s*"[^"]*")*)\s*>/gi;
    let pos = 0, m;
    while ((m = tag.exec(value))) {
      const top = stack[stack.length - 1].node;
      if (m.index > pos) top.appendChild(document.createTextNode(decodeEntities(value.slice(pos, m.index))));
      pos = m.index + m[0].length;
      const name = m[2].toLowerCase();
      if (!TG_TAGS[name]) { top.appendChild(document.createTextNode(m[0])); continue; }
      if (m[1]) {
        const at = stack.map((s) => s.tag).lastIndexOf(name);
        if (at > 0) stack.length = at;
        continue;
      }
      const href = /href\s*=\s*"([^"]*)"/i.exec(m[3]);
      let node;
      if (name === "a") node = link("", href ? decodeEntities(href[1]) : "");
      else node = el(TG_TAGS[name], name === "tg-spoiler" || /tg-spoiler/.test(m[3]) ? "spoiler" : (name === "pre" ? "code-block" : (name === "code" ? "inline-code" : null)));
      top.appendChild(node);
      stack.push({ tag: name, node });
    }
    if (pos < value.length) stack[stack.length - 1].node.appendChild(document.createTextNode(decodeEntities(value.slice(pos))));
    void ctx;
    return root;
  }

  // ---------------------------------------------------------------- choosing a renderer
  function family(platform, payload) {
    const name = String(platform || "").toLowerCase();
    for (const known of ["feishu", "lark", "dingtalk", "wecom", "discord", "slack", "telegram"]) {
      if (name === known || name.startsWith(known + "-")) return known === "lark" ? "feishu" : known;
    }
    const p = obj(payload);
    if (p.msg_type) return "feishu";
    if (p.msgtype && obj(p.markdown).content !== undefined) return "wecom";
    if (p.msgtype) return "dingtalk";
    if (p.chat_id !== undefined) return "telegram";
    if (p.embeds || p.allowed_mentions) return "discord";
    if (p.blocks || p.attachments) return "slack";
    return "";
  }

  function renderPayload(platform, payload, notifies, decoded) {
    const p = obj(payload);
    let node = null;
    try {
      switch (family(platform, p)) {
        case "feishu":
          if (decoded) node = feishuMessage(p.msg_type, decoded, notifies);
          else node = feishuMessage(p.msg_type, p.msg_type === "interactive" ? p.card : (p.msg_type === "post" ? obj(p.content).post : p.content), notifies);
          break;
        case "dingtalk": node = dingtalkMessage(p, notifies); break;
        case "wecom": node = wecomMessage(p, notifies); break;
        case "discord": node = discordMessage(p, notifies); break;
        case "slack": node = slackMessage(p, notifies); break;
        case "telegram": node = telegramMessage(p, notifies); break;
        default: node = null;
      }
    } catch (e) {
      node = null; // an odd payload falls back to the generic view below
    }
    return node || genericMessage(p);
  }

  function genericMessage(payload) {
    const strings = [];
    (function walk(v) {
      if (typeof v === "string") strings.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") Object.values(v).forEach(walk);
    })(payload);
    return el("div", "bubble text generic", strings.join("\n") || "(no text)");
  }

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
