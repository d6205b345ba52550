// The Berth console: a client of Berth's HTTP API (/v1, TEI's routes, /health) and nothing
// else. It holds no rule of its own: what may be done, and every limit and error, is the
// server's, shown as the server words it.
import * as api from "./api.js";
import { h, clear, table, num, age, duration } from "./dom.js";
import { Curve } from "./charts.js";

const main = document.getElementById("main");
const errorBox = document.getElementById("error");
let cleanup = [];  // what the current page stops when the user leaves it

function showError(e) {
  errorBox.hidden = false;
  errorBox.textContent = e instanceof api.ApiError
    ? "The server refused: " + e.message + " (HTTP " + e.status + ")"
    : "Error: " + (e && e.message ? e.message : String(e));
}
function clearError() { errorBox.hidden = true; errorBox.textContent = ""; }

// Runs `f` and shows what went wrong, if anything.
async function guarded(f) {
  try { clearError(); return await f(); } catch (e) { showError(e); return undefined; }
}

function every(ms, f) {
  const id = setInterval(() => { f().catch(showError); }, ms);
  cleanup.push(() => clearInterval(id));
}

function page(title, ...children) {
  clear(main).append(h("h1", {}, title), ...children.flat().filter(Boolean));
  document.title = title + " — Berth console";
}

const TERMINAL = ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"];
const stateName = (s) => String(s || "").replace("JOB_STATE_", "").toLowerCase();
const modelRef = (name, version) => name + ":" + version;

// --- jobs ------------------------------------------------------------------------------------

function progressText(st) {
  const p = st.progress || {};
  const total = Number(p.total_updates || 0), update = Number(p.update || 0);
  if (!total) return "–";
  return update + " / " + total + " (" + Math.floor((100 * update) / total) + "%)";
}

async function jobsPage() {
  const body = h("tbody", {});
  const list = h("table", { id: "jobs" },
    h("thead", {}, h("tr", {}, ["Job", "Model", "Base model", "State", "Progress", "Created"]
      .map((x) => h("th", { scope: "col" }, x)))), body);
  page("Jobs", demoPanel(), h("h2", {}, "All jobs"), list);
  const refresh = async () => {
    const r = await api.get("/v1/jobs?page_size=100");
    clear(body).append(...(r.jobs || []).map((j) => h("tr", { "data-job": j.job_id },
      h("td", {}, h("a", { href: "#/jobs/" + j.job_id }, j.job_id)),
      h("td", {}, j.model_name), h("td", {}, j.base_model),
      h("td", { class: "state" }, stateName(j.state)), h("td", { class: "num" }, progressText(j)),
      h("td", {}, age(j.created_unix_ms)))));
    if (!(r.jobs || []).length) body.append(h("tr", {}, h("td", { colspan: 6 }, "No jobs yet.")));
  };
  await guarded(refresh);
  every(3000, refresh);
}

// The demo: the SST-2 sample `berth demo` uses (built into the console), uploaded through
// POST /v1/datasets, then the same job `berth demo` starts.
function demoPanel() {
  const base = h("input", { id: "demo-base", value: "sentence-transformers/all-MiniLM-L6-v2", size: 40 });
  const status = h("span", { role: "status" });
  const start = async () => {
    status.textContent = "Uploading the SST-2 sample…";
    const upload = async (name) => {
      const text = await (await fetch("/ui/demo/" + name)).text();
      return api.send("POST", "/v1/datasets?file_name=" + name, text);
    };
    const train = await upload("train.tsv");
    const validation = await upload("validation.tsv");
    status.textContent = "Starting the job…";
    const r = await api.send("POST", "/v1/jobs", {
      base_model: base.value, train_dataset_id: train.dataset_id,
      validation_dataset_id: validation.dataset_id, model_name: "sst2-demo",
    }, { "Idempotency-Key": crypto.randomUUID() });
    location.hash = "#/jobs/" + r.job_id;
  };
  return h("section", { "aria-labelledby": "demo-title" },
    h("h2", { id: "demo-title" }, "Try it: the demo job"),
    h("p", {}, "Fine-tunes a model on the SST-2 sample (2,000 movie-review sentences) and shows " +
      "its curves as it trains, as `berth demo` does."),
    h("label", { for: "demo-base" }, "Base model "), base, " ",
    h("button", { id: "demo-start", onclick: () => guarded(start).finally(() => { status.textContent = ""; }) },
      "Start the demo job"), " ", status);
}

async function jobPage(id) {
  const st = await guarded(() => api.get("/v1/jobs/" + encodeURIComponent(id)));
  if (!st) { page("Job " + id); return; }
  const summary = h("dl", { id: "job-summary" });
  const loss = new Curve("Training loss", [{ key: "loss", label: "loss" }]);
  const lr = new Curve("Learning rate", [{ key: "lr", label: "learning rate" }]);
  const grad = new Curve("Gradient norm (before clipping)", [{ key: "grad", label: "gradient norm" }]);
  // A scorer's evaluation (TASK_SCORE_*) has correlations, a classifier's accuracy and F1.
  const evalKeys = isScorer(st.spec) ? [{ key: "pearson", label: "Pearson" }, { key: "spearman", label: "Spearman" }]
    : [{ key: "accuracy", label: "accuracy" }, { key: "macro_f1", label: "macro F1" }, { key: "micro_f1", label: "micro F1" }];
  const evals = new Curve("Evaluation", [...evalKeys, { key: "loss", label: "evaluation loss" }]);
  loss.figure.id = "curve-loss";
  evals.figure.id = "curve-eval";
  cleanup.push(() => [loss, lr, grad, evals].forEach((c) => c.destroy()));
  const logBody = h("tbody", {});
  const cancel = h("button", { class: "danger", id: "cancel" }, "Cancel job");
  cancel.addEventListener("click", () => guarded(async () => {
    if (!confirm("Cancel job " + id + "?")) return;
    show(await api.send("POST", "/v1/jobs/" + encodeURIComponent(id) + "/cancel"));
  }));
  const spec = h("pre", { id: "job-spec" });
  const modelLink = h("p", {});
  page("Job " + id, summary, modelLink, cancel,
    h("h2", {}, "Curves"), h("div", { class: "charts" }, loss.figure, lr.figure, grad.figure, evals.figure),
    h("h2", {}, "Log"), table(["Time", "Event", "Detail"], [logBody], { id: "job-log" }),
    h("h2", {}, "Spec (every option, defaults included)"), spec);

  function show(s) {
    const p = s.progress || {};
    const rows = [["State", stateName(s.state) + (s.cancel_requested ? " (cancel requested)" : "")],
      ["Model", s.model_name + (Number(s.model_version) ? ":" + s.model_version : "")],
      ["Base model", s.base_model], ["Progress", progressText(s)],
      ["Epoch", num(p.epoch, 2)], ["Latest loss", num(p.loss, 5)],
      ["Samples/s", num(p.samples_per_second, 1)],
      ["ETA", TERMINAL.includes(s.state) ? "–" : duration(p.eta_seconds)],
      ["Created", age(s.created_unix_ms)]];
    if (s.error) rows.push(["Error", s.error]);
    clear(summary).append(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]));
    cancel.hidden = TERMINAL.includes(s.state);
    clear(modelLink);
    if (Number(s.model_version)) {
      modelLink.append("Registered as ", h("a", { id: "job-model-link", href: "#/models/" + s.model_name + "/" + s.model_version },
        modelRef(s.model_name, s.model_version)), ".");
    }
    spec.textContent = JSON.stringify(s.spec || {}, null, 2);
  }
  show(st);

  let lastId = 0;
  async function readLog() {
    for (;;) {
      const r = await api.get("/v1/jobs/" + encodeURIComponent(id) + "/log?after_id=" + lastId);
      const events = r.events || [];
      for (const e of events) {
        lastId = Math.max(lastId, Number(e.id));
        if (e.kind !== "progress") {
          logBody.append(h("tr", {}, h("td", {}, new Date(Number(e.unix_ms)).toLocaleTimeString()),
            h("td", {}, e.kind), h("td", {}, e.detail || "")));
          continue;
        }
        const p = e.progress || {};
        const x = Number(p.update || 0);
        loss.add("loss", x, p.loss);
        lr.add("lr", x, p.learning_rate);
        grad.add("grad", x, p.grad_norm);
        if (p.last_eval) for (const { key } of evals.series) evals.add(key, x, p.last_eval[key] ?? 0);
      }
      if (events.length < 1000) break;
    }
    [loss, lr, grad, evals].forEach((c) => c.render());
  }
  // One read at a time: events that arrive during a read ask for one more after it.
  let reading = null, again = false;
  function refreshLog() {
    if (reading) { again = true; return reading; }
    reading = (async () => {
      do { again = false; await readLog(); } while (again);
    })().finally(() => { reading = null; });
    return reading;
  }
  await guarded(refreshLog);
  if (TERMINAL.includes(st.state)) return;
  // Live: every event of the job's stream (SSE) brings its status; the new points come from
  // the log, so the curves have one source whether the page was open from the start or not.
  const abort = new AbortController();
  cleanup.push(() => abort.abort());
  api.events("/v1/jobs/" + encodeURIComponent(id) + "/events", (name, s) => {
    show(s);
    refreshLog().catch(showError);
  }, abort.signal).catch((e) => { if (e.name !== "AbortError") showError(e); });
}

// --- a new job -------------------------------------------------------------------------------

const TOP_FIELDS = [
  ["base_model", "Base model (registry NAME[:VERSION|@ALIAS], config:PRESET, a Hub id)"],
  ["train_dataset_id", "Training dataset id"], ["validation_dataset_id", "Validation dataset id"],
  ["validation_split", "Validation split (without a validation set)"],
  ["text_column", "Text column"], ["text_pair_column", "Text pair column"],
  ["label_column", "Label column"], ["model_name", "Output model name"], ["workers", "Workers"]];
const TASKS = ["TASK_SINGLE_LABEL", "TASK_MULTI_LABEL", "TASK_SCORE_BCE", "TASK_SCORE_MSE"];
const PRECISIONS = ["PRECISION_FP32", "PRECISION_BF16"];

function input(id, value) {
  if (typeof value === "boolean") return h("input", { id, type: "checkbox", checked: value });
  if (Array.isArray(value)) return h("input", { id, value: value.join(", "), placeholder: "comma-separated" });
  return h("input", { id, value: String(value ?? "") });
}

function readInput(el, def) {
  if (typeof def === "boolean") return el.checked;
  if (Array.isArray(def)) return el.value.split(",").map((x) => x.trim()).filter(Boolean).map(Number);
  if (typeof def === "number") return el.value.trim() === "" ? def : Number(el.value);
  return el.value.trim();
}

async function newJobPage(params) {
  const defaults = await guarded(() => api.get("/v1/training-defaults"));
  if (!defaults) { page("New job"); return; }
  const form = h("form", { class: "spec", id: "new-job" });
  const fields = [];
  const add = (path, label, def, el) => {
    const id = "f-" + path.join("-");
    el = el || input(id, def);
    el.id = id;
    form.append(h("label", { for: id }, label + " "), el);
    fields.push({ path, def, el });
  };
  const given = { train_dataset_id: params.get("train") || "" };
  for (const [k, label] of TOP_FIELDS) {
    const def = defaults[k];
    add([k], label, def, given[k] ? input("", given[k]) : undefined);
  }
  add(["task"], "Task", defaults.task,
    h("select", {}, TASKS.map((t) => h("option", { value: t, selected: t === defaults.task }, t))));
  form.append(h("h2", { class: "wide" }, "Hyperparameters (the server's defaults)"));
  for (const [k, def] of Object.entries(defaults.hyperparameters || {})) {
    const el = k === "precision"
      ? h("select", {}, PRECISIONS.map((t) => h("option", { value: t, selected: t === def }, t)))
      : undefined;
    add(["hyperparameters", k], k.replaceAll("_", " "), def, el);
  }
  const key = crypto.randomUUID();  // one job per form, however often it is submitted
  form.append(h("button", { type: "submit", class: "wide", id: "start-job" }, "Start job"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      // Only what differs from the defaults is sent: the server fills in the rest.
      const request = { hyperparameters: {} };
      for (const { path, def, el } of fields) {
        const v = readInput(el, def);
        if (JSON.stringify(v) === JSON.stringify(def)) continue;
        if (path.length === 1) request[path[0]] = v; else request.hyperparameters[path[1]] = v;
      }
      const r = await api.send("POST", "/v1/jobs", request, { "Idempotency-Key": key });
      location.hash = "#/jobs/" + r.job_id;
    });
  });
  page("New job", h("p", {}, "Every option, with the value the server uses when it is left as it is. " +
    "Upload a dataset under Datasets first; its id goes in the training dataset field."), form);
}

// --- datasets --------------------------------------------------------------------------------

function datasetsPage() {
  const file = h("input", { id: "dataset-file", type: "file", accept: ".csv,.tsv,.jsonl,.json" });
  const columns = ["text_column", "text_pair_column", "label_column"].map((c) =>
    [c, h("input", { id: "ds-" + c, placeholder: "default" })]);
  const multi = h("input", { id: "ds-multi_label", type: "checkbox" });
  const drop = h("div", { class: "drop", id: "drop" }, "Drop a CSV, TSV or JSONL file here, or ",
    h("label", { for: "dataset-file" }, "choose one: "), file);
  const result = h("section", { id: "dataset-result", "aria-live": "polite" });
  const upload = (f) => guarded(async () => {
    clear(result).append(h("p", {}, "Uploading " + f.name + "…"));
    const text = await f.text();
    const q = new URLSearchParams({ file_name: f.name });
    for (const [c, el] of columns) if (el.value.trim()) q.set(c, el.value.trim());
    if (multi.checked) q.set("multi_label", "true");
    try {
      const r = await api.send("POST", "/v1/datasets?" + q.toString(), text);
      showDataset(f.name, r);
    } catch (e) {
      clear(result);
      if (e instanceof api.ApiError) showLines(f.name, text, e.message);
      throw e;
    }
  });
  function showDataset(name, r) {
    clear(result).append(
      h("p", { class: "ok" }, name + ": " + r.rows + " rows, id ", h("code", { id: "dataset-id" }, r.dataset_id),
        r.already_present ? " (uploaded before)" : ""),
      h("p", {}, h("a", { href: "#/new-job?train=" + r.dataset_id }, "Start a job on it")));
    const counts = Object.entries(r.label_counts || {}).sort((a, b) => a[0].localeCompare(b[0]));
    result.append(h("h2", {}, "Labels"),
      table(["Label", "Rows"], counts.map(([l, n]) => h("tr", {}, h("td", {}, l), h("td", { class: "num" }, n))),
        { id: "label-counts" }));
    const canvas = h("canvas", { role: "img", "aria-label": "Rows per label" });
    result.append(h("figure", { class: "chart" }, h("div", { class: "plot" }, canvas)));
    const chart = new Chart(canvas, {
      type: "bar", data: { labels: counts.map((c) => c[0]),
        datasets: [{ label: "rows", data: counts.map((c) => Number(c[1])), backgroundColor: "#0a55b5" }] },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } } },
    });
    cleanup.push(() => chart.destroy());
  }
  // The server names the line it refused ("file.csv:3: ..."): show the lines around it, the
  // message beside the line it names.
  function showLines(name, text, message) {
    const m = /:(\d+):/.exec(message);
    if (!m) return;
    const bad = Number(m[1]);
    const lines = text.split("\n");
    const rows = [];
    for (let n = Math.max(1, bad - 3); n <= Math.min(lines.length, bad + 3); n++) {
      rows.push(h("tr", { class: n === bad ? "bad" : null, "data-line": n },
        h("td", { class: "num" }, n), h("td", {}, lines[n - 1]), h("td", {}, n === bad ? message : "")));
    }
    result.append(h("h2", {}, "Where " + name + " was refused"),
      table(["Line", "Text", "Error"], rows, { class: "lines", id: "dataset-lines" }));
  }
  file.addEventListener("change", () => { if (file.files[0]) upload(file.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  page("Datasets",
    h("div", { class: "spec" }, columns.flatMap(([c, el]) => [h("label", { for: el.id }, c.replaceAll("_", " ") + " "), el, " "]),
      h("label", { for: "ds-multi_label" }, "multi-label "), multi),
    drop, result);
}

// --- models ----------------------------------------------------------------------------------

async function modelsPage() {
  const r = await guarded(() => api.get("/v1/models"));
  const rows = ((r && r.models) || []).map((m) => h("tr", {},
    h("td", {}, m.name), h("td", {}, h("a", { href: "#/models/" + m.name + "/" + m.version }, "version " + m.version)),
    h("td", {}, (m.aliases || []).join(", ")), h("td", {}, (m.labels || []).join(", ")),
    h("td", {}, m.base_model || m.imported_from || ""),
    h("td", { class: "num" }, m.metrics && m.metrics.examples ? evalSummary(m.metrics) : "–"),
    h("td", {}, age(m.created_unix_ms))));
  page("Models", table(["Name", "Version", "Aliases", "Labels", "From", "Evaluation", "Created"], rows, { id: "models" }),
    h("p", {}, h("a", { href: "#/compare" }, "Compare two versions")));
}

function isScorer(spec) {
  return ["TASK_SCORE_BCE", "TASK_SCORE_MSE"].includes((spec || {}).task);
}

// A version's evaluation in a few words: a classifier's accuracy, a scorer's Pearson correlation.
function evalSummary(m) {
  return m.scored ? "Pearson " + num(m.pearson ?? 0) : "accuracy " + num(m.accuracy ?? 0);
}

// Proto3's JSON leaves out zeros: a metric that is absent is 0.
function metricsTable(m) {
  const rows = m.scored
    ? [["Examples", m.examples], ["Loss", num(m.loss ?? 0)], ["Pearson", num(m.pearson ?? 0)], ["Spearman", num(m.spearman ?? 0)]]
    : [["Examples", m.examples], ["Accuracy", num(m.accuracy ?? 0)], ["Loss", num(m.loss ?? 0)],
      ["Macro precision", num(m.macro_precision ?? 0)], ["Macro recall", num(m.macro_recall ?? 0)], ["Macro F1", num(m.macro_f1 ?? 0)],
      ["Micro precision", num(m.micro_precision ?? 0)], ["Micro recall", num(m.micro_recall ?? 0)], ["Micro F1", num(m.micro_f1 ?? 0)]];
  return table(["Metric", "Value"], rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "num" }, v))));
}

// The evaluation of a version: a scorer has no per-label table or confusion matrix.
function evaluation(m, confusionId) {
  if (!m.examples) return h("p", {}, "This version has no evaluation.");
  if (m.scored) return metricsTable(m);
  return [metricsTable(m), h("h2", {}, "Per label"), perLabelTable(m), h("h2", {}, "Confusion"), confusionTable(m, confusionId)];
}

function perLabelTable(m) {
  return table(["Label", "Precision", "Recall", "F1", "Support"], (m.per_label || []).map((l) => h("tr", {},
    h("th", { scope: "row" }, l.label), h("td", { class: "num" }, num(l.precision)), h("td", { class: "num" }, num(l.recall)),
    h("td", { class: "num" }, num(l.f1)), h("td", { class: "num" }, l.support))));
}

// The confusion matrix as a heat map: rows are true labels, columns predictions; each cell's
// text is its count, its shade its share of the row, its text colour whichever of black and
// white contrasts more with the shade (at least 4.5:1 either way).
function confusionTable(m, id) {
  const labels = m.labels || [];
  const rows = (m.confusion_matrix || []).map((r) => (r.counts || []).map(Number));
  if (!rows.length) return h("p", {}, "No confusion matrix (a multi-label model or a scorer).");
  const body = rows.map((r, i) => {
    const total = r.reduce((a, b) => a + b, 0) || 1;
    return h("tr", {}, h("th", { scope: "row" }, labels[i] ?? i), r.map((c) => {
      const td = h("td", { class: "cell", title: c + " of " + total }, c);
      const t = c / total;
      const [R, G, B] = [255 + t * (10 - 255), 255 + t * (85 - 255), 255 + t * (181 - 255)].map(Math.round);
      td.style.backgroundColor = "rgb(" + R + "," + G + "," + B + ")";
      const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      const L = 0.2126 * lin(R) + 0.7152 * lin(G) + 0.0722 * lin(B);
      td.style.color = L > 0.179 ? "#000000" : "#ffffff";
      return td;
    }));
  });
  return h("table", { class: "heat", id },
    h("caption", {}, "Confusion matrix: rows are true labels, columns predicted"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "true \\ predicted"), labels.map((l) => h("th", { scope: "col" }, l)))),
    h("tbody", {}, body));
}

async function modelPage(name, version) {
  const ref = modelRef(name, version);
  const m = await guarded(() => api.get("/v1/models/" + encodeURIComponent(ref)));
  if (!m) { page("Model " + ref); return; }
  const all = await guarded(() => api.get("/v1/models"));
  const versions = ((all && all.models) || []).filter((x) => x.name === name);
  const metrics = m.metrics || {};
  page("Model " + ref,
    h("p", {}, "Labels: " + (m.labels || []).join(", ") + ". From " + (m.base_model || m.imported_from || "?") +
      (m.job_id ? ", job " : ""), m.job_id ? h("a", { href: "#/jobs/" + m.job_id }, m.job_id) : "", "."),
    h("p", {}, "Aliases: " + ((m.aliases || []).join(", ") || "none")),
    h("h2", {}, "Evaluation"), evaluation(metrics, "confusion"),
    h("h2", {}, "Try it"), tryIt(ref),
    h("h2", {}, "Move an alias"), aliasForm(name, versions, version));
}

function tryIt(ref) {
  const text = h("textarea", { id: "try-text", rows: 3, cols: 60 });
  const out = h("div", { id: "try-result", "aria-live": "polite" });
  const run = () => guarded(async () => {
    const base = "/models/" + encodeURIComponent(ref);
    const [scores, tokens, info] = await Promise.all([
      api.send("POST", base + "/predict", { inputs: text.value, truncate: true }),
      api.send("POST", base + "/tokenize", { inputs: text.value, add_special_tokens: true }),
      api.get(base + "/info")]);
    const max = Number(info.max_input_length);
    const toks = tokens[0] || [];
    clear(out).append(
      h("p", { id: "try-label" }, "Label: ", h("strong", {}, scores[0] ? scores[0].label : "–")),
      table(["Label", "Score", ""], scores.map((s) => {
        const bar = h("span", {});
        bar.style.width = Math.round(240 * Number(s.score)) + "px";
        return h("tr", {}, h("th", { scope: "row" }, s.label), h("td", { class: "num" }, num(s.score)),
          h("td", {}, h("span", { class: "bar", role: "img", "aria-label": num(s.score) }, bar)));
      })),
      h("p", {}, toks.length > max
        ? "The model saw " + max + " of " + toks.length + " tokens (max_input_length " + max + "); the struck-out ones were cut."
        : "The model saw all " + toks.length + " tokens."),
      h("div", { class: "tokens", id: "try-tokens" }, toks.map((t, i) =>
        // Right truncation keeps the first max-1 tokens and the closing special token.
        h("span", { class: (t.special ? "special" : "") + (toks.length > max && i >= max - 1 && i < toks.length - 1 ? " cut" : "") },
          t.text))));
  });
  return h("div", {}, h("label", { for: "try-text" }, "Text "), text, " ",
    h("button", { id: "try-run", onclick: run }, "Classify"), out);
}

function aliasForm(name, versions, current) {
  const alias = h("input", { id: "alias-name", placeholder: "prod" });
  const version = h("select", { id: "alias-version" },
    versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(current) }, "version " + v.version)));
  const confirmBox = h("div", { id: "alias-confirm", hidden: true, role: "alertdialog", "aria-labelledby": "alias-question" });
  const done = h("p", { id: "alias-done", role: "status" });
  const ask = () => {
    const a = alias.value.trim();
    if (!a) return;
    const holder = versions.find((v) => (v.aliases || []).includes(a));
    clear(confirmBox).append(
      h("p", { id: "alias-question" }, "Point " + name + "@" + a + " at version " + version.value +
        (holder ? " (it points at version " + holder.version + " now)" : " (a new alias)") + "?"),
      h("button", { id: "alias-yes", onclick: () => guarded(async () => {
        const r = await api.send("PUT", "/v1/models/" + encodeURIComponent(name) + "/aliases/" + encodeURIComponent(a),
          { version: version.value });
        confirmBox.hidden = true;
        done.textContent = name + "@" + a + " now points at version " + version.value +
          (Number(r.previous_version) ? " (was " + r.previous_version + ")" : "") + ".";
      }) }, "Move it"), " ",
      h("button", { onclick: () => { confirmBox.hidden = true; } }, "Keep it"));
    confirmBox.hidden = false;
    confirmBox.querySelector("button").focus();
  };
  return h("div", {}, h("label", { for: "alias-name" }, "Alias "), alias, " ",
    h("label", { for: "alias-version" }, "to "), version, " ", h("button", { id: "alias-move", onclick: ask }, "Move alias…"),
    confirmBox, done);
}

async function comparePage(params) {
  const all = await guarded(() => api.get("/v1/models"));
  const models = (all && all.models) || [];
  const refs = models.map((m) => modelRef(m.name, m.version));
  const pick = (id, value) => h("select", { id }, refs.map((r) => h("option", { value: r, selected: r === value }, r)));
  const a = pick("cmp-a", params.get("a") || refs[0]);
  const b = pick("cmp-b", params.get("b") || refs[1] || refs[0]);
  const out = h("div", { class: "side", id: "compare" });
  const show = () => guarded(async () => {
    const [ma, mb] = await Promise.all([a.value, b.value].map((r) => api.get("/v1/models/" + encodeURIComponent(r))));
    clear(out).append(...[[a.value, ma], [b.value, mb]].map(([r, m]) => h("section", {},
      h("h2", {}, r), evaluation(m.metrics || {}))));
  });
  a.addEventListener("change", show);
  b.addEventListener("change", show);
  page("Compare versions", h("p", {}, h("label", { for: "cmp-a" }, "Left "), a, " ", h("label", { for: "cmp-b" }, "Right "), b), out);
  if (refs.length) await show();
}

// --- service ---------------------------------------------------------------------------------

async function servicePage() {
  const health = h("p", { id: "health", role: "status" });
  const body = h("tbody", {});
  page("Service", health, h("h2", {}, "Loaded models"),
    h("table", { id: "loaded" }, h("thead", {}, h("tr", {}, ["Model", "Queue depth", "Texts answered", "Texts/s (recent)",
      "Batches", "Failed calls", "Last request"].map((x) => h("th", { scope: "col" }, x)))), body),
    h("p", { class: "muted" }, "Texts/s is the change in texts answered between two readings, 2 s apart."));
  let previous = new Map(), previousAt = 0;
  const refresh = async () => {
    const r = await fetch("/health");
    health.textContent = r.ok ? "Serving (GET /health: 200)" : "Not serving (GET /health: " + r.status + ")";
    const loaded = (await api.get("/v1/loaded-models")).models || [];
    const now = performance.now();
    clear(body).append(...loaded.map((m) => {
      const ref = modelRef(m.name, m.version), count = Number(m.inference_count);
      const rate = previous.has(ref) && previousAt ? (count - previous.get(ref)) / ((now - previousAt) / 1000) : NaN;
      return h("tr", {}, h("td", {}, ref), h("td", { class: "num" }, m.queue_depth), h("td", { class: "num" }, count),
        h("td", { class: "num" }, num(rate, 1)), h("td", { class: "num" }, m.execution_count),
        h("td", { class: "num" }, m.fail_count), h("td", {}, age(m.last_inference_unix_ms)));
    }));
    if (!loaded.length) body.append(h("tr", {}, h("td", { colspan: 7 }, "No model is loaded yet (one loads on its first request).")));
    previous = new Map(loaded.map((m) => [modelRef(m.name, m.version), Number(m.inference_count)]));
    previousAt = now;
  };
  await guarded(refresh);
  every(2000, refresh);
}

// --- routing ---------------------------------------------------------------------------------

async function route() {
  cleanup.forEach((f) => f());
  cleanup = [];
  clearError();
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === "#/" + parts[0]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (parts[0] === "jobs" && parts[1]) await jobPage(parts[1]);
  else if (parts[0] === "new-job") await newJobPage(params);
  else if (parts[0] === "datasets") datasetsPage();
  else if (parts[0] === "models" && parts[2]) await modelPage(parts[1], parts[2]);
  else if (parts[0] === "models") await modelsPage();
  else if (parts[0] === "compare") await comparePage(params);
  else if (parts[0] === "service") await servicePage();
  else await jobsPage();
  main.setAttribute("data-ready", path);
}

const tokenInput = document.getElementById("token");
const tokenState = document.getElementById("token-state");
function showToken() { tokenState.textContent = api.token() ? "token in use" : ""; }
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  api.setToken(tokenInput.value.trim());
  tokenInput.value = "";
  showToken();
  route();
});
showToken();
window.addEventListener("hashchange", route);
route();
