/* chatlog inbox, part 1 of 3: DOM helpers, mentions and the markdown subsets of the chat platforms.
 *
 * Safety rule for all three files: text from a request never becomes markup. Every node is made with
 * createElement and filled with textContent; the markdown subsets are parsed here, by regular
 * expressions over plain strings, and only ever produce elements from a fixed list. Links keep http(s)
 * URLs only; colours go through the CSSOM after a pattern check. The page's CSP forbids inline script.
 */
"use strict";

(function () {
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
    code: rule("code", /`([^`\n]+)`/, (m, ctx) => el("code", "inline-code", literal(m[1], ctx))),
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
    discord: [R.escaped, R.code, R.discordAt, R.link, R.url, R.bold, R.underline, R.strike, R.spoiler, R.italic, R.italicUnderscore],
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

  function literal(value, ctx) {
    // Slack escapes <, > and & as entities everywhere, code included; the client shows the characters.
    return ctx.entities ? value.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&") : value;
  }

  function text(node, value, ctx) {
    node.appendChild(document.createTextNode(literal(value, ctx)));
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
        add(box, add(el("pre", "code-block"), el("code", null, literal(code.join("\n"), ctx))));
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

  window.chatlogMarkdown = { el, add, str, obj, arr, safeUrl, link, clock, CSS_COLOUR, coloured, mention,
    context, inline, markdown, FEISHU_FONT, WECOM_FONT };
})();
