"""The Helm chart, tested offline: lint, render with every value set in ci/, validate
each manifest against the Kubernetes schemas (and the KEDA / Prometheus Operator CRD
schemas), check the security fields, the schema's refusals, and the configuration
contract with the service (`trd-sentinel check-config` accepts what the pod gets).

Run by scripts/test with the provisioned tools:
    HELM_BIN=... CRD_MODELS_DIR=... SENTINEL_BIN=target/debug/trd-sentinel \\
        $VENV/bin/python tests/chart/test_chart.py
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "trd-sentinel"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the chart's kubeVersion floor


def tool(variable):
    value = os.environ.get(variable)
    if not value:
        sys.exit(f"{variable} is not set: run through scripts/test (scripts/provision installs it)")
    return value


HELM = tool("HELM_BIN")
CRD_MODELS = tool("CRD_MODELS_DIR")
SENTINEL = tool("SENTINEL_BIN")


def helm(*args, check=True):
    result = subprocess.run([HELM, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(values_file=None, *sets):
    """Manifests of `helm template` as dicts, in order."""
    args = ["template", "t", str(CHART), "--namespace", "trd"]
    if values_file:
        args += ["-f", str(values_file)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def pod_spec(workload):
    """The pod spec of a Deployment, Job or CronJob."""
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def one(manifests, kind):
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def leaves(tree, prefix=""):
    """Dotted paths of every leaf of a nested dict."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaves(value, path + ".")
        else:
            yield path, value


ALL_VALUE_SETS = [None, *VALUE_SETS]


class Lint(unittest.TestCase):
    def test_lint_is_strict_clean_with_every_value_set(self):
        for values in ALL_VALUE_SETS:
            with self.subTest(values=values and values.name):
                args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
                result = helm(*args, check=False)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class KubernetesSchemas(unittest.TestCase):
    def test_every_rendered_manifest_is_valid(self):
        for values in ALL_VALUE_SETS:
            with self.subTest(values=values and values.name):
                manifests = render(values)
                builtin = [m for m in manifests if "." not in m["apiVersion"].split("/")[0] or m["apiVersion"].split("/")[0].endswith("k8s.io")]
                custom = [m for m in manifests if m not in builtin]
                with tempfile.TemporaryDirectory() as tmp:
                    path = pathlib.Path(tmp) / "manifests.yaml"
                    path.write_text(yaml.safe_dump_all(builtin))
                    result = subprocess.run(
                        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
                         "-k", KUBERNETES_VERSION, str(path)],
                        capture_output=True, text=True)
                    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                    self.assertNotIn("Couldn't find schema", result.stdout + result.stderr)
                    if custom:
                        docs = pathlib.Path(tmp) / "custom.json"
                        docs.write_text(json.dumps(custom))
                        result = subprocess.run(
                            ["node", str(ROOT / "tests" / "chart" / "validate-crds.mjs"), str(docs)],
                            capture_output=True, text=True, env={**os.environ, "CRD_MODELS_DIR": CRD_MODELS})
                        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_crd_validator_refuses_a_broken_scaled_object(self):
        """The validator used above can fail: a ScaledObject with a wrong type is refused."""
        scaled = one(render(CHART / "ci" / "keda-values.yaml"), "ScaledObject")
        scaled["spec"]["maxReplicaCount"] = "six"
        with tempfile.TemporaryDirectory() as tmp:
            docs = pathlib.Path(tmp) / "custom.json"
            docs.write_text(json.dumps([scaled]))
            result = subprocess.run(
                ["node", str(ROOT / "tests" / "chart" / "validate-crds.mjs"), str(docs)],
                capture_output=True, text=True, env={**os.environ, "CRD_MODELS_DIR": CRD_MODELS})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("maxReplicaCount", result.stdout)

    def test_the_kubernetes_validator_refuses_an_unknown_field(self):
        deployment = one(render(), "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(deployment, f)
            f.flush()
            result = subprocess.run(
                [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
                 "-k", KUBERNETES_VERSION, f.name], capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)


class ValueSets(unittest.TestCase):
    def test_defaults_render_the_core_objects_only(self):
        kinds = sorted(m["kind"] for m in render())
        self.assertEqual(kinds, ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
                                 "Service", "ServiceAccount"])

    def test_keda_scales_on_every_work_shard_and_the_intake_queue(self):
        manifests = render(CHART / "ci" / "keda-values.yaml")
        scaled = one(manifests, "ScaledObject")
        queues = sorted(t["metadata"]["queueName"] for t in scaled["spec"]["triggers"])
        self.assertEqual(queues, ["trd.intake"] + [f"trd.work.{i}" for i in range(6)])
        auth = one(manifests, "TriggerAuthentication")
        self.assertEqual(auth["spec"]["secretTargetRef"][0]["key"], "amqp-url")
        self.assertNotIn("replicas", one(manifests, "Deployment")["spec"], "KEDA owns the replica count")
        self.assertFalse([m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"])

    def test_ingress_has_tls_and_only_the_notification_path(self):
        manifests = render(CHART / "ci" / "ingress-values.yaml")
        ingress = one(manifests, "Ingress")
        self.assertEqual(ingress["spec"]["tls"][0]["hosts"], ["trd-sentinel.hospital.example.org"])
        paths = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        self.assertEqual(paths, ["/notify"])
        job = one(manifests, "Job")
        self.assertEqual(job["spec"]["template"]["spec"]["containers"][0]["args"], ["subscriptions", "ensure"])
        self.assertIn("post-install", job["metadata"]["annotations"]["helm.sh/hook"])
        self.assertEqual(one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]["path"], "/metrics")

    def test_minimal_has_no_broker_and_nothing_optional(self):
        manifests = render(CHART / "ci" / "minimal-values.yaml")
        self.assertEqual(sorted(m["kind"] for m in manifests), ["ConfigMap", "Deployment", "Service"])
        env = {e["name"] for e in one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertNotIn("TRD_AMQP_URL", env)

    def test_secrets_are_references_unless_explicitly_created(self):
        for values in ALL_VALUE_SETS:
            manifests = render(values)
            rendered = yaml.safe_dump_all(manifests)
            created = yaml.safe_load((values or CHART / "values.yaml").read_text()).get("secrets", {}).get("create", False)
            with self.subTest(values=values and values.name):
                self.assertEqual(any(m["kind"] == "Secret" for m in manifests), created)
                container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
                for env in container["env"]:
                    if env["name"] in ("TRD_FHIR_TOKEN", "TRD_AMQP_URL", "TRD_NOTIFY_TOKEN", "TRD_NOTIFY_HMAC_SECRET"):
                        self.assertIn("secretKeyRef", env["valueFrom"])
                        self.assertNotIn("value", env)
                if not created:
                    self.assertNotIn("stringData", rendered)


class SchemaRefusals(unittest.TestCase):
    def refused(self, *sets, message):
        result = helm("template", "t", str(CHART), *[a for s in sets for a in ("--set", s)], check=False)
        self.assertNotEqual(result.returncode, 0, f"accepted: {sets}")
        self.assertRegex(result.stderr, message)

    def test_wrong_types_are_refused(self):
        self.refused("replicaCount=two", message=r"replicaCount.*want integer")
        self.refused("config.pipeline.drain_secs=soon", message=r"drain_secs")
        self.refused("networkPolicy.enabled=maybe", message=r"networkPolicy/enabled")
        self.refused("config.fhir.auth=basic", message=r"auth")

    def test_unknown_keys_are_refused(self):
        self.refused("replicas=3", message=r"additional properties 'replicas' not allowed")
        self.refused("config.fhir.bse_url=https://ehr", message=r"'bse_url' not allowed")
        self.refused("config.notify.token=plain", message=r"'token' not allowed")

    def test_cross_field_rules_are_refused_with_the_reason(self):
        self.refused("config.pipeline.drain_secs=60", message=r"terminationGracePeriodSeconds \(45\) must exceed")
        self.refused("keda.enabled=true", "autoscaling.enabled=true", message=r"mutually exclusive")
        self.refused("keda.enabled=true", "keda.maxReplicas=17", message=r"more than config.amqp.shards")
        self.refused("secrets.keys.amqpUrl=", message=r"in-process queue")
        self.refused("subscriptionsJob.enabled=true", message=r"public_base_url")
        self.refused("config.fhir.auth=smart-backend", message=r"smartPrivateKey")
        self.refused("state.existingClaim=pvc", message=r"existingClaim is for one pod")
        self.refused("secrets.create=true", "secrets.values.amqpUrl=amqp://x", message=r"notifyToken is empty")

    def test_integers_beyond_what_the_service_reads_are_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("config:\n  fhir:\n    request_timeout_secs: 1.0e+23\n  amqp:\n    shards: 70000\n")
            f.flush()
            result = helm("template", "t", str(CHART), "-f", f.name, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("request_timeout_secs", result.stderr)
        self.assertIn("shards", result.stderr)


class Security(unittest.TestCase):
    """The security checklist, field by field, for every value set."""

    def test_deployment_and_job_pass_the_checklist(self):
        for values in ALL_VALUE_SETS:
            manifests = render(values)
            workloads = [m for m in manifests if m["kind"] in ("Deployment", "Job", "CronJob")]
            for workload in workloads:
                pod = pod_spec(workload)
                with self.subTest(values=values and values.name, kind=workload["kind"]):
                    self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                    self.assertNotEqual(pod["securityContext"].get("runAsUser"), 0)
                    self.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
                    self.assertFalse(pod["automountServiceAccountToken"])
                    for container in pod["containers"]:
                        sc = container["securityContext"]
                        self.assertTrue(sc["runAsNonRoot"])
                        self.assertTrue(sc["readOnlyRootFilesystem"])
                        self.assertFalse(sc["allowPrivilegeEscalation"])
                        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                        self.assertNotIn("add", sc["capabilities"])
                        self.assertEqual(sc["seccompProfile"]["type"], "RuntimeDefault")
                        self.assertIn("memory", container["resources"]["limits"])
                        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
                        self.assertIn("/var/lib/trd-sentinel", mounts, "writable state volume")
                        self.assertTrue(mounts["/etc/trd-sentinel/config"]["readOnly"])
                    if workload["kind"] in ("Job", "CronJob"):
                        state = next(v for v in pod["volumes"] if v["name"] == "state")
                        self.assertIn("emptyDir", state, "the Job never mounts the watermark claim")

    def test_export_jobs_queue_the_export_with_the_services_configuration(self):
        manifests = render(CHART / "ci" / "export-values.yaml")
        nightly = one(manifests, "CronJob")
        backfill = next(m for m in manifests if m["kind"] == "Job" and m["metadata"]["name"].endswith("export-backfill"))
        self.assertEqual(nightly["spec"]["concurrencyPolicy"], "Forbid")
        self.assertEqual(nightly["spec"]["timeZone"], "Europe/Berlin")
        for workload, since in ((nightly, ["--since", "last"]), (backfill, [])):
            container = pod_spec(workload)["containers"][0]
            self.assertEqual(container["args"], ["export", "--queue", "--group", "depression-service-line", *since])
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            self.assertIn("/var/cache/trd-sentinel/export", mounts)
            self.assertIn("/etc/trd-sentinel/smart", mounts)
            names = {e["name"] for e in container["env"]}
            self.assertIn("TRD_AMQP_URL", names)
        config = toml_of(one(manifests, "ConfigMap"))
        self.assertEqual(config["export"]["work_dir"], "/var/cache/trd-sentinel/export")
        self.assertEqual(config["export"]["storage_origins"], ["https://files.ehr.example.org"])
        # Off by default; refused without the broker they queue to.
        self.assertFalse([m for m in render(None) if m["kind"] == "CronJob"])
        refused = helm("template", "t", str(CHART), "--set", "exportJobs.backfill.enabled=true",
                       "--set", "secrets.keys.amqpUrl=", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("exportJobs need the broker", refused.stderr)

    def test_probes_grace_period_and_rollout(self):
        for values in ALL_VALUE_SETS:
            manifests = render(values)
            deployment = one(manifests, "Deployment")
            pod = deployment["spec"]["template"]["spec"]
            container = pod["containers"][0]
            config = toml_of(one(manifests, "ConfigMap"))
            with self.subTest(values=values and values.name):
                self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/healthz")
                self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/readyz")
                self.assertEqual(container["startupProbe"]["httpGet"]["path"], "/healthz")
                startup = container["startupProbe"]
                # serve waits 120 s for the EHR, then one more request with its retries,
                # then up to 60 s for the broker, before it listens.
                fhir = {"request_timeout_secs": 30, "max_retries": 3, **config.get("fhir", {})}
                worst = 120 + (fhir["max_retries"] + 1) * fhir["request_timeout_secs"] + 60
                self.assertGreater(startup["periodSeconds"] * startup["failureThreshold"], worst)
                pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                self.assertGreater(pod["terminationGracePeriodSeconds"],
                                   config["pipeline"]["drain_secs"] + 10 + pre_stop)
                self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
                self.assertRegex(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
                                 r"^[0-9a-f]{64}$")

    def test_a_config_change_changes_the_checksum(self):
        def checksum(*sets):
            return one(render(None, *sets), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        self.assertNotEqual(checksum(), checksum("config.engine.policy=ema"))
        self.assertEqual(checksum(), checksum("replicaCount=3"), "only config changes roll the pods")

    def test_the_deployment_selects_only_its_own_pods(self):
        manifests = render(CHART / "ci" / "ingress-values.yaml")
        selector = one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
        job_labels = one(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(selector["app.kubernetes.io/component"], "service")
        self.assertFalse(all(job_labels.get(k) == v for k, v in selector.items()),
                         "the subscriptions Job's pod would count as a Deployment pod")
        self.assertEqual(one(manifests, "PodDisruptionBudget")["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow")

    def test_egress_ports_follow_the_configured_urls(self):
        policy = one(render(CHART / "ci" / "smart-values.yaml"), "NetworkPolicy")
        self.assertEqual(sorted(p["port"] for p in policy["spec"]["egress"][0]["ports"]), [443, 8443])
        policy = one(render(None, "config.fhir.base_url=http://ehr.ehr.svc:8080/fhir"), "NetworkPolicy")
        self.assertEqual([p["port"] for p in policy["spec"]["egress"][0]["ports"]], [8080])

    def test_cds_clients_render_as_tables_and_open_their_ports(self):
        manifests = render(CHART / "ci" / "cds-values.yaml", "ingress.enabled=true")
        config = one(manifests, "ConfigMap")["data"]["config.toml"]
        self.assertEqual(config.count("[[cds.clients]]"), 2, config)
        policy = one(manifests, "NetworkPolicy")
        self.assertEqual(sorted(p["port"] for p in policy["spec"]["egress"][0]["ports"]), [443, 9443])
        ingress = one(manifests, "Ingress")
        paths = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        self.assertEqual(paths, ["/notify", "/page", "/cds-services"])
        env = {e["name"]: e for e in one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertEqual(env["TRD_PAGE_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["key"], "page-signing-key")

    def test_a_hospital_ca_bundle_is_mounted_and_used(self):
        manifests = render(CHART / "ci" / "smart-values.yaml")
        container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        self.assertEqual(env["SSL_CERT_FILE"], "/etc/trd-sentinel/ca/ca.crt")
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        self.assertTrue(mounts["/etc/trd-sentinel/ca"]["readOnly"])

    def test_network_policy_limits_egress_to_ehr_broker_and_dns(self):
        policy = one(render(CHART / "ci" / "ingress-values.yaml"), "NetworkPolicy")
        self.assertEqual(policy["spec"]["policyTypes"], ["Ingress", "Egress"])
        ports = [sorted(p["port"] for p in rule["ports"]) for rule in policy["spec"]["egress"]]
        self.assertEqual(ports, [[443], [5671, 5672], [53, 53]])
        self.assertEqual(policy["spec"]["egress"][0]["to"], [{"ipBlock": {"cidr": "10.20.0.0/16"}}])
        self.assertEqual([p["port"] for p in policy["spec"]["ingress"][0]["ports"]], ["http"])


def toml_of(config_map):
    import tomllib
    return tomllib.loads(config_map["data"]["config.toml"])


# Settings the service reads that have no chart value under `config`, and why.
NOT_IN_VALUES = {
    "http.addr": "set by the chart from containerPort",
    "reconcile.state_file": "set by the chart: the writable state volume",
    "export.state_file": "set by the chart: the writable state volume (the export Jobs keep the mark in the broker)",
    "export.work_dir": "set by the chart: the export Jobs' scratch volume",
    "fhir.smart_private_key_file": "set by the chart from secrets.smartPrivateKey",
    "fhir.token": "a secret: env TRD_FHIR_TOKEN from secrets.keys.fhirToken",
    "amqp.url": "a secret: env TRD_AMQP_URL from secrets.keys.amqpUrl",
    "notify.token": "a secret: env TRD_NOTIFY_TOKEN from secrets.keys.notifyToken",
    "notify.hmac_secret": "a secret: env TRD_NOTIFY_HMAC_SECRET from secrets.keys.notifyHmacSecret",
    "fhir.token_file": "the chart passes secrets as environment variables from a Secret",
    "amqp.url_file": "the chart passes secrets as environment variables from a Secret",
    "notify.token_file": "the chart passes secrets as environment variables from a Secret",
    "page.signing_key": "a secret: env TRD_PAGE_SIGNING_KEY from secrets.keys.pageSigningKey",
    "page.signing_key_file": "the chart passes secrets as environment variables from a Secret",
}


def check_config(manifests):
    """Runs `trd-sentinel check-config --print` with what the pod would get: the
    rendered config.toml and environment, Secret values made up, mounted files in a
    temporary directory. Returns (exit code, printed settings or None, stderr)."""
    container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    text = one(manifests, "ConfigMap")["data"]["config.toml"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # What the pod's mounts hold, under tmp.
        text = text.replace("/etc/trd-sentinel/", f"{tmp}/etc/").replace("/var/lib/trd-sentinel/", f"{tmp}/state/")
        key = re.search(r'smart_private_key_file = "([^"]+)"', text)
        if key:
            pathlib.Path(key.group(1)).parent.mkdir(parents=True)
            pathlib.Path(key.group(1)).write_text((ROOT / "tests" / "data" / "test-smart-es384.pem").read_text())
        (tmp / "config.toml").write_text(text)
        made_up = {"TRD_AMQP_URL": "amqp://trd:x@rabbitmq:5672/%2f",
                   "TRD_PAGE_SIGNING_KEY": "made-up-page-signing-key-0123456789abcdef"}
        env = {"PATH": os.environ.get("PATH", "")}
        for var in container["env"]:
            if var["name"] == "TRD_CONFIG":
                env["TRD_CONFIG"] = str(tmp / "config.toml")
            elif "valueFrom" in var:
                env[var["name"]] = made_up.get(var["name"], "made-up-secret")
            else:
                env[var["name"]] = var["value"]
        result = subprocess.run([SENTINEL, "check-config", "--print"], capture_output=True, text=True, env=env)
    printed = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, printed, result.stderr


class ConfigContract(unittest.TestCase):
    def test_every_service_setting_has_a_chart_value_or_a_reason(self):
        values = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
        _, printed, stderr = check_config(render(None, "config.fhir.base_url=https://ehr.example.org/fhir"))
        self.assertIsNotNone(printed, stderr)
        service_keys = {path for path, _ in leaves(printed)}
        chart_keys = {path for path, _ in leaves(values)}
        self.assertEqual(service_keys - chart_keys - set(NOT_IN_VALUES), set(),
                         "settings the service reads that the chart cannot set")
        self.assertEqual(chart_keys - service_keys, set(), "chart values the service does not read")
        self.assertEqual(set(NOT_IN_VALUES) - service_keys, set(), "stale reasons")

    def test_the_default_smart_scope_is_the_services_least_privilege_default(self):
        env = {"PATH": os.environ.get("PATH", ""), "TRD_FHIR_BASE_URL": "https://ehr.example.org/fhir",
               "TRD_NOTIFY_TOKEN": "a-notify-token-of-thirty-two-chars"}
        result = subprocess.run([SENTINEL, "check-config", "--print"], capture_output=True, text=True, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        service_default = json.loads(result.stdout)["fhir"]["smart_scope"]
        chart_default = yaml.safe_load((CHART / "values.yaml").read_text())["config"]["fhir"]["smart_scope"]
        self.assertEqual(chart_default, service_default)
        self.assertNotIn("*", service_default)
        self.assertIn("system/MedicationRequest.read", service_default.split())
        self.assertNotIn("system/MedicationRequest.write", service_default.split())

    def test_the_pod_configuration_is_accepted_with_every_value_set(self):
        for values in VALUE_SETS:
            with self.subTest(values=values.name):
                manifests = render(values)
                code, printed, stderr = check_config(manifests)
                self.assertEqual(code, 0, stderr)
                chosen = yaml.safe_load(values.read_text()).get("config", {})
                for path, value in leaves(chosen):
                    got = printed
                    for part in path.split("."):
                        got = got[part]
                    self.assertEqual(got, value, f"{path}: the chart's value did not reach the service")
                self.assertEqual(printed["reconcile"]["state_file"].rsplit("/", 1)[-1], "reconcile-watermark")

    def test_default_values_need_only_the_ehr_url(self):
        code, _, stderr = check_config(render())
        self.assertEqual(code, 1)
        problems = [line for line in stderr.splitlines() if line.startswith("- ")]
        self.assertEqual(problems, ["- fhir.base_url is required to serve (set TRD_FHIR_BASE_URL)"])
        code, printed, stderr = check_config(render(None, "config.fhir.base_url=https://ehr.example.org/fhir"))
        self.assertEqual(code, 0, stderr)
        self.assertIn("queue: RabbitMQ", stderr)
        self.assertEqual(printed["pipeline"]["drain_secs"], 20)
        self.assertEqual(printed["http"]["addr"], "0.0.0.0:8080")


class Readme(unittest.TestCase):
    def test_the_readme_values_table_is_generated_from_values_yaml(self):
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "chart-readme.py"), "--check"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        readme = (CHART / "README.md").read_text()
        table = readme.split("<!-- values-table:begin -->")[1].split("<!-- values-table:end -->")[0]
        rows = dict(re.findall(r"^\| `([^`]+)` \| `[^`]*` \| (.*) \|$", table, re.M))
        keys = {path for path, _ in leaves(yaml.safe_load((CHART / "values.yaml").read_text()))}
        self.assertEqual(set(rows), keys)
        self.assertEqual([k for k, doc in rows.items() if not doc.strip()], [], "undocumented values")


class Image(unittest.TestCase):
    """The Dockerfile cannot be built here (no container engine); its contract is checked."""

    def test_dockerfile_contract(self):
        text = (ROOT / "Dockerfile").read_text()
        cargo = (ROOT / "Cargo.toml").read_text()
        rust = re.search(r'^rust-version = "([^"]+)"', cargo, re.M).group(1)
        self.assertRegex(text, rf"ARG RUST_VERSION={re.escape(rust)}\b", "build toolchain = Cargo.toml rust-version")
        self.assertIn("--locked", text)
        self.assertRegex(text, r"(?m)^USER 65532:65532$")
        self.assertNotIn("HEALTHCHECK", text)
        self.assertRegex(text, r'(?m)^CMD \["serve"\]$')
        self.assertRegex(text, r"(?m)^COPY --from=build .* /usr/local/bin/trd-sentinel$")
        self.assertRegex(text, r"(?m)^COPY profiles ")
        final = text.rsplit("\nFROM ", 1)[1]
        self.assertRegex(final, r"^\S*distroless\S*:nonroot", "no shell at run time")
        version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertEqual(chart["appVersion"], version, "Chart appVersion = crate version")


if __name__ == "__main__":
    unittest.main(verbosity=2)
