// DOM building for the console. Every value from the server becomes a text node (or an
// attribute set through the DOM), never markup: a label or a dataset line holding "<script>" is
// shown as those characters. Nothing here assigns innerHTML.

// h("a", {href: "#/jobs", onclick: f}, "text", child, ...): attributes through setAttribute,
// `on*` functions as listeners, strings and numbers as text nodes, null/false skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

// A number for people: at most `digits` decimals, no trailing zeros.
export function num(x, digits = 4) {
  const v = Number(x);
  if (!Number.isFinite(v)) return "–";
  return String(Number(v.toFixed(digits)));
}

export function age(unixMs) {
  const ms = Number(unixMs);
  if (!ms) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 129600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

export function duration(seconds) {
  const s = Math.round(Number(seconds) || 0);
  if (s < 90) return s + " s";
  if (s < 5400) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}
