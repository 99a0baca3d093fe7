//! deploy/ cannot be run here (no Docker engine, no cluster), so it is checked
//! against the bridge itself: every file parses, every setting it sets is real and
//! accepted by `check-config`, probes and ports match the server, the Dockerfile
//! builds what the crate has, and dashboards and alerts use only exported metrics.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tim_kafka_bridge::settings::{Settings, ENV_VARS, REQUIRED_ENV_VARS};
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    (
                        k.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("{k:?}")),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// Every document of every YAML file under deploy/, by file name.
fn yaml_documents() -> HashMap<String, Vec<Value>> {
    files(&root().join("deploy"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let docs =
                YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p
                .strip_prefix(root().join("deploy"))
                .unwrap()
                .display()
                .to_string();
            (name, docs.iter().map(to_json).collect())
        })
        .collect()
}

fn kind<'a>(docs: &'a HashMap<String, Vec<Value>>, kind: &str) -> &'a Value {
    docs.values()
        .flatten()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} under deploy/k8s"))
}

fn check_config(env: &HashMap<String, String>) -> std::process::Output {
    let mut command = Command::new(BINARY);
    for name in ENV_VARS {
        command.env_remove(name);
    }
    command.arg("check-config").envs(env).output().unwrap()
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let docs = yaml_documents();
    assert!(docs.len() >= 10, "{:?}", docs.keys());
    for path in files(&root().join("deploy"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let kustomization = &docs["k8s/kustomization.yaml"][0];
    for resource in kustomization["resources"].as_array().unwrap() {
        assert!(
            root()
                .join("deploy/k8s")
                .join(resource.as_str().unwrap())
                .is_file(),
            "{resource}"
        );
    }
}

#[test]
fn every_setting_deploy_names_is_real_and_the_required_ones_are_set_and_accepted() {
    for path in files(&root().join("deploy")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("TIM_BRIDGE_") && word != "TIM_BRIDGE_" {
                assert!(
                    ENV_VARS.contains(&word),
                    "{} names {word}, which the bridge does not read",
                    path.display()
                );
            }
        }
    }
    let docs = yaml_documents();
    let configmap: HashMap<String, String> =
        serde_json::from_value(docs["k8s/configmap.yaml"][0]["data"].clone()).unwrap();
    let compose: HashMap<String, String> = serde_json::from_value(
        docs["compose.yaml"][0]["services"]["bridge"]["environment"].clone(),
    )
    .unwrap();
    for (name, mut env) in [("k8s ConfigMap", configmap), ("compose bridge", compose)] {
        for required in REQUIRED_ENV_VARS {
            assert!(
                env.contains_key(*required),
                "{name} does not set {required}"
            );
        }
        env.retain(|k, _| k.starts_with("TIM_BRIDGE_"));
        // The token comes from the Secret, or from the shell (`${TIM_BRIDGE_TOKEN:?...}`).
        env.retain(|_, v| !v.starts_with("${"));
        env.entry("TIM_BRIDGE_TOKEN".into())
            .or_insert_with(|| "a-token-from-the-secret".into());
        let output = check_config(&env);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let unit =
        std::fs::read_to_string(root().join("deploy/systemd/tim-kafka-bridge.service")).unwrap();
    for required in REQUIRED_ENV_VARS {
        assert!(
            unit.contains(required),
            "the systemd unit does not say where {required} goes"
        );
    }
}

#[tokio::test]
async fn probes_and_ports_match_the_server() {
    let docs = yaml_documents();
    let port = Settings::default().listen.port();
    let configmap = &docs["k8s/configmap.yaml"][0]["data"];
    let listen: std::net::SocketAddr = configmap["TIM_BRIDGE_LISTEN"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(listen.port(), port);
    let admin: std::net::SocketAddr = configmap["TIM_BRIDGE_ADMIN_LISTEN"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let container = &kind(&docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], port);
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["ports"][1]["containerPort"], admin.port());
    assert_eq!(container["ports"][1]["name"], "admin");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(
        kind(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"],
        "admin"
    );
    let spool_mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(
        configmap["TIM_BRIDGE_SPOOL_DIR"], spool_mount,
        "the spool is on the volume"
    );
    let grace = kind(&docs, "StatefulSet")["spec"]["template"]["spec"]
        ["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        grace * 1000 > Settings::default().shutdown_timeout_ms as i64 + 5_000,
        "grace covers preStop and the drain"
    );
    let compose_ports = &docs["compose.yaml"][0]["services"]["bridge"]["ports"][0];
    assert!(compose_ports
        .as_str()
        .unwrap()
        .ends_with(&format!(":{port}")));
    let dockerfile = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));

    let app = spawn_app_with(|s| s.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    app.wait_until_ready().await;
    let admin = TestApp::at(app.admin_address.as_deref().unwrap());
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(admin.get(path).await.0, 200, "{path}");
    }
    assert_eq!(app.callback("C2C.CallbackAfterMsgWithDraw", r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b","MsgKey":"deploy"}"#).await.status, 200);
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("deploy")
    );
}

#[test]
fn the_dockerfile_builds_and_runs_what_the_crate_has() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let binary = Path::new(BINARY).file_name().unwrap().to_str().unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                root().join(source).exists(),
                "COPY {source}: not in the repository"
            );
        }
    }
    assert!(dockerfile.contains(&format!("--bin {binary}")));
    assert!(dockerfile.contains(&format!(
        "/src/target/release/{binary} /usr/local/bin/{binary}"
    )));
    assert!(dockerfile.contains(&format!("ENTRYPOINT [\"{binary}\"]")));
    for subcommand in ["serve", "health"] {
        let help = Command::new(BINARY)
            .args([subcommand, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "{subcommand}");
        assert!(
            dockerfile.contains(&format!("\"{subcommand}\"")),
            "{subcommand}"
        );
    }
    let serve_help = String::from_utf8(
        Command::new(BINARY)
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(serve_help.contains("--log-format"));
    let health_help = String::from_utf8(
        Command::new(BINARY)
            .args(["health", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(health_help.contains("--address"));
}

#[tokio::test]
async fn dashboards_and_alerts_use_only_metrics_the_bridge_exports() {
    let app = spawn_app().await;
    assert_eq!(app.callback("C2C.CallbackAfterSendMsg", r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"metrics"}"#).await.status, 200);
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("metrics")
    );
    // librdkafka's statistics (per broker and topic) come once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exposition = loop {
        let (_, exposition) = app.get("/metrics").await;
        if exposition.contains("tim_bridge_kafka_topic_batch_messages{")
            || std::time::Instant::now() > deadline
        {
            break exposition;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let mut exported = BTreeSet::new();
    for line in exposition.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        match kind {
            "counter" => exported.extend([format!("{name}_total")]),
            "histogram" => {
                exported.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")))
            }
            _ => exported.extend([name.to_owned()]),
        }
    }
    assert!(
        exported.contains("tim_bridge_callbacks_total"),
        "{exported:?}"
    );

    let rules = serde_json::to_string(&kind(&yaml_documents(), "PrometheusRule")["spec"]).unwrap();
    let dashboard =
        std::fs::read_to_string(root().join("deploy/grafana/tim-kafka-bridge.json")).unwrap();
    let mut used = BTreeSet::new();
    for text in [&rules, &dashboard] {
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("tim_bridge_") {
                used.insert(word.to_owned());
            }
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported by the bridge: {unknown:?}"
    );
}

#[test]
fn every_workload_runs_confined_without_a_service_account_token() {
    let docs = yaml_documents();
    let workloads: Vec<&Value> = docs
        .values()
        .flatten()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("StatefulSet" | "Deployment" | "Job")
            )
        })
        .collect();
    assert!(workloads.len() >= 3, "{}", workloads.len());
    for workload in workloads {
        let name = &workload["metadata"]["name"];
        let pod = &workload["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for container in pod["containers"].as_array().unwrap() {
            let context = &container["securityContext"];
            assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(context["capabilities"]["drop"][0], "ALL", "{name}");
        }
    }
    let policy = kind(&docs, "NetworkPolicy");
    let ports: Vec<&str> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["ports"][0]["port"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "admin"]);
    let compose = &docs["compose.yaml"][0]["services"]["bridge"];
    assert!(
        compose["ports"][0]
            .as_str()
            .unwrap()
            .starts_with("${BRIDGE_PUBLISH:-127.0.0.1}:"),
        "compose binds loopback unless told otherwise"
    );
    for secret in ["k8s/secret.yaml", "k8s/relay/secret.yaml"] {
        let text = std::fs::read_to_string(root().join("deploy").join(secret)).unwrap();
        assert!(
            text.contains("replace-with-"),
            "{secret} ships a placeholder"
        );
    }
}
