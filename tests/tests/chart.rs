//! The Helm chart, the Grafana dashboard and the shipped CRD, checked with the real tools:
//! `helm lint --strict`, `helm template` (parsed and inspected), `promtool check rules` and
//! `promtool test rules`.
//!
//! Without `helm`/`promtool` on PATH a test prints "skipped: ..." and passes, except under
//! `CI=true`, where a missing tool fails the run (`.ci/install-tools.sh` installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use botfleet_operator::render::DEFAULT_BOT_IMAGE;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/botfleet")
}

/// The tool's path, or `None` (test skipped) when it is not installed outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is not installed but CI=true: run .ci/install-tools.sh");
        }
        eprintln!("skipped: {name} not installed");
    }
    found
}

fn run(mut cmd: Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{shown} failed ({}):\n{stdout}\n{stderr}",
            out.status
        ))
    }
}

/// `helm template` of the chart with `--set`-style arguments, as parsed objects.
fn helm_template(helm: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "botfleet"])
        .arg(chart_dir())
        .args(["--namespace", "botfleet-system"])
        .args(args);
    let yaml = run(cmd)?;
    Ok(parse_documents(&yaml))
}

fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("helm rendered invalid YAML: {e}\n{yaml}"));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn render(helm: &Path, args: &[&str]) -> Vec<Value> {
    helm_template(helm, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Values with everything optional switched on, used by several tests.
const ALL_ON: &[&str] = &[
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "grafanaDashboard.enabled=true",
];

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind_name: &str) -> &'a Value {
    let found = kind(objects, kind_name);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind_name}, got {}",
        found.len()
    );
    found[0]
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn operator_deployment(objects: &[Value]) -> &Value {
    one(objects, "Deployment")
}

fn operator_args(objects: &[Value]) -> Vec<String> {
    str_list(&operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        .or_else(|| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1).cloned())
        })
}

// ---------------------------------------------------------------------------------------------
// helm lint and the values schema
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_lint_strict_passes_with_default_and_non_default_values() {
    let Some(helm) = tool("helm") else { return };
    let mut cmd = Command::new(&helm);
    cmd.args(["lint", "--strict"]).arg(chart_dir());
    run(cmd).unwrap_or_else(|e| panic!("{e}"));

    let mut cmd = Command::new(&helm);
    cmd.args(["lint", "--strict"])
        .arg(chart_dir())
        .args(ALL_ON)
        .args([
            "--set-json",
            r#"operator.watchNamespaces=["bots-a","bots-b"]"#,
        ]);
    run(cmd).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn values_schema_rejects_unknown_keys_and_bad_values() {
    let Some(helm) = tool("helm") else { return };
    for (args, expect) in [
        (vec!["--set", "replicas=3"], "replicas"),
        (vec!["--set", "operator.logFormat=xml"], "logFormat"),
        (vec!["--set", "serviceMonitor.enabeld=true"], "enabeld"),
        (vec!["--set", "replicaCount=0"], "replicaCount"),
        (
            vec!["--set", "operator.telegramApiUrl=api.telegram.org"],
            "telegramApiUrl",
        ),
        (
            vec!["--set-json", r#"operator.watchNamespaces=["Bad_NS"]"#],
            "watchNamespaces",
        ),
    ] {
        let err = helm_template(&helm, &args).expect_err(&format!("{args:?} must be rejected"));
        assert!(
            err.contains(expect),
            "the error for {args:?} should name {expect}:\n{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the objects the chart renders
// ---------------------------------------------------------------------------------------------

#[test]
fn default_render_has_the_operator_and_nothing_optional() {
    let Some(helm) = tool("helm") else { return };
    let objects = render(&helm, &[]);

    let deployment = operator_deployment(&objects);
    assert_eq!(deployment["spec"]["replicas"], 2, "two operator replicas");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = operator_args(&objects);
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "args: {args:?}"
    );
    let lease = arg_value(&args, "--leader-election-lease").expect("a lease name flag");
    assert!(
        arg_value(&args, "--namespaces").is_none(),
        "all namespaces by default"
    );
    let env: BTreeMap<String, Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let sa = one(&objects, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);

    let service = one(&objects, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "the Service selects the operator pods"
    );

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);

    assert_eq!(kind(&objects, "ClusterRole").len(), 1);
    assert_eq!(kind(&objects, "ClusterRoleBinding").len(), 1);
    let leader_role = kind(&objects, "Role");
    assert_eq!(
        leader_role.len(),
        1,
        "only the leader-election Role in cluster mode"
    );
    assert!(
        leader_role[0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| str_list(&r["resourceNames"]) == [lease.clone()]),
        "the leader-election Role names the lease the operator is told to use ({lease})"
    );

    let test_pod = one(&objects, "Pod");
    assert_eq!(test_pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    let probe_url = str_list(&test_pod["spec"]["containers"][0]["command"])
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        probe_url,
        format!(
            "http://{}.botfleet-system.svc:8080/healthz",
            service["metadata"]["name"].as_str().unwrap()
        )
    );

    for absent in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        assert!(kind(&objects, absent).is_empty(), "{absent} is opt-in");
    }
}

#[test]
fn optional_objects_render_when_enabled() {
    let Some(helm) = tool("helm") else { return };
    let objects = render(&helm, ALL_ON);
    let service = one(&objects, "Service");

    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the operator's Service ({key})"
        );
    }

    let rule = one(&objects, "PrometheusRule");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.contains(&"BotfleetOperatorDown"), "{alerts:?}");
    assert!(
        alerts.contains(&"BotfleetOperatorReconcileErrors"),
        "{alerts:?}"
    );

    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        operator_deployment(&objects)["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        str_list(&policy["spec"]["policyTypes"]),
        ["Ingress", "Egress"]
    );
    let ingress_ports: Vec<&Value> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap())
        .collect();
    assert_eq!(ingress_ports.len(), 1, "only the metrics port is open");
    let egress_ports: BTreeSet<i64> = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    for port in [53, 443] {
        assert!(
            egress_ports.contains(&port),
            "egress to port {port}: {egress_ports:?}"
        );
    }
    assert!(
        !egress_ports.contains(&9090),
        "the operator reads nothing from the bots' metrics port any more: {egress_ports:?}"
    );

    let dashboard = one(&objects, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value =
        serde_json::from_str(dashboard["data"]["botfleet.json"].as_str().unwrap()).unwrap();
    let source: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("dashboards/botfleet.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        shipped, source,
        "the ConfigMap carries dashboards/botfleet.json"
    );
}

#[test]
fn namespaced_mode_uses_roles_in_the_watched_namespaces_only() {
    let Some(helm) = tool("helm") else { return };
    let cluster = render(&helm, &[]);
    let objects = render(
        &helm,
        &[
            "--set-json",
            r#"operator.watchNamespaces=["bots-a","bots-b"]"#,
        ],
    );

    assert!(
        kind(&objects, "ClusterRole").is_empty(),
        "no cluster-wide access"
    );
    assert!(kind(&objects, "ClusterRoleBinding").is_empty());
    assert_eq!(
        arg_value(&operator_args(&objects), "--namespaces").as_deref(),
        Some("bots-a,bots-b")
    );

    let cluster_rules: Vec<Value> = one(&cluster, "ClusterRole")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("nonResourceURLs").is_none())
        .cloned()
        .collect();
    let sa = one(&objects, "ServiceAccount");
    for ns in ["bots-a", "bots-b"] {
        let role = kind(&objects, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("a Role in {ns}"));
        assert_eq!(
            role["rules"].as_array().unwrap(),
            &cluster_rules,
            "the namespaced Role grants what the ClusterRole grants, no more"
        );
        let binding = kind(&objects, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("a RoleBinding in {ns}"));
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["namespace"], "botfleet-system");
    }
}

// ---------------------------------------------------------------------------------------------
// security: the restricted pod security profile and least-privilege RBAC
// ---------------------------------------------------------------------------------------------

fn pod_specs(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter_map(|o| match o["kind"].as_str()? {
            "Deployment" => Some((
                format!("Deployment/{}", o["metadata"]["name"].as_str()?),
                &o["spec"]["template"]["spec"],
            )),
            "Pod" => Some((
                format!("Pod/{}", o["metadata"]["name"].as_str()?),
                &o["spec"],
            )),
            _ => None,
        })
        .collect()
}

/// The checks of the "restricted" Pod Security Standard, plus a read-only root filesystem.
fn assert_restricted(what: &str, pod: &Value) {
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
    assert_ne!(pod_sc["runAsUser"], 0, "{what}: pod must not run as uid 0");
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[field], true, "{what}: {field}");
    }
    let containers = pod["containers"]
        .as_array()
        .into_iter()
        .chain(pod["initContainers"].as_array())
        .flatten();
    for c in containers {
        let name = format!("{what} container {}", c["name"]);
        let sc = &c["securityContext"];
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "{name}: allowPrivilegeEscalation"
        );
        assert_eq!(
            sc["readOnlyRootFilesystem"], true,
            "{name}: readOnlyRootFilesystem"
        );
        assert_ne!(sc["privileged"], true, "{name}: privileged");
        assert!(
            str_list(&sc["capabilities"]["drop"]).contains(&"ALL".to_owned()),
            "{name}: capabilities.drop ALL"
        );
        assert!(
            sc["capabilities"]["add"].is_null(),
            "{name}: no added capabilities"
        );
        let seccomp = sc["seccompProfile"]["type"]
            .as_str()
            .or(pod_sc["seccompProfile"]["type"].as_str());
        assert_eq!(
            seccomp,
            Some("RuntimeDefault"),
            "{name}: seccomp RuntimeDefault"
        );
        assert_ne!(
            sc["runAsNonRoot"], false,
            "{name}: runAsNonRoot not overridden"
        );
        assert_ne!(sc["runAsUser"], 0, "{name}: runAsUser 0");
    }
}

#[test]
fn every_pod_follows_the_restricted_profile() {
    let Some(helm) = tool("helm") else { return };
    for args in [&[][..], ALL_ON] {
        let objects = render(&helm, args);
        let pods = pod_specs(&objects);
        assert_eq!(
            pods.len(),
            2,
            "the operator Deployment and the helm test Pod"
        );
        for (what, pod) in pods {
            assert_restricted(&what, pod);
        }
    }
}

#[test]
fn security_context_check_catches_a_weakened_pod() {
    // The check above must be able to fail: a pod with privilege escalation is refused.
    let Some(helm) = tool("helm") else { return };
    let objects = render(
        &helm,
        &["--set", "securityContext.allowPrivilegeEscalation=true"],
    );
    let (what, pod) = &pod_specs(&objects)[0];
    let caught = std::panic::catch_unwind(|| assert_restricted(what, pod));
    assert!(
        caught.is_err(),
        "allowPrivilegeEscalation=true must be caught"
    );
}

fn rules_of(role: &Value) -> Vec<&Value> {
    role["rules"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default()
}

/// (apiGroup, resource, verb) triples a role grants without a resourceNames restriction.
fn grants(rules: &[&Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        if !str_list(&rule["resourceNames"]).is_empty() {
            continue;
        }
        for group in str_list(&rule["apiGroups"]) {
            for resource in str_list(&rule["resources"]) {
                for verb in str_list(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_is_least_privilege() {
    let Some(helm) = tool("helm") else { return };
    for args in [
        &[][..],
        &["--set-json", r#"operator.watchNamespaces=["bots-a"]"#][..],
    ] {
        let objects = render(&helm, args);
        let roles: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            .collect();
        assert!(!roles.is_empty());
        for role in &roles {
            for rule in rules_of(role) {
                for field in [
                    "verbs",
                    "resources",
                    "apiGroups",
                    "nonResourceURLs",
                    "resourceNames",
                ] {
                    for item in str_list(&rule[field]) {
                        assert_ne!(
                            item, "*",
                            "wildcard in {field} of {}",
                            role["metadata"]["name"]
                        );
                    }
                }
                for verb in str_list(&rule["verbs"]) {
                    assert!(
                        !["escalate", "bind", "impersonate", "deletecollection"]
                            .contains(&verb.as_str()),
                        "{verb} is never needed"
                    );
                }
            }
        }
        let everything: Vec<&Value> = roles.iter().flat_map(|r| rules_of(r)).collect();
        let resources: BTreeSet<String> = everything
            .iter()
            .flat_map(|r| str_list(&r["resources"]))
            .collect();
        let expected: BTreeSet<String> = [
            "telegrambots",
            "telegrambots/status",
            "telegrambots/finalizers",
            "deployments",
            "services",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "persistentvolumeclaims",
            "roles",
            "rolebindings",
            "leases",
            "ingresses",
            "networkpolicies",
            "poddisruptionbudgets",
            "servicemonitors",
            "prometheusrules",
            "events",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(
            resources, expected,
            "exactly the resources the operator manages"
        );
        for r in &everything {
            if str_list(&r["resources"])
                .iter()
                .any(|x| x.starts_with("pods") || x == "nodes")
            {
                panic!("the operator never touches pods or nodes: {r}");
            }
        }
        let g = grants(&everything);
        assert!(!g.contains(&("".into(), "secrets".into(), "deletecollection".into())));
        assert!(
            !g.iter()
                .any(|(_, res, verb)| res == "events" && verb != "create" && verb != "patch")
        );
        assert!(
            !g.iter()
                .any(|(_, res, verb)| res.ends_with("/finalizers") && verb != "update")
        );

        // The operator's own Lease: get/update/patch only by name; create cannot be limited.
        let leader = roles
            .iter()
            .find(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-leader-election")
            })
            .expect("a leader-election Role");
        assert_eq!(leader["kind"], "Role");
        assert_eq!(leader["metadata"]["namespace"], "botfleet-system");
        let lease = arg_value(&operator_args(&objects), "--leader-election-lease").unwrap();
        for rule in rules_of(leader) {
            assert_eq!(str_list(&rule["resources"]), ["leases"]);
            let verbs = str_list(&rule["verbs"]);
            if verbs == ["create"] {
                continue;
            }
            assert_eq!(
                str_list(&rule["resourceNames"]),
                std::slice::from_ref(&lease),
                "{rule}"
            );
            assert!(
                verbs
                    .iter()
                    .all(|v| ["get", "update", "patch"].contains(&v.as_str()))
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CRD and dashboard: one source of truth each
// ---------------------------------------------------------------------------------------------

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = repo_root().join("crds/telegrambots.botfleet.dev.yaml");
    let shipped = chart_dir().join("crds/telegrambots.botfleet.dev.yaml");
    let generated = std::fs::read_to_string(&generated)
        .unwrap_or_else(|e| panic!("{}: {e}", generated.display()));
    let shipped =
        std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
    assert!(
        shipped == generated,
        "charts/botfleet/crds/ is out of date: cp crds/telegrambots.botfleet.dev.yaml charts/botfleet/crds/"
    );
    let crd: Value = serde_yaml_ng::from_str(&shipped).unwrap();
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "telegrambots.botfleet.dev");
}

#[test]
fn chart_dashboard_is_the_repository_dashboard() {
    let source = std::fs::read(repo_root().join("dashboards/botfleet.json")).unwrap();
    let shipped = std::fs::read(chart_dir().join("dashboards/botfleet.json")).unwrap();
    assert!(
        source == shipped,
        "charts/botfleet/dashboards/botfleet.json differs: cp dashboards/botfleet.json charts/botfleet/dashboards/"
    );
}

// ---------------------------------------------------------------------------------------------
// the chart's own alerts, checked and exercised by promtool
// ---------------------------------------------------------------------------------------------

/// The `spec` of a PrometheusRule is a Prometheus rules file (`groups:`).
fn write_rules_file(dir: &Path, name: &str, spec: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml_ng::to_string(spec).unwrap()).unwrap();
    path
}

fn promtool_check_rules(promtool: &Path, file: &Path) {
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "rules"]).arg(file);
    run(cmd)
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(file).unwrap_or_default()));
}

fn chart_rules(helm: &Path) -> Value {
    let objects = render(helm, &["--set", "prometheusRule.enabled=true"]);
    one(&objects, "PrometheusRule")["spec"].clone()
}

fn chart_alert<'a>(rules: &'a Value, alert: &str) -> &'a Value {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == alert)
        .unwrap_or_else(|| panic!("no alert {alert}"))
}

#[test]
fn chart_prometheus_rule_passes_promtool_check() {
    let (Some(helm), Some(promtool)) = (tool("helm"), tool("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = chart_rules(&helm);
    for rule in spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let name = rule["alert"].as_str().unwrap();
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].is_string(), "{name} has no {key}");
        }
        assert!(
            rule["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
    promtool_check_rules(
        &promtool,
        &write_rules_file(dir.path(), "chart.rules.yaml", &spec),
    );
}

/// `promtool test rules`: the operator alerts fire on the series that mean trouble and stay
/// quiet on healthy ones.
#[test]
fn chart_alerts_fire_when_the_operator_is_down_or_failing() {
    let (Some(helm), Some(promtool)) = (tool("helm"), tool("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = chart_rules(&helm);
    write_rules_file(dir.path(), "chart.rules.yaml", &spec);
    let target = r#"job="botfleet-operator", namespace="botfleet-system""#;
    let annotations = |alert: &str, summary: &str| {
        let mut a = chart_alert(&spec, alert)["annotations"].clone();
        a["summary"] = Value::String(summary.to_owned());
        a
    };
    let tests = serde_json::json!({
        "rule_files": ["chart.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": format!("up{{{target}, instance=\"a\"}}"), "values": "1x10 0x30"},
                    {"series": format!("up{{{target}, instance=\"b\"}}"), "values": "1x10 0x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "BotfleetOperatorDown", "exp_alerts": []},
                    // Down from minute 11, pending 5m: firing by minute 17.
                    {"eval_time": "20m", "alertname": "BotfleetOperatorDown", "exp_alerts": [{
                        "exp_labels": {"severity": "critical", "job": "botfleet-operator", "namespace": "botfleet-system"},
                        "exp_annotations": chart_alert(&spec, "BotfleetOperatorDown")["annotations"],
                    }]},
                ],
            },
            {
                // No target at all (e.g. the ServiceMonitor is not picked up).
                "interval": "1m",
                "input_series": [
                    {"series": "up{job=\"something-else\", namespace=\"botfleet-system\"}", "values": "1x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "BotfleetOperatorDown", "exp_alerts": [{
                        "exp_labels": {"severity": "critical", "job": "botfleet-operator", "namespace": "botfleet-system"},
                        "exp_annotations": chart_alert(&spec, "BotfleetOperatorDown")["annotations"],
                    }]},
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": format!("up{{{target}, instance=\"a\"}}"), "values": "0x40"},
                    {"series": format!("up{{{target}, instance=\"b\"}}"), "values": "1x40"},
                    {"series": format!("botfleet_reconcile_total{{{target}, instance=\"b\", result=\"success\"}}"), "values": "0+30x40"},
                    {"series": format!("botfleet_reconcile_total{{{target}, instance=\"b\", result=\"error\"}}"), "values": "0+1x10 10+10x30"},
                ],
                "alert_rule_test": [
                    // One replica down is not an outage.
                    {"eval_time": "30m", "alertname": "BotfleetOperatorDown", "exp_alerts": []},
                    // 1 error per 31 reconciles (3%) stays under the 10% threshold.
                    {"eval_time": "10m", "alertname": "BotfleetOperatorReconcileErrors", "exp_alerts": []},
                    // From minute 10: 10 errors in 40 reconciles a minute = 25%, for 15m.
                    {"eval_time": "40m", "alertname": "BotfleetOperatorReconcileErrors", "exp_alerts": [{
                        "exp_labels": {"severity": "warning"},
                        "exp_annotations": annotations(
                            "BotfleetOperatorReconcileErrors",
                            "The botfleet operator fails 25% of its reconciles.",
                        ),
                    }]},
                ],
            },
        ],
    });
    let test_file = dir.path().join("chart.rules.test.yaml");
    std::fs::write(&test_file, serde_yaml_ng::to_string(&tests).unwrap()).unwrap();
    let mut cmd = Command::new(&promtool);
    cmd.current_dir(dir.path())
        .args(["test", "rules"])
        .arg(&test_file);
    run(cmd).unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// the dashboard's queries
// ---------------------------------------------------------------------------------------------

fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("dashboards/botfleet.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = format!("{} / {}", panel["title"], target["refId"]);
            out.push((title, target["expr"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// Series names a metrics text exposition declares, as PromQL sees them (`_total` on counters,
/// `_bucket`/`_sum`/`_count` on histograms).
fn exposed_series(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let mut parts = line.split_whitespace();
        if (parts.next(), parts.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{}_total", name.trim_end_matches("_total")));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("botfleet_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The bot's registry with one sample in every labelled family: an empty family is not
/// exposed at all, so a dashboard check against a fresh registry would see only half of it.
fn bot_metrics_with_one_sample_each() -> botfleet_bot::metrics::Metrics {
    use botfleet_bot::metrics::*;
    let m = Metrics::default();
    let model = || "claude-haiku-4-5".to_owned();
    let chat = || "chat".to_owned();
    m.telegram_updates
        .get_or_create(&KindLabels {
            kind: "message".into(),
        })
        .inc();
    m.handoffs
        .get_or_create(&ReasonLabels {
            reason: "command".into(),
        })
        .inc();
    m.webhook_rejected
        .get_or_create(&ReasonLabels {
            reason: "secret".into(),
        })
        .inc();
    m.llm_requests
        .get_or_create(&RequestLabels {
            model: model(),
            request_type: chat(),
            outcome: "ok".into(),
        })
        .inc();
    m.llm_request_duration
        .get_or_create(&ModelLabels { model: model() })
        .observe(1.5);
    m.llm_tokens
        .get_or_create(&TokenLabels {
            model: model(),
            request_type: chat(),
            token_type: "input".into(),
        })
        .inc();
    m.llm_cost_usd
        .get_or_create(&CostLabels {
            model: model(),
            request_type: chat(),
        })
        .inc_by(0.01);
    m.llm_unpriced_calls
        .get_or_create(&ModelLabels { model: model() })
        .inc();
    m.llm_spend_usd
        .get_or_create(&PeriodLabels {
            period: "day".into(),
        })
        .set(0.5);
    m.llm_budget_usd
        .get_or_create(&PeriodLabels {
            period: "day".into(),
        })
        .set(5.0);
    m
}

/// The operator's metric names are part of the operator <-> bot contract.
const OPERATOR_SERIES: &[&str] = &[
    "botfleet_reconcile_total",
    "botfleet_reconcile_duration_seconds_bucket",
    "botfleet_reconcile_duration_seconds_sum",
    "botfleet_reconcile_duration_seconds_count",
    "botfleet_managed_bots",
];

#[test]
fn dashboard_queries_use_only_metrics_the_bot_and_operator_export() {
    let mut known = exposed_series(&bot_metrics_with_one_sample_each().encode());
    assert!(
        known.contains("botfleet_llm_tokens_total"),
        "bot metrics: {known:?}"
    );
    known.extend(OPERATOR_SERIES.iter().map(|s| s.to_string()));
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "the dashboard has its panels");
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        let names = metric_names_in(expr);
        assert!(!names.is_empty(), "{title}: {expr}");
        for name in names {
            assert!(
                known.contains(&name),
                "{title} queries {name}, which nothing exports"
            );
            used.insert(name);
        }
    }
    for must in [
        "botfleet_llm_spend_usd",
        "botfleet_llm_budget_usd",
        "botfleet_llm_tokens_total",
        "botfleet_llm_request_duration_seconds_bucket",
        "botfleet_llm_requests_total",
        "botfleet_telegram_updates_total",
        "botfleet_followups_sent_total",
        "botfleet_inbox_pending",
        "botfleet_reconcile_total",
    ] {
        assert!(used.contains(must), "the dashboard shows {must}");
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    // Grafana's interval variable becomes a fixed range; the label variables sit inside regex
    // matchers and stay as they are.
    let rules: Vec<Value> = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            serde_json::json!({
                "record": format!("dashboard:query_{i}"),
                "expr": expr.replace("$__rate_interval", "5m"),
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = write_rules_file(
        dir.path(),
        "dashboard.rules.yaml",
        &serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}),
    );
    promtool_check_rules(&promtool, &file);
}

// ---------------------------------------------------------------------------------------------
// what the operator renders for the examples: its alerts and the RBAC it needs
// ---------------------------------------------------------------------------------------------

use botfleet_operator::crd::{PrometheusRuleSpec, TelegramBot};
use botfleet_operator::render::{self, RenderDefaults};

/// Every TelegramBot in `examples/*.yaml`, with namespace and uid filled in as the API server
/// would (other documents, e.g. Secrets, are skipped).
fn example_bots() -> Vec<(String, TelegramBot)> {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut bots = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
            if value.get("kind").and_then(|k| k.as_str()) != Some("TelegramBot") {
                continue;
            }
            let mut bot: TelegramBot = serde_yaml_ng::from_value(value)
                .unwrap_or_else(|e| panic!("{}: not a TelegramBot: {e}", file.display()));
            bot.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            bot.metadata
                .uid
                .get_or_insert_with(|| "00000000-0000-0000-0000-000000000001".into());
            let label = format!(
                "{} ({})",
                file.file_name().unwrap().to_string_lossy(),
                bot.metadata.name.as_deref().unwrap_or_default()
            );
            bots.push((label, bot));
        }
    }
    assert!(
        bots.len() >= 2,
        "examples/ holds the polling and the webhook bot: {bots:?}",
        bots = bots.iter().map(|(l, _)| l).collect::<Vec<_>>()
    );
    bots
}

/// The bot's alerts as `botfleet-operator rules -f` prints them: the PrometheusRule switched on.
fn operator_rules_file(bot: &TelegramBot) -> String {
    let mut bot = bot.clone();
    bot.spec.monitoring.get_or_insert_default().prometheus_rule =
        Some(PrometheusRuleSpec { enabled: true });
    let children = render::render_all(&bot, &RenderDefaults::default()).expect("example renders");
    render::prometheus_rules_file(&children.prometheus_rule.expect("enabled above"))
}

#[test]
fn operator_rendered_rules_pass_promtool_check_for_every_example() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, (label, bot)) in example_bots().into_iter().enumerate() {
        let text = operator_rules_file(&bot);
        let rules: Value = serde_yaml_ng::from_str(&text).unwrap();
        let alerts: BTreeSet<&str> = rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .filter_map(|r| r["alert"].as_str())
            .collect();
        let expected: BTreeSet<&str> = render::ALERT_NAMES.iter().copied().collect();
        assert_eq!(
            alerts, expected,
            "{label}: every alert of ALERT_NAMES is rendered"
        );
        let path = dir.path().join(format!("example-{i}.rules.yaml"));
        std::fs::write(&path, &text).unwrap();
        let mut cmd = Command::new(&promtool);
        cmd.args(["check", "rules"]).arg(&path);
        run(cmd).unwrap_or_else(|e| panic!("{label}: {e}\n{text}"));
    }
}

/// The plural resource of a kind the operator renders, as RBAC names it.
/// The plural of a kind the operator creates, as the operator itself names it.
fn resource_of(kind: &str) -> String {
    botfleet_operator::controller::children::KINDS
        .iter()
        .find(|k| k.kind == kind)
        .map(|k| k.plural.to_owned())
        .unwrap_or_else(|| panic!("the operator does not create {kind}"))
}

fn group_of(api_version: &str) -> String {
    api_version
        .rsplit_once('/')
        .map(|(g, _)| g.to_owned())
        .unwrap_or_default()
}

/// Whether `rules` allow `verb` on `group/resource`, for the object `name` when given.
fn allows(rules: &[&Value], group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    rules.iter().any(|r| {
        let names = str_list(&r["resourceNames"]);
        str_list(&r["apiGroups"]).iter().any(|g| g == group)
            && str_list(&r["resources"]).iter().any(|x| x == resource)
            && str_list(&r["verbs"]).iter().any(|v| v == verb)
            && (names.is_empty() || name.is_some_and(|n| names.iter().any(|x| x == n)))
    })
}

#[test]
fn operator_rbac_covers_every_child_it_renders_and_every_rule_it_grants() {
    let Some(helm) = tool("helm") else { return };
    for args in [
        &[][..],
        &["--set-json", r#"operator.watchNamespaces=["bots"]"#][..],
    ] {
        let objects = render(&helm, args);
        let rules: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "ClusterRole"
                    || (o["kind"] == "Role" && o["metadata"]["namespace"] == "bots")
            })
            .flat_map(|r| rules_of(r))
            .collect();
        for (label, mut bot) in example_bots() {
            // Everything on, so every kind the operator can render is checked.
            let monitoring = bot.spec.monitoring.get_or_insert_default();
            monitoring.prometheus_rule = Some(PrometheusRuleSpec { enabled: true });
            monitoring.service_monitor = Some(botfleet_operator::crd::ServiceMonitorSpec {
                enabled: true,
                interval: None,
            });
            let children = render::render_all(&bot, &RenderDefaults::default()).unwrap();
            for child in children.objects() {
                let group = group_of(child["apiVersion"].as_str().unwrap());
                let resource = resource_of(child["kind"].as_str().unwrap());
                // Server-side apply is a patch; reads before it, deletes of obsolete children.
                for verb in ["get", "list", "patch", "create"] {
                    assert!(
                        allows(&rules, &group, &resource, verb, None),
                        "{label} {args:?}: the operator cannot {verb} {group}/{resource}"
                    );
                }
            }
            assert!(
                allows(&rules, "", "secrets", "get", None),
                "reads token Secrets"
            );
            assert!(
                allows(&rules, "", "secrets", "create", None),
                "creates the webhook Secret"
            );

            // RBAC escalation prevention: the operator may create the scheduler's Role only if
            // it holds every permission the Role grants.
            let role = serde_json::to_value(&children.role).unwrap();
            for rule in role["rules"].as_array().unwrap() {
                let names = str_list(&rule["resourceNames"]);
                for group in str_list(&rule["apiGroups"]) {
                    for resource in str_list(&rule["resources"]) {
                        for verb in str_list(&rule["verbs"]) {
                            let covered = if names.is_empty() {
                                allows(&rules, &group, &resource, &verb, None)
                            } else {
                                names
                                    .iter()
                                    .all(|n| allows(&rules, &group, &resource, &verb, Some(n)))
                            };
                            assert!(
                                covered,
                                "{label} {args:?}: the scheduler Role grants {verb} {group}/{resource} {names:?}, which the operator does not hold"
                            );
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// docs: a runbook section for every alert, at the anchor its runbook_url names
// ---------------------------------------------------------------------------------------------

/// GitHub's heading anchors: lowercase, spaces to `-`, punctuation other than `-`/`_` dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn runbook_anchors() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("docs/runbooks.md")).unwrap();
    let mut anchors = BTreeMap::new();
    let mut section = None::<String>;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = Some(github_anchor(heading));
            anchors.insert(github_anchor(heading), String::new());
        } else if let Some(anchor) = &section {
            anchors.get_mut(anchor).unwrap().push_str(line);
        }
    }
    anchors
}

fn assert_runbook(anchors: &BTreeMap<String, String>, alert: &str, runbook_url: &str) {
    let (base, anchor) = runbook_url
        .split_once('#')
        .unwrap_or_else(|| panic!("{alert}: runbook_url {runbook_url} has no anchor"));
    assert_eq!(
        base,
        "https://github.com/botfleet/botfleet/blob/main/docs/runbooks.md"
    );
    assert_eq!(
        anchor,
        alert.to_lowercase(),
        "{alert}: anchor is the lowercased alert name"
    );
    let body = anchors
        .get(anchor)
        .unwrap_or_else(|| panic!("docs/runbooks.md has no section for {alert} (#{anchor})"));
    for part in [
        "**Meaning**",
        "**Impact**",
        "**Diagnosis**",
        "**Mitigation**",
    ] {
        assert!(body.contains(part), "the runbook of {alert} lacks {part}");
    }
}

#[test]
fn every_alert_the_operator_renders_has_a_runbook_section() {
    let anchors = runbook_anchors();
    for (label, bot) in example_bots() {
        let rules: Value = serde_yaml_ng::from_str(&operator_rules_file(&bot)).unwrap();
        for rule in rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
        {
            let alert = rule["alert"].as_str().unwrap();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{label}: {alert} has no runbook_url"));
            assert_runbook(&anchors, alert, url);
        }
    }
    for alert in render::ALERT_NAMES {
        assert!(
            anchors.contains_key(&alert.to_lowercase()),
            "no runbook for {alert}"
        );
    }
}

#[test]
fn every_alert_of_the_chart_has_a_runbook_section() {
    let Some(helm) = tool("helm") else { return };
    let anchors = runbook_anchors();
    let spec = chart_rules(&helm);
    let rules: Vec<&Value> = spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 3);
    for rule in rules {
        let alert = rule["alert"].as_str().unwrap();
        assert_runbook(
            &anchors,
            alert,
            rule["annotations"]["runbook_url"].as_str().unwrap(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the operator accepts the command line the chart gives it
// ---------------------------------------------------------------------------------------------

#[derive(clap::Parser)]
struct OperatorRun {
    #[command(flatten)]
    args: botfleet_operator::process::RunArgs,
}

fn parse_operator_args(objects: &[Value]) -> botfleet_operator::process::RunArgs {
    let args = operator_args(objects);
    assert_eq!(args[0], "run");
    let argv = std::iter::once("botfleet-operator".to_owned()).chain(args[1..].iter().cloned());
    <OperatorRun as clap::Parser>::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("botfleet-operator run rejects the chart's args {args:?}: {e}"))
        .args
}

/// The operator image and `--default-bot-image` of a render: (operator, bot).
fn images(objects: &[Value]) -> (String, String) {
    let container = &operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0];
    let operator = container["image"].as_str().expect("an image").to_owned();
    let bot = arg_value(&operator_args(objects), "--default-bot-image")
        .expect("a --default-bot-image flag")
        .to_owned();
    (operator, bot)
}

#[test]
fn the_chart_and_the_operator_name_the_same_images() {
    let Some(helm) = tool("helm") else { return };
    // Defaults: the operator's DEFAULT_BOT_IMAGE, and the operator image beside it, both tagged
    // with the workspace version that scripts/images.sh tags (the chart's appVersion).
    let (operator, bot) = images(&render(&helm, &[]));
    assert_eq!(bot, DEFAULT_BOT_IMAGE);
    assert_eq!(
        operator,
        DEFAULT_BOT_IMAGE.replace("/botfleet-bot:", "/botfleet-operator:")
    );
    assert!(
        bot.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "the images' tag is the workspace version: {bot}"
    );

    // One registry and one tag move both images, as after pushing the archives with skopeo.
    let (operator, bot) = images(&render(
        &helm,
        &[
            "--set",
            "image.registry=registry.example.com:5000/team",
            "--set",
            "image.tag=1.2.3",
        ],
    ));
    assert_eq!(
        operator,
        "registry.example.com:5000/team/botfleet-operator:1.2.3"
    );
    assert_eq!(bot, "registry.example.com:5000/team/botfleet-bot:1.2.3");

    let error = helm_template(
        &helm,
        &["--set", "image.registry=registry.example.com/team/"],
    )
    .expect_err("a registry with a trailing slash would name registry//botfleet-bot");
    assert!(error.contains("registry"), "{error}");
}

#[test]
fn the_operator_parses_the_chart_command_line() {
    let Some(helm) = tool("helm") else { return };
    let objects = render(&helm, &[]);
    let run = parse_operator_args(&objects);
    assert!(run.namespaces.is_empty());
    assert_eq!(run.metrics_addr.port(), 8080);
    assert_eq!(run.default_bot_image, DEFAULT_BOT_IMAGE);
    assert_eq!(run.telegram_api_url, "https://api.telegram.org");
    assert_eq!(run.log_format, "json");
    assert!(
        !run.disable_leader_election,
        "two replicas need leader election"
    );
    let leader = kind(&objects, "Role")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-leader-election")
        })
        .unwrap();
    assert!(
        rules_of(leader)
            .iter()
            .any(|r| str_list(&r["resourceNames"]) == [run.leader_election_lease.clone()]),
        "the operator contends for the Lease its Role names"
    );

    let objects = render(
        &helm,
        &[
            "--set-json",
            r#"operator.watchNamespaces=["bots-a","bots-b"]"#,
            "--set",
            "operator.logFormat=text",
            "--set",
            "operator.telegramApiUrl=http://bot-api.telegram.svc:8081",
            "--set",
            "image.botDigest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--set",
            "service.port=9102",
        ],
    );
    let run = parse_operator_args(&objects);
    assert_eq!(run.namespaces, ["bots-a", "bots-b"]);
    assert_eq!(run.log_format, "text");
    assert_eq!(run.telegram_api_url, "http://bot-api.telegram.svc:8081");
    assert_eq!(
        run.default_bot_image,
        "ghcr.io/botfleet/botfleet-bot@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(run.metrics_addr.port(), 9102);
    let container = &operator_deployment(&objects)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 9102);
    assert_eq!(one(&objects, "Service")["spec"]["ports"][0]["port"], 9102);
}

// ---------------------------------------------------------------------------------------------
// docs: the configuration reference covers every field of the CRD
// ---------------------------------------------------------------------------------------------

/// The documented fields of docs/configuration.md: section (heading without backticks, e.g.
/// `spec.webhook`) -> the first-column names of its tables.
fn documented_fields() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap();
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(heading) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            current = heading.replace('`', "").trim().to_owned();
        } else if let Some(cell) = line.strip_prefix("| `")
            && let Some((field, _)) = cell.split_once("` |")
        {
            sections
                .entry(current.clone())
                .or_default()
                .insert(field.to_owned());
        }
    }
    sections
}

/// Leaf field paths of a CRD schema node (`spec.webhook.tls.issuer`, `spec.pricing[].model`).
/// A SecretKeyRef ({name, key}), Kubernetes' own types (`resources`, `conditions`) and lists
/// of scalars are leaves.
fn leaf_fields(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(props) = node["properties"].as_object() else {
        out.push(path.to_owned());
        return;
    };
    let keys: BTreeSet<&str> = props.keys().map(String::as_str).collect();
    if keys == BTreeSet::from(["name", "key"]) || path.ends_with(".resources") {
        out.push(path.to_owned());
        return;
    }
    for (name, child) in props {
        let child_path = format!("{path}.{name}");
        if name == "conditions" {
            out.push(child_path);
        } else if child["type"] == "array" && child["items"]["properties"].is_object() {
            leaf_fields(&child["items"], &format!("{child_path}[]"), out);
        } else {
            leaf_fields(child, &child_path, out);
        }
    }
}

#[test]
fn configuration_reference_documents_every_crd_field() {
    let crd: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join("crds/telegrambots.botfleet.dev.yaml")).unwrap(),
    )
    .unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut fields = Vec::new();
    leaf_fields(&schema["spec"], "spec", &mut fields);
    leaf_fields(&schema["status"], "status", &mut fields);
    assert!(fields.len() > 50, "the walk found the schema: {fields:?}");
    let docs = documented_fields();
    let missing: Vec<&String> = fields
        .iter()
        .filter(|field| {
            !docs.iter().any(|(section, rows)| {
                field
                    .strip_prefix(section.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| rows.contains(rest))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for: {missing:?}"
    );
}
