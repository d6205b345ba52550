#!/usr/bin/env python3
"""Offline checks of what deploys Berth: the Kubernetes manifests parse and hang together
(readiness on the gRPC health port, liveness on HTTP, grace period longer than the drain, the data volume, the
Service selecting the pods, kustomization listing every file), the Dockerfile has its two
stages with the CI's setup script, a non-root user, the server as entrypoint and a data
volume, and its runtime packages exist in Debian; the scale-out overlay (serve and train
Deployments over the store Secret and a ReadWriteMany volume, a headless Service, an HPA,
PodDisruptionBudgets); the Grafana dashboard is valid JSON and, with the alert rules, covers
the store and job leases.

usage: deploy_test.py REPO_ROOT
"""
import json
import os
import re
import subprocess
import sys

import yaml

from checks import check, failures


def main():
    root = sys.argv[1]
    k8s = os.path.join(root, "deploy", "k8s")
    kust = yaml.safe_load(open(os.path.join(k8s, "kustomization.yaml")))
    files = sorted(f for f in os.listdir(k8s) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(kust["resources"]) == files, "kustomization lists every manifest: %s" % files)
    docs = {}
    for f in files:
        for d in yaml.safe_load_all(open(os.path.join(k8s, f))):
            check(all(k in d for k in ("apiVersion", "kind", "metadata")), "%s: apiVersion, kind, metadata" % f)
            docs[d["kind"]] = d
    dep, svc, pvc = docs.get("Deployment"), docs.get("Service"), docs.get("PersistentVolumeClaim")
    check(dep is not None and svc is not None and pvc is not None, "Deployment, Service and PVC present")
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("grpc") == 50051 and ports.get("http") == 8080 and ports.get("metrics") == 9090,
          "container ports grpc, http and metrics")
    for probe in ("readinessProbe", "startupProbe"):
        check(c.get(probe, {}).get("grpc", {}).get("port") == ports.get("grpc"), probe + " uses gRPC health")
    live = c.get("livenessProbe", {}).get("httpGet", {})
    check(live.get("path") == "/v2/health/live" and live.get("port") == "http",
          "livenessProbe asks the HTTP door (/v2/health/live)")
    drain = int(c["args"][c["args"].index("--drain-timeout") + 1])
    check(spec["terminationGracePeriodSeconds"] > drain + 5, "grace period %ds > drain %ds + preStop"
          % (spec["terminationGracePeriodSeconds"], drain))
    check("preStop" in c.get("lifecycle", {}), "preStop hook")
    check("requests" in c.get("resources", {}) and "limits" in c["resources"], "resources")
    env = {e["name"]: e["value"] for e in c["env"]}
    check(env.get("BERTH_HTTP_LISTEN") == "0.0.0.0:%d" % ports.get("http", 0), "HTTP listens on its port")
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == env.get("BERTH_DATA_DIR")]
    check(len(mount) == 1, "the data dir is a mounted volume")
    vol = [v for v in spec["volumes"] if mount and v["name"] == mount[0]["name"]]
    check(vol and vol[0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"], "backed by the PVC")
    check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate",
          "one replica, Recreate (one SQLite writer)")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "the Service selects the pods")
    check({p["targetPort"] for p in svc["spec"]["ports"]} == {"grpc", "http", "metrics"},
          "the Service exposes gRPC, HTTP and metrics")

    # The data-parallel training Job: rank = completion index, rank 0 through a headless Service.
    tj = os.path.join(k8s, "train-job")
    tkust = yaml.safe_load(open(os.path.join(tj, "kustomization.yaml")))
    tfiles = sorted(f for f in os.listdir(tj) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(tkust["resources"]) == tfiles, "train-job kustomization lists every manifest: %s" % tfiles)
    tdocs = {}
    for f in tfiles:
        for d in yaml.safe_load_all(open(os.path.join(tj, f))):
            tdocs[d["kind"]] = d
    job, hsvc, tpvc = tdocs.get("Job"), tdocs.get("Service"), tdocs.get("PersistentVolumeClaim")
    check(job is not None and hsvc is not None and tpvc is not None, "train-job: Job, Service and PVC present")
    js = job["spec"]
    tspec = js["template"]["spec"]
    tc = tspec["containers"][0]
    tenv = {e["name"]: e.get("value") for e in tc["env"]}
    world = int(tenv.get("WORLD_SIZE", "0"))
    check(js.get("completionMode") == "Indexed" and js["completions"] == js["parallelism"] == world > 1,
          "an Indexed Job with completions = parallelism = WORLD_SIZE (%d)" % world)
    check(hsvc["spec"].get("clusterIP") == "None" and tspec.get("subdomain") == hsvc["metadata"]["name"],
          "a headless Service named by the pods' subdomain")
    check(tenv.get("MASTER_ADDR") == "%s-0.%s" % (job["metadata"]["name"], hsvc["metadata"]["name"]),
          "MASTER_ADDR is the index-0 pod: %s" % tenv.get("MASTER_ADDR"))
    check(tenv.get("MASTER_PORT") == str(hsvc["spec"]["ports"][0]["port"]), "MASTER_PORT is the Service's port")
    script = " ".join(tc["args"])
    check("RANK=\"$JOB_COMPLETION_INDEX\"" in script and "berth finetune" in script,
          "the rank is the completion index and the pods run berth finetune")
    labels = js["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in hsvc["spec"]["selector"].items()), "the headless Service selects the ranks")
    check(tpvc["spec"]["accessModes"] == ["ReadWriteMany"] and
          tspec["volumes"][0]["persistentVolumeClaim"]["claimName"] == tpvc["metadata"]["name"],
          "every rank mounts one ReadWriteMany volume (rank 0's checkpoints are read by all on resume)")
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9090",
          "Prometheus scrape annotations")
    check(spec["securityContext"]["runAsNonRoot"] is True, "runs as non-root")

    docker = open(os.path.join(root, "Dockerfile")).read()
    stages = dict((alias, base) for base, alias in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", docker, re.M))
    check(stages.get("build") == "debian:12" and stages.get("runtime") == "debian:12-slim",
          "a Debian 12 build stage and a slim runtime stage: %s" % stages)
    check(re.search(r"^COPY --from=cuda-toolkit /usr/local/cuda /usr/local/cuda$", docker, re.M) is not None,
          "the build stage has the CUDA toolkit (the CUDA-enabled wheel's CMake config needs nvcc)")
    check(re.search(r"^RUN scripts/setup.sh\s*$", docker, re.M) is not None, "the build stage runs scripts/setup.sh")
    check('cp -a "$site/torch/lib" /opt/berth/site/torch/lib' in docker and
          'cp -a "$site/nvidia" /opt/berth/site/nvidia' in docker,
          "the wheel's libraries keep their layout (libtorch_cuda's $ORIGIN/../../nvidia)")
    check(re.search(r"LD_LIBRARY_PATH=/opt/berth/site/torch/lib", docker) is not None, "the programs find LibTorch")
    check(re.search(r"^ARG DEVICE=cpu$", docker, re.M) and "BERTH_DEVICE=${DEVICE}" in docker,
          "a cpu default and a cuda variant (--build-arg DEVICE=cuda)")
    check(re.search(r"^USER\s+(?!root)\S+", docker, re.M) is not None, "a non-root USER")
    check('ENTRYPOINT ["/opt/berth/bin/berth-server"]' in docker, "ENTRYPOINT is the server")
    check(re.search(r"^VOLUME", docker, re.M) and re.search(r"^EXPOSE 50051 8080 9090", docker, re.M) and
          "BERTH_HTTP_LISTEN=0.0.0.0:8080" in docker, "data volume and the gRPC, HTTP and metrics ports")
    check("scripts/starter-model.sh --cache /opt/berth/hf/hub" in docker and
          re.search(r"^COPY --from=build .*/opt/berth/hf /var/lib/berth/hf$", docker, re.M) and
          "HF_HOME=/var/lib/berth/hf" in docker,
          "the image carries the starter model in its Hub cache (the quick start works offline)")
    runtime = docker[docker.index("AS runtime"):]
    pkgs = re.findall(r"\b(lib[a-z0-9+.\-]+|ca-certificates)\b(?=\s|\\)", runtime.split("&&")[1])
    check(len(pkgs) >= 8, "runtime packages listed: %s" % pkgs)
    check(not any(p.startswith(("libtorch", "libopenblas")) for p in pkgs), "no Debian LibTorch or BLAS in the image")
    if subprocess.run(["which", "apt-cache"], capture_output=True).returncode == 0:
        unknown = [p for p in pkgs if subprocess.run(["apt-cache", "show", p], capture_output=True).returncode != 0]
        check(not unknown, "every runtime package exists in Debian (unknown: %s)" % unknown)
    else:
        # Said, not silent; and CI runs on Debian, where apt-cache is always there.
        print("SKIP: no apt-cache here: the runtime packages were not looked up in Debian")
        check(not os.environ.get("CI"), "apt-cache exists on the CI machine (Debian)")
    ignored = open(os.path.join(root, ".dockerignore")).read().split()
    check(".venv/" in ignored and "build/" in ignored, "the build context leaves out .venv/ and build/")

    # The GPU overlay: the base Deployment on a node with a GPU.
    gpu = os.path.join(k8s, "gpu")
    gk = yaml.safe_load(open(os.path.join(gpu, "kustomization.yaml")))
    check(gk.get("resources") == ["../"], "the GPU overlay builds on deploy/k8s")
    patch = yaml.safe_load(open(os.path.join(gpu, gk["patches"][0]["path"])))
    gc = patch["spec"]["template"]["spec"]["containers"][0]
    check(gc["name"] == c["name"] and str(gc["resources"]["limits"].get("nvidia.com/gpu")) == "1",
          "the overlay asks for one nvidia.com/gpu for the berth container")
    genv = {e["name"]: e["value"] for e in gc.get("env", [])}
    check(genv.get("BERTH_DEVICE") == "cuda", "the overlay serves and trains on cuda")
    check(any(i.get("newTag") == "cuda" for i in gk.get("images", [])), "the overlay uses the cuda image")

    # The scale-out overlay: serve replicas and train workers over PostgreSQL and one RWX volume.
    so = os.path.join(k8s, "scale-out")
    sk = yaml.safe_load(open(os.path.join(so, "kustomization.yaml")))
    sfiles = sorted(f for f in os.listdir(so) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(sk["resources"]) == sfiles, "scale-out kustomization lists every manifest: %s" % sfiles)
    sdocs = {}
    for f in sfiles:
        for d in yaml.safe_load_all(open(os.path.join(so, f))):
            check(all(k in d for k in ("apiVersion", "kind", "metadata")), "scale-out/%s: apiVersion, kind, metadata" % f)
            sdocs[(d["kind"], d["metadata"]["name"])] = d
    serve, train = sdocs.get(("Deployment", "berth-serve")), sdocs.get(("Deployment", "berth-train"))
    secret, shared = sdocs.get(("Secret", "berth-store")), sdocs.get(("PersistentVolumeClaim", "berth-shared"))
    check(None not in (serve, train, secret, shared), "serve and train Deployments, the store Secret, the shared PVC")

    def container_env(dep):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        return c, {e["name"]: e for e in c["env"]}

    check(shared["spec"]["accessModes"] == ["ReadWriteMany"], "the shared volume is ReadWriteMany")
    for dep, role in ((serve, "serve"), (train, "train")):
        c, e = container_env(dep)
        pspec = dep["spec"]["template"]["spec"]
        check(c["args"][c["args"].index("--role") + 1] == role, "%s pods run --role %s" % (role, role))
        check(e["BERTH_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "berth-store", "key": "url"}
              and "url" in secret["stringData"], "%s reads BERTH_STORE from the Secret" % role)
        m = [v for v in c["volumeMounts"] if v["mountPath"] == e["BERTH_DATA_DIR"]["value"]]
        v = [v for v in pspec["volumes"] if m and v["name"] == m[0]["name"]]
        check(v and v[0]["persistentVolumeClaim"]["claimName"] == "berth-shared", "%s mounts the shared volume" % role)
        drain = int(c["args"][c["args"].index("--drain-timeout") + 1])
        check(pspec["terminationGracePeriodSeconds"] > drain + 5, "%s: grace period > drain + preStop" % role)
        for probe in ("readinessProbe", "livenessProbe"):
            check(c.get(probe, {}).get("grpc", {}).get("port") == 50051, "%s: %s uses gRPC health" % (role, probe))
    check(serve["spec"]["replicas"] >= 2 and serve["spec"]["strategy"]["type"] == "RollingUpdate",
          "several serve replicas, rolling updates")
    tc, te = container_env(train)
    check(te["BERTH_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name",
          "each train pod's worker id is its pod name")
    check(str(tc["resources"]["limits"].get("nvidia.com/gpu")) == "1", "train workers ask for a GPU")
    hsvc = sdocs.get(("Service", "berth-serve"))
    slabels = serve["spec"]["template"]["metadata"]["labels"]
    check(hsvc is not None and hsvc["spec"].get("clusterIP") == "None" and
          all(slabels.get(k) == v for k, v in hsvc["spec"]["selector"].items()),
          "a headless Service over the serve pods (dns:/// round robin balances calls)")
    hpa = sdocs.get(("HorizontalPodAutoscaler", "berth-serve"))
    check(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "berth-serve" and
          hpa["spec"]["minReplicas"] >= 2, "an HPA scales the serve Deployment")
    pdbs = [d for (k, _), d in sdocs.items() if k == "PodDisruptionBudget"]
    for dep in (serve, train):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        check(any(all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items()) for p in pdbs),
              "a PodDisruptionBudget covers %s" % dep["metadata"]["name"])
    pg = sdocs.get(("StatefulSet", "berth-postgres"))
    pgsvc = sdocs.get(("Service", "berth-postgres"))
    check(pg is not None and pgsvc is not None and "@berth-postgres:5432/" in secret["stringData"]["url"],
          "the trial PostgreSQL and the URL that names its Service")

    dash = json.load(open(os.path.join(root, "deploy", "grafana", "berth-dashboard.json")))
    check(dash.get("panels") and all(p.get("targets") for p in dash["panels"]), "the dashboard has panels with queries")
    check(any(i.get("name") == "DS_PROMETHEUS" for i in dash.get("__inputs", [])),
          "the dashboard asks for its Prometheus data source on import")
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    check(all(m in exprs for m in ("berth_store_statement_duration_seconds_bucket", "berth_job_lease_events_total")),
          "the dashboard shows store latency and job leases")
    rules = yaml.safe_load(open(os.path.join(root, "deploy", "prometheus", "alerts.yml")))
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    check('event="rescued"' in alerts.get("BerthJobRescued", "") and
          "berth_store_statement_duration_seconds_bucket" in alerts.get("BerthStoreSlow", ""),
          "alerts for a rescued job and a lagging store")
    print("deploy: all checks passed" if not failures else "deploy: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
