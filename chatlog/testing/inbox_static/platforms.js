/* chatlog inbox, part 2 of 3: one renderer per platform family, each turning a request body into
 * what that chat client shows (built from markdown.js's safe pieces only), and the choice among them. */
"use strict";

(function () {
  const { el, add, str, obj, arr, link, CSS_COLOUR, mention, context, inline, markdown, FEISHU_FONT, WECOM_FONT } =
    window.chatlogMarkdown;

  // ---------------------------------------------------------------- Feishu / Lark
  const TEMPLATE = /^[a-z]{2,12}$/;

  function feishuMessage(msgType, content, notifies) {
    const ctx = context("feishu", notifies, { fonts: FEISHU_FONT });
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

  window.chatlogRender = { renderPayload, family };
})();
