//! `deploy/` is checked against the binaries themselves: every setting the
//! compose file and the Kubernetes manifests give must be one the services
//! accept (unknown keys are errors), every secret they reference must exist,
//! every command must be one of our binaries with flags it accepts, and the
//! probes and the KEDA trigger must name real endpoints and queues.

use figment::providers::{Format, Toml};
use figment::Figment;
use lifecycle_config::Settings;
use lifecycle_domain::VendorKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn load(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Applies YAML merge keys (`<<: *anchor`) the way compose does.
fn merged(y: &Yaml) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    if let Yaml::Hash(h) = y {
        if let Some(base) = h.get(&Yaml::String("<<".into())) {
            out.extend(merged(base));
        }
        for (k, v) in h {
            if let Some(k) = k.as_str().filter(|k| *k != "<<") {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    out
}

fn scalar(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Loads settings from these environment variables exactly as the binaries do.
// figment's jail returns its own (large) error type.
#[allow(clippy::result_large_err)]
fn settings_from_env(env: &BTreeMap<String, String>) -> Result<Settings, String> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(Settings::load(None).map_err(|e| e.to_string()));
        Ok(())
    });
    out.unwrap()
}

#[test]
fn the_compose_file_configures_the_binaries_as_they_expect() {
    let doc = &load(&deploy().join("compose.yaml"))[0];
    let services = merged(&doc["services"]);
    let declared_secrets: Vec<String> = merged(&doc["secrets"]).keys().cloned().collect();
    for (name, binary) in
        [("migrate", "lifecycle-ctl"), ("producer", "lifecycle-producer"), ("worker", "lifecycle-worker")]
    {
        let service = merged(&services[name]);
        let command: Vec<String> = service["command"].as_vec().unwrap().iter().map(scalar).collect();
        assert_eq!(command[0], binary, "{name} runs {binary}");
        let env: BTreeMap<String, String> =
            merged(&service["environment"]).iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
        let mounted: Vec<String> =
            service.get("secrets").and_then(|s| s.as_vec().cloned()).unwrap_or_default().iter().map(scalar).collect();
        // Secrets: each file referenced is mounted, declared, and present.
        let mut env = env;
        for v in env.values_mut() {
            if let Some(secret) = v.strip_prefix("/run/secrets/") {
                assert!(mounted.contains(&secret.to_string()), "{name} reads {secret} but does not mount it");
                assert!(declared_secrets.contains(&secret.to_string()), "{secret} is not declared");
                let file = deploy().join("secrets").join(secret);
                assert!(file.exists(), "{} is missing", file.display());
                *v = file.display().to_string();
            }
        }
        let settings = settings_from_env(&env)
            .unwrap_or_else(|e| panic!("{name}: the binary would refuse this configuration: {e}"));
        match name {
            "producer" => {
                assert!(!settings.producer.intake_tokens.is_empty());
                assert!(settings.admin.password.is_some(), "the admin listener needs its password");
                assert!(settings.producer.pipedrive_webhook.password.is_some());
            }
            "worker" => {
                let registry =
                    lifecycle_vendors::build_registry(&settings).unwrap_or_else(|e| panic!("worker vendors: {e}"));
                assert_eq!(registry.vendors().len(), VendorKind::ALL.len(), "every vendor is configured");
                assert!(!settings.worker.metrics_listen.is_empty());
            }
            _ => {}
        }
    }
    // The simulator accepts its flags.
    let sim = merged(&services["vendor-sim"]);
    let args: Vec<String> = sim["command"].as_vec().unwrap().iter().map(scalar).collect();
    assert_eq!(args[0], "lifecycle-vendor-sim");
    let cmd = <lifecycle_vendor_sim::Config as clap::Args>::augment_args(clap::Command::new("lifecycle-vendor-sim"));
    cmd.try_get_matches_from(&args).unwrap_or_else(|e| panic!("the simulator refuses its compose flags: {e}"));
}

#[test]
fn the_kubernetes_manifests_configure_the_binaries_as_they_expect() {
    let k8s = deploy().join("k8s");
    // The Secret's keys, from the example that documents them.
    let secret = &load(&k8s.join("secret.example.yaml"))[0];
    let keys: Vec<String> = merged(&secret["stringData"]).keys().cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    for k in &keys {
        std::fs::write(dir.path().join(k), "placeholder-value\n").unwrap();
    }
    let configmap = &load(&k8s.join("configmap.yaml"))[0];
    let toml = scalar(&configmap["data"]["lifecycle.toml"]);
    for path in toml.split('"').filter(|s| s.starts_with("/run/secrets/lifecycle/")) {
        let key = path.trim_start_matches("/run/secrets/lifecycle/");
        assert!(keys.contains(&key.to_string()), "the config reads secret key {key}, which the Secret does not have");
    }
    let toml = toml.replace("/run/secrets/lifecycle", &dir.path().display().to_string());
    let settings = Settings::from_figment(Figment::from(Toml::string(&toml)))
        .unwrap_or_else(|e| panic!("the ConfigMap's lifecycle.toml would be refused: {e}"));
    let registry = lifecycle_vendors::build_registry(&settings).unwrap_or_else(|e| panic!("vendors: {e}"));
    assert_eq!(registry.vendors().len(), VendorKind::ALL.len(), "every vendor is configured");

    let port = |listen: &str| listen.rsplit(':').next().unwrap().parse::<i64>().unwrap();
    for (file, binary, probe_port) in [
        ("producer.yaml", "lifecycle-producer", port(&settings.producer.listen)),
        ("worker.yaml", "lifecycle-worker", port(&settings.worker.metrics_listen)),
    ] {
        let docs = load(&k8s.join(file));
        let deployment = docs.iter().find(|d| d["kind"].as_str() == Some("Deployment")).unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(scalar(&container["command"][0]), binary);
        let config_env = container["env"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some("LIFECYCLE_CONFIG"))
            .expect("LIFECYCLE_CONFIG is set");
        assert_eq!(scalar(&config_env["value"]), "/etc/lifecycle/lifecycle.toml");
        let ports: BTreeMap<String, i64> = container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|p| (scalar(&p["name"]), p["containerPort"].as_i64().unwrap()))
            .collect();
        for probe in ["readinessProbe", "livenessProbe"] {
            let http = &container[probe]["httpGet"];
            let path = scalar(&http["path"]);
            assert!(["/healthz", "/readyz"].contains(&path.as_str()), "{file} {probe} {path}");
            assert_eq!(
                ports[&scalar(&http["port"])],
                probe_port,
                "{file} {probe} probes the port the binary listens on"
            );
        }
        if binary == "lifecycle-producer" {
            // The admin listener is on the pod's loopback (kubectl port-forward), and no port names it.
            assert!(settings.admin.listen.starts_with("127.0.0.1:"), "admin.listen = {}", settings.admin.listen);
            assert!(!ports.contains_key("admin") && !ports.values().any(|p| *p == port(&settings.admin.listen)));
            // /metrics on its own port, the one Prometheus is told about, not on the intake's.
            assert!(!settings.producer.metrics_listen.is_empty(), "producer.metrics_listen is set");
            assert_eq!(ports["metrics"], port(&settings.producer.metrics_listen));
            assert_ne!(ports["metrics"], ports["intake"]);
        }
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(scalar(&annotations["prometheus.io/port"]).parse::<i64>().unwrap(), ports["metrics"], "{file}");
        // Services publish the intake only: never the metrics or the admin port.
        for service in docs.iter().filter(|d| d["kind"].as_str() == Some("Service")) {
            for p in service["spec"]["ports"].as_vec().unwrap() {
                let target = scalar(&p["targetPort"]);
                assert_eq!(target, "intake", "{file}: a Service publishes {target}");
            }
        }
    }
    // The intake is behind the ingress: its pods are trusted proxies, so failures are counted per caller.
    // (The settings loader has checked that each entry is an address or a range.)
    assert!(!settings.producer.trusted_proxies.is_empty(), "producer.trusted_proxies is set");
    let job = &load(&k8s.join("migrate-job.yaml"))[0];
    let cmd: Vec<String> =
        job["spec"]["template"]["spec"]["containers"][0]["command"].as_vec().unwrap().iter().map(scalar).collect();
    assert_eq!(cmd, ["lifecycle-ctl", "migrate"]);

    let keda = load(&k8s.join("keda-scaledobject.yaml"));
    let scaled = keda.iter().find(|d| d["kind"].as_str() == Some("ScaledObject")).unwrap();
    let queues: Vec<String> =
        scaled["spec"]["triggers"].as_vec().unwrap().iter().map(|t| scalar(&t["metadata"]["queueName"])).collect();
    assert_eq!(
        queues,
        lifecycle_broker::Topology::new(settings.broker.namespace.clone()).lane_queues(),
        "KEDA watches every vendor's lane"
    );
    let auth = keda.iter().find(|d| d["kind"].as_str() == Some("TriggerAuthentication")).unwrap();
    assert!(keys.contains(&scalar(&auth["spec"]["secretTargetRef"][0]["key"])));
}

#[test]
fn the_network_policies_let_in_only_the_ingress_and_the_monitoring() {
    let k8s = deploy().join("k8s");
    let kustomization = &load(&k8s.join("kustomization.yaml"))[0];
    let resources: Vec<String> = kustomization["resources"].as_vec().unwrap().iter().map(scalar).collect();
    assert!(resources.contains(&"networkpolicy.yaml".to_string()), "{resources:?}");
    let policies = load(&k8s.join("networkpolicy.yaml"));
    assert!(policies.iter().all(|p| p["kind"].as_str() == Some("NetworkPolicy")));
    // Nothing comes in unless a policy below lets it.
    assert!(policies.iter().any(|p| merged(&p["spec"]["podSelector"]).is_empty()
        && p["spec"]["ingress"].is_badvalue()
        && p["spec"]["policyTypes"].as_vec().is_some_and(|t| t.iter().any(|t| t.as_str() == Some("Ingress")))));
    // Each component's container ports, by name.
    let mut ports = BTreeMap::<String, Vec<String>>::new();
    for file in ["producer.yaml", "worker.yaml"] {
        let docs = load(&k8s.join(file));
        let d = docs.iter().find(|d| d["kind"].as_str() == Some("Deployment")).unwrap();
        let component = scalar(&d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]);
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        ports.insert(component, container["ports"].as_vec().unwrap().iter().map(|p| scalar(&p["name"])).collect());
    }
    // Who may reach which port of which component.
    let mut allowed = BTreeMap::<(String, String), Vec<String>>::new();
    for p in policies.iter().filter(|p| !p["spec"]["ingress"].is_badvalue()) {
        let component = scalar(&p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]);
        assert!(ports.contains_key(&component), "a policy selects {component}, which no Deployment is");
        for rule in p["spec"]["ingress"].as_vec().unwrap() {
            let from: Vec<String> = rule["from"]
                .as_vec()
                .expect("every rule names whom it lets in")
                .iter()
                .map(|f| scalar(&f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]))
                .collect();
            for port in rule["ports"].as_vec().expect("every rule names its ports") {
                let name = scalar(&port["port"]);
                assert!(ports[&component].contains(&name), "{component} has no port {name}");
                allowed.entry((component.clone(), name)).or_default().extend(from.clone());
            }
        }
    }
    let key = |c: &str, p: &str| (c.to_string(), p.to_string());
    assert_eq!(allowed[&key("producer", "intake")], ["ingress-nginx"]);
    assert_eq!(allowed[&key("producer", "metrics")], ["monitoring"]);
    assert_eq!(allowed[&key("worker", "metrics")], ["monitoring"]);
    assert_eq!(allowed.len(), 3, "nothing else is let in: {allowed:?}");
}
