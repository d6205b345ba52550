#!/usr/bin/env python3
"""The web console (/ui/) in a real browser: Debian's chromium driven by playwright (its PyPI
wheel; its own browser download is not used), against a real berth-server with tokens.

It uploads a small dataset, starts a bert-tiny job from the form and sees the loss curve gain
points while the job runs, sees it succeed, opens the version's confusion matrix, classifies a
typed sentence in the try-it box (the label the page shows is the one POST /predict gives),
moves an alias (and the registry says so), shows that a read-only token cannot start a job,
that a label and a dataset line holding markup are shown as text and run nothing, that the
pages have a strict Content-Security-Policy and raise no CSP violation or script error, that
the sections are reachable by keyboard, that text colours meet WCAG AA contrast, and that the
console works over TLS. Each page
is saved as a screenshot under SHOTS_DIR (a CI artifact in the build folder).

usage: console_test.py berth-server DATA_DIR SHOTS_DIR   (run with .venv-clients/bin/python)
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import requests
from playwright.sync_api import sync_playwright

from checks import check, failures, start_server

CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/lib/chromium/chromium")
ADMIN, READER = "console-admin-secret", "console-read-secret"
MARKUP_LABEL = '<img src=x onerror="window.pwned=1">'


def token_line(ident, secret, role):
    return json.dumps({"id": ident, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "role": role})


def contrast(fg, bg):
    """WCAG 2 contrast ratio of two "rgb(r, g, b)" colours."""
    def lum(c):
        r, g, b = [int(x) / 255 for x in c[c.index("(") + 1:c.index(")")].split(",")[:3]]
        f = lambda v: v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4  # noqa: E731
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)
    a, b = sorted([lum(fg), lum(bg)], reverse=True)
    return (a + 0.05) / (b + 0.05)


def main():
    server_bin, data, shots = sys.argv[1:4]
    os.makedirs(shots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="berth-console-")
    tokens = os.path.join(work, "tokens.jsonl")
    with open(tokens, "w") as f:
        f.write(token_line("admin", ADMIN, "admin") + "\n" + token_line("viewer", READER, "read") + "\n")
    server = None
    try:
        server, _ = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--auth-tokens", tokens, "--no-hub",
            "--request-threads", "8", "--metrics-listen", "127.0.0.1:0"])
        base = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        auth = {"Authorization": "Bearer " + ADMIN}

        r = requests.get(base + "/ui/", timeout=30)
        csp = r.headers.get("Content-Security-Policy", "")
        check(r.status_code == 200 and "script-src 'self'" in csp and "default-src 'none'" in csp and
              "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp,
              "GET /ui/ is the console with a strict Content-Security-Policy: %s" % csp)
        check(requests.get(base + "/ui/nope.js", timeout=30).status_code == 404, "an unknown console file: 404")
        check(requests.get(base + "/v1/jobs", timeout=30).status_code == 401, "the API still wants a token")

        # A small dataset: 240 SST-2 rows, one of whose texts and one label hold markup.
        lines = open(os.path.join(data, "sst2-sample", "train.tsv")).read().splitlines()
        small = os.path.join(work, "small.tsv")
        with open(small, "w") as f:
            f.write("\n".join(lines[:241]) + "\n")
        marked = os.path.join(work, "marked.tsv")
        with open(marked, "w") as f:
            f.write("sentence\tlabel\n<script>window.pwned=1</script> a fine film\t%s\ndull\t0\n" % MARKUP_LABEL)
        broken = os.path.join(work, "broken.csv")
        with open(broken, "w") as f:
            f.write('text,label\ngood film,1\n"<img src=x onerror=window.pwned=1>,0\nfine,1\n')

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless=new"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems = []
            # Script errors and CSP violations; a refused request (the 401 before a token, the 422
            # of the broken file, the 403 of the read-only token) is the API answering, not one.
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.add_init_script("document.addEventListener('securitypolicyviolation', "
                                 "e => console.error('CSP violation: ' + e.violatedDirective))")

            def wait_until(expr, timeout=60):
                # Polled from here: page.wait_for_function evaluates its predicate with eval, which
                # the console's Content-Security-Policy (rightly) refuses.
                deadline = time.time() + timeout
                while not page.evaluate(expr):
                    if time.time() > deadline:
                        raise TimeoutError("waited %d s for %s" % (timeout, expr))
                    time.sleep(0.1)

            def go(hash_):
                # The console marks <main> with the route it finished drawing.
                if page.url.startswith(base):
                    page.evaluate("document.getElementById('main').removeAttribute('data-ready')")
                if page.url == base + "/ui/" + hash_:
                    page.reload()  # the same hash fires no hashchange
                else:
                    page.goto(base + "/ui/" + hash_)
                wait_until("document.getElementById('main').dataset.ready === %s" % json.dumps(hash_[1:].split("?")[0]))

            def use_token(secret):
                page.fill("#token", secret)
                page.click("#token-form button")
                page.wait_for_selector("#token-state:has-text('token in use')")

            def shot(name):
                page.screenshot(path=os.path.join(shots, name + ".png"), full_page=True)

            go("#/jobs")
            use_token(ADMIN)

            # Keyboard: the skip link comes first, then the sections; Enter opens one. (Focus is
            # put on the skip link rather than left to the first Tab, whose start a busy headless
            # browser does not always give the page.)
            page.reload()
            wait_until("document.getElementById('main').dataset.ready === '/jobs'")
            page.focus("a.skip")
            order = [page.evaluate("document.activeElement.textContent")]
            while order[-1] != "Datasets" and len(order) < 8:
                page.keyboard.press("Tab")
                order.append(page.evaluate("document.activeElement.textContent"))
            page.keyboard.press("Enter")
            # The hash changes at once; the page is drawn by the hashchange handler after it, so
            # wait for the handler's mark, not for the hash.
            wait_until("document.getElementById('main').dataset.ready === '/datasets'")
            check(order == ["Skip to content", "Jobs", "New job", "Datasets"] and
                  page.evaluate("document.querySelector('nav a[aria-current]').textContent") == "Datasets",
                  "keyboard: 'Skip to content', then the sections by Tab; Enter opens Datasets (%s)" % order)
            unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')))
                .map(e => e.id || e.outerHTML.slice(0, 60))""")
            check(unlabelled == [], "every control on the datasets page has a label: %s" % unlabelled)

            # Upload: the file input (what a drop hands over too).
            page.set_input_files("#dataset-file", small)
            page.wait_for_selector("#dataset-id")
            dataset = page.text_content("#dataset-id")
            counts = page.eval_on_selector_all("#label-counts tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
            want = {}
            for l in lines[1:241]:
                want[l.split("\t")[1]] = want.get(l.split("\t")[1], 0) + 1
            check(len(dataset) == 64 and {k: int(v) for k, v in counts} == want,
                  "upload: the dataset id and its label distribution (%s)" % counts)
            shot("datasets")

            # A broken file: the lines around the one the server names, its error beside it, the
            # markup in it shown as text.
            page.set_input_files("#dataset-file", broken)
            page.wait_for_selector("#dataset-lines")
            bad = page.eval_on_selector("#dataset-lines tr.bad", "r => [...r.cells].map(c => c.textContent)")
            check(bad[0] == "3" and bad[1].startswith("\"<img src=x") and "broken.csv:3:" in bad[2] and
                  "broken.csv:3:" in page.text_content("#error"),
                  "a broken file: line 3 is marked, with the server's message beside it (%s)" % bad)
            shot("dataset-error")
            page.set_input_files("#dataset-file", marked)
            page.wait_for_selector("#label-counts")
            shown = page.eval_on_selector_all("#label-counts tbody td:first-child", "cs => cs.map(c => c.textContent)")
            check(MARKUP_LABEL in shown and page.evaluate("document.querySelectorAll('main img').length") == 0 and
                  page.evaluate("window.pwned") is None,
                  "a label holding <img onerror> is shown as text and runs nothing: %s" % shown)

            # The demo: the README's path (its base model made bert-tiny, which takes seconds).
            go("#/jobs")
            page.fill("#demo-base", "config:bert-tiny")
            page.click("#demo-start")
            wait_until("location.hash.startsWith('#/jobs/job-')")
            demo = page.evaluate("location.hash").split("/")[-1]
            page.wait_for_selector("#curve-loss")
            wait_until("Number(document.querySelector('#curve-loss').dataset.points) >= 1", timeout=120)
            demo_spec = requests.get(base + "/v1/jobs/" + demo, headers=auth, timeout=30).json()["spec"]
            check(demo_spec["model_name"] == "sst2-demo" and demo_spec["validation_dataset_id"] and
                  demo_spec["base_model"] == "config:bert-tiny",
                  "Start the demo job uploads the SST-2 sample and starts sst2-demo; its curve draws")
            requests.post(base + "/v1/jobs/%s/cancel" % demo, headers=auth, timeout=30)

            # Jobs from the form: every option shows its default.
            go("#/new-job?train=" + dataset)
            check(float(page.input_value("#f-hyperparameters-learning_rate")) == 5e-5 and
                  page.input_value("#f-hyperparameters-batch_size") == "8",
                  "the form shows the server's defaults (learning rate %s)" % page.input_value("#f-hyperparameters-learning_rate"))

            def start_job(name, steps, task=None):
                go("#/new-job?train=" + dataset)
                if task:
                    page.select_option("#f-task", task)
                page.fill("#f-base_model", "config:bert-tiny")
                page.fill("#f-model_name", name)
                page.fill("#f-validation_split", "0.25")
                for k, v in {"max_steps": steps, "batch_size": "8", "max_length": "32", "eval_steps": "30"}.items():
                    page.fill("#f-hyperparameters-" + k, v)
                page.click("#start-job")
                wait_until("location.hash.startsWith('#/jobs/job-')")
                page.wait_for_selector("#curve-loss")
                return page.evaluate("location.hash").split("/")[-1]

            # A long job (a million updates: it runs until cancelled), so that its curve is seen
            # to gain points while it runs, whatever the machine's speed; then the page cancels it.
            long_job = start_job("console-long", "1000000")
            wait_until("document.querySelector(\"[data-field='State']\").textContent === 'running' && "
                       "Number(document.querySelector('#curve-loss').dataset.points) >= 1", timeout=120)
            seen = int(page.get_attribute("#curve-loss", "data-points"))
            wait_until("Number(document.querySelector('#curve-loss').dataset.points) > %d" % seen, timeout=120)
            later = int(page.get_attribute("#curve-loss", "data-points"))
            check(later > seen and page.text_content("[data-field='State']") == "running",
                  "the loss curve gains points while the job runs (%d, then %d)" % (seen, later))
            page.once("dialog", lambda d: d.accept())
            page.click("#cancel")
            wait_until("document.querySelector(\"[data-field='State']\").textContent.startsWith('cancelled')", timeout=120)
            r = requests.get(base + "/v1/jobs/" + long_job, headers=auth, timeout=30).json()
            check(r["state"] == "JOB_STATE_CANCELLED", "the page's Cancel (after a confirmation) cancels it")

            # A short one, to its end.
            job = start_job("console-tiny", "120")
            wait_until("document.querySelector(\"[data-field='State']\").textContent === 'succeeded'", timeout=300)
            wait_until("Number(document.querySelector('#curve-eval').dataset.points) >= 4")
            log = requests.get(base + "/v1/jobs/%s/log" % job, headers=auth, timeout=30).json()["events"]
            api_points = sum(1 for e in log if e["kind"] == "progress")
            wait_until("Number(document.querySelector('#curve-loss').dataset.points) === %d" % api_points, timeout=30)
            check("succeeded" in page.text_content("#job-log"),
                  "it succeeds: the curve holds every point of the job's log (%d), the log says so" % api_points)
            spec = json.loads(page.text_content("#job-spec"))
            check(spec.get("hyperparameters", {}).get("max_steps") == "120" and spec.get("base_model") == "config:bert-tiny",
                  "the job's spec is shown, defaults filled in")
            shot("job")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=os.path.join(shots, "job-finished.png"))  # the README's picture

            # The version: its evaluation and confusion matrix.
            page.click("#job-model-link")
            page.wait_for_selector("#confusion")
            cells = page.eval_on_selector_all("#confusion td.cell", "cs => cs.map(c => Number(c.textContent))")
            metrics = requests.get(base + "/v1/models/console-tiny:1", headers=auth, timeout=30).json()["metrics"]
            check(len(cells) == 4 and sum(cells) == int(metrics["examples"]),
                  "the version's confusion matrix: 2 × 2 cells summing to its %s examples" % metrics["examples"])
            colours = page.eval_on_selector_all("#confusion td.cell", "cs => cs.map(c => [getComputedStyle(c).color, getComputedStyle(c).backgroundColor])")
            check(all(contrast(fg, bg) >= 4.5 for fg, bg in colours),
                  "every heat-map cell's text contrasts ≥ 4.5:1 with its shade (%s)" %
                  [round(contrast(fg, bg), 1) for fg, bg in colours])
            shot("model")

            # Try it: the label shown is the one the API gives.
            sentence = "a gorgeous, witty, seductive movie"
            page.fill("#try-text", sentence)
            page.click("#try-run")
            page.wait_for_selector("#try-label strong")
            api_label = requests.post(base + "/models/console-tiny:1/predict", json={"inputs": sentence},
                                      headers=auth, timeout=30).json()[0]["label"]
            toks = page.eval_on_selector_all("#try-tokens span", "s => s.map(x => x.textContent)")
            check(page.text_content("#try-label strong") == api_label and toks[0] == "[CLS]" and toks[-1] == "[SEP]",
                  "try it: the label shown is POST /predict's (%s), with the tokens the model saw" % api_label)

            # Move an alias, with a confirmation.
            page.fill("#alias-name", "prod")
            page.click("#alias-move")
            page.wait_for_selector("#alias-confirm:not([hidden])")
            page.click("#alias-yes")
            page.wait_for_selector("#alias-done:has-text('now points at version 1')")
            r = requests.get(base + "/v1/models/console-tiny@prod", headers=auth, timeout=30)
            check(r.status_code == 200 and r.json()["version"] == "1", "the alias moved: console-tiny@prod is version 1")

            go("#/compare?a=console-tiny:1&b=console-tiny:1")
            page.wait_for_selector("#compare table")
            shot("compare")
            # A scorer (the same 0/1 labels as bce scores): its curve, its version and the models
            # list speak of Pearson and Spearman, not of accuracy.
            scorer = start_job("console-scorer", "60", task="TASK_SCORE_BCE")
            wait_until("document.querySelector(\"[data-field='State']\").textContent === 'succeeded'", timeout=300)
            wait_until("Number(document.querySelector('#curve-eval').dataset.points) >= 2")
            legend = page.evaluate("Chart.getChart(document.querySelector('#curve-eval canvas')).data.datasets.map(d => d.label)")
            check(legend == ["Pearson", "Spearman", "evaluation loss"],
                  "a scorer's evaluation curve draws Pearson, Spearman and the loss (%s)" % legend)
            got = requests.get(base + "/v1/models/console-scorer:1", headers=auth, timeout=30).json()["metrics"]
            go("#/models/console-scorer/1")
            page.wait_for_selector("main table th:has-text('Pearson')")
            shown = dict(page.eval_on_selector_all("main table tbody tr",
                                                   "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
            check(got.get("scored") is True and set(shown) == {"Examples", "Loss", "Pearson", "Spearman"} and
                  abs(float(shown["Pearson"]) - got.get("pearson", 0)) <= 5e-5 and
                  abs(float(shown["Spearman"]) - got.get("spearman", 0)) <= 5e-5 and
                  page.query_selector("#confusion") is None,
                  "a scorer's version shows its loss, Pearson and Spearman, no accuracy or confusion matrix (%s; API %s)" %
                  (shown, got))
            go("#/models")
            page.wait_for_selector("#models tbody tr")
            row = page.eval_on_selector_all("#models tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
            evals = {r[0]: r[5] for r in row}
            check(evals.get("console-scorer", "").startswith("Pearson ") and evals.get("console-tiny", "").startswith("accuracy "),
                  "the models list: a scorer's Pearson, a classifier's accuracy (%s)" % evals)

            go("#/service")
            page.wait_for_selector("#loaded tbody tr td:has-text('console-tiny:1')")
            check("Serving" in page.text_content("#health"), "the service page: health and the loaded model")
            shot("service")

            # Colours: body text, links, the header, muted text and errors meet AA (4.5:1).
            pairs = page.evaluate("""() => {
                const c = s => { const e = document.querySelector(s); return e ? [getComputedStyle(e).color, s] : null; };
                return [c('main h1'), c('header nav a'), c('footer'), c('footer a')].filter(Boolean);
            }""")
            bgs = {"main h1": "rgb(255, 255, 255)", "header nav a": "rgb(31, 45, 61)", "footer": "rgb(255, 255, 255)",
                   "footer a": "rgb(255, 255, 255)"}
            ratios = {s: round(contrast(fg, bgs[s]), 1) for fg, s in pairs}
            check(all(v >= 4.5 for v in ratios.values()), "text colours meet WCAG AA contrast: %s" % ratios)

            # A read-only token sees every job and cannot start one.
            jobs_before = len(requests.get(base + "/v1/jobs", headers=auth, timeout=30).json()["jobs"])
            go("#/jobs")
            use_token(READER)
            page.wait_for_selector("#jobs tbody tr[data-job='%s']" % job)
            go("#/new-job?train=" + dataset)
            page.fill("#f-base_model", "config:bert-tiny")
            page.fill("#f-model_name", "refused")
            page.click("#start-job")
            page.wait_for_selector("#error:not([hidden])")
            error = page.text_content("#error")
            jobs_after = len(requests.get(base + "/v1/jobs", headers=auth, timeout=30).json()["jobs"])
            check("needs train or admin" in error and "403" in error and jobs_after == jobs_before,
                  "a read-only token sees the jobs and cannot start one: %s" % error)
            shot("read-only-refused")

            check(problems == [], "no script error or CSP violation on any page: %s" % problems[:5])

            # Over TLS: the same console on a server with a certificate (self-signed here, so
            # this browser context is told to accept it), token and all.
            tls = os.path.join(work, "tls")
            os.makedirs(tls)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
                            "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], cwd=tls, check=True, capture_output=True)
            secure, _ = start_server(server_bin, tls, [
                "--data-dir", os.path.join(tls, "data"), "--auth-tokens", tokens, "--no-hub",
                "--metrics-listen", "127.0.0.1:0", "--tls-cert", os.path.join(tls, "cert.pem"), "--tls-key", os.path.join(tls, "key.pem")])
            try:
                https = "https://127.0.0.1:%s" % open(os.path.join(tls, "http-port")).read().strip()
                context = browser.new_context(ignore_https_errors=True)
                page = context.new_page()
                page.goto(https + "/ui/#/jobs")
                wait_until("document.getElementById('main').dataset.ready === '/jobs'")
                use_token(ADMIN)
                wait_until("document.getElementById('main').dataset.ready === '/jobs'")
                page.wait_for_selector("#jobs tbody td:has-text('No jobs yet.')")
                check(page.evaluate("location.protocol") == "https:" and page.is_hidden("#error"),
                      "over TLS the console loads and lists the jobs with its token")
            finally:
                secure.send_signal(signal.SIGTERM)
                secure.wait(timeout=30)
            browser.close()
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if failures or sys.exc_info()[0] is not None:
            print("server log: " + os.path.join(work, "server.log"))
            print(open(os.path.join(work, "server.log"), errors="replace").read()[-3000:])
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("screenshots: " + shots)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
