// Berth's HTTP API as the console uses it: every call goes through here, with the token the
// user entered (kept for this tab only, in sessionStorage). Errors carry the server's message.
const TOKEN_KEY = "berth.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, type) { super(message); this.status = status; this.type = type; }
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

async function check(r) {
  if (r.ok) return r;
  let message = r.status + " " + r.statusText, type = "";
  try {
    const j = await r.json();
    if (j && typeof j.error === "string") { message = j.error; type = j.error_type || ""; }
  } catch (e) { /* not JSON: keep the status line */ }
  throw new ApiError(r.status, message, type);
}

export async function get(path) {
  return (await check(await fetch(path, { headers: headers() }))).json();
}

export async function send(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  return (await check(await fetch(path, init))).json();
}

// Server-Sent Events through fetch (EventSource cannot send the Authorization header): calls
// onEvent(name, data) per event until the stream ends or `signal` aborts it.
export async function events(path, onEvent, signal) {
  const r = await check(await fetch(path, { headers: headers(), signal }));
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}
