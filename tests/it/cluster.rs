//! `cluster/`: the deployment files parse, pin the ScyllaDB version in one
//! place, configure Surge only with keys it knows (and values it accepts),
//! and probe the endpoints Surge serves. (No container engine runs here;
//! these checks are what keeps the files from rotting.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use surge::config::{Overrides, Settings, KEYS};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// `KEY=value` lines of an env file.
fn env_file(rel: &str) -> BTreeMap<String, String> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{rel}: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Surge accepts these `SURGE_*` settings: known keys, valid values.
#[allow(clippy::result_large_err)]
fn assert_surge_accepts(source: &str, vars: &BTreeMap<String, String>) {
    for k in vars.keys() {
        let key = k
            .strip_prefix("SURGE_")
            .unwrap_or_else(|| panic!("{source}: {k} is not a SURGE_ setting"))
            .to_ascii_lowercase();
        assert!(KEYS.contains(&key.as_str()), "{source}: unknown key {k}");
    }
    figment::Jail::expect_with(|jail| {
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        if let Err(e) = Settings::load(None, Overrides::default()) {
            panic!("{source}: Surge rejects these settings: {e}");
        }
        Ok(())
    });
}

fn all_yaml_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["", "k8s", "postgres"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                });
            }
        }
    }
    out
}

#[test]
fn every_yaml_file_parses_and_kustomize_lists_every_manifest() {
    let files = all_yaml_files();
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        assert!(!yaml(f).is_empty(), "{f} is empty");
    }
    let k = &yaml("kustomization.yaml")[0];
    let listed: Vec<&str> = k["resources"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for f in files.iter().filter(|f| f.starts_with("k8s/")) {
        assert!(
            listed.contains(&f.as_str()),
            "{f} not in kustomization.yaml"
        );
    }
    for r in &listed {
        assert!(root().join(r).is_file(), "{r} listed but missing");
    }
}

#[test]
fn the_scylla_version_is_pinned_once() {
    let versions = env_file("versions.env");
    let v = &versions["SCYLLA_VERSION"];
    assert!(
        v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()),
        "SCYLLA_VERSION={v} is an exact version"
    );
    let compose = yaml("docker-compose.yml").remove(0);
    let services = compose["services"].as_hash().unwrap();
    let scylla: Vec<_> = services
        .iter()
        .filter(|(n, _)| n.as_str().unwrap().starts_with("scylla-"))
        .collect();
    assert_eq!(scylla.len(), 3, "three ScyllaDB nodes");
    for (name, svc) in scylla {
        let image = svc["image"].as_str().unwrap();
        assert!(
            image.starts_with("scylladb/scylla:${SCYLLA_VERSION"),
            "{name:?}: {image}"
        );
    }
    for s in ["redis", "surge", "surge-migrate"] {
        assert!(!compose["services"][s].is_badvalue(), "compose service {s}");
    }
    // Kustomize copies the version from versions.env into the cluster.
    let k = &yaml("kustomization.yaml")[0];
    let r = &k["replacements"][0];
    assert_eq!(
        r["source"]["fieldPath"].as_str(),
        Some("data.SCYLLA_VERSION")
    );
    assert_eq!(
        r["targets"][0]["select"]["kind"].as_str(),
        Some("ScyllaCluster")
    );
    for f in all_yaml_files() {
        let text = read(&f);
        assert!(
            !text.contains(&format!("scylla:{v}")) && !text.contains(&format!("version: {v}")),
            "{f} repeats the version instead of reading versions.env"
        );
    }
}

#[test]
fn surge_accepts_the_settings_of_both_deployments() {
    assert_surge_accepts("cluster/surge.env", &env_file("surge.env"));
    let config = yaml("k8s/surge-config.yaml").remove(0);
    assert_eq!(config["kind"].as_str(), Some("ConfigMap"));
    let vars: BTreeMap<String, String> = config["data"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(vars["SURGE_STORE"], "scylla");
    assert_surge_accepts("cluster/k8s/surge-config.yaml", &vars);
}

#[test]
fn the_kubernetes_manifests_run_surge_on_a_scylla_cluster_with_probes() {
    let docs: Vec<Yaml> = all_yaml_files()
        .iter()
        .filter(|f| f.starts_with("k8s/"))
        .flat_map(|f| yaml(f))
        .collect();
    let of_kind = |kind: &str| -> Vec<&Yaml> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let scylla = of_kind("ScyllaCluster");
    assert_eq!(scylla.len(), 1);
    assert_eq!(
        scylla[0]["apiVersion"].as_str(),
        Some("scylla.scylladb.com/v1")
    );
    assert_eq!(
        scylla[0]["spec"]["datacenter"]["racks"][0]["members"].as_i64(),
        Some(3)
    );
    assert!(of_kind("Service")
        .iter()
        .any(|s| s["metadata"]["name"].as_str() == Some("surge")));
    assert!(of_kind("Job")
        .iter()
        .any(
            |j| j["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str()
                == Some("migrate")
        ));
    let surge = of_kind("StatefulSet")
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some("surge"))
        .expect("the surge StatefulSet");
    assert_eq!(surge["spec"]["replicas"].as_i64(), Some(1));
    let c = &surge["spec"]["template"]["spec"]["containers"][0];
    // The data directory (images on disk, the index) is a claimed volume
    // that outlives the pod, not an emptyDir.
    let claim = &surge["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"].as_str(), Some("data"));
    assert!(surge["spec"]["template"]["spec"]["volumes"].is_badvalue());
    assert!(c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|m| m["name"].as_str() == Some("data")
            && m["mountPath"].as_str() == Some("/var/lib/surge")));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let refs: Vec<&str> = c["envFrom"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|e| e["configMapRef"]["name"].as_str())
        .collect();
    assert_eq!(refs, ["surge-config"]);
    // The replication names the ScyllaCluster's datacenter.
    let dc = scylla[0]["spec"]["datacenter"]["name"].as_str().unwrap();
    let config = yaml("k8s/surge-config.yaml").remove(0);
    let replication = config["data"]["SURGE_SCYLLA_REPLICATION"].as_str().unwrap();
    assert!(replication.contains(&format!("'{dc}': 3")), "{replication}");
}

#[test]
fn the_postgres_deployment_runs_three_surge_nodes_in_cluster_mode() {
    let versions = env_file("versions.env");
    let v = &versions["POSTGRES_VERSION"];
    let compose = yaml("postgres/docker-compose.yml").remove(0);
    let image = compose["services"]["postgres"]["image"].as_str().unwrap();
    assert!(image.starts_with("postgres:${POSTGRES_VERSION"), "{image}");
    assert!(compose["services"]["lb"]["image"]
        .as_str()
        .unwrap()
        .starts_with("haproxy:${HAPROXY_VERSION"));
    for f in all_yaml_files() {
        assert!(
            !read(&f).contains(&format!("postgres:{v}")),
            "{f} repeats the PostgreSQL version instead of reading versions.env"
        );
    }
    let vars = env_file("postgres/surge.env");
    assert_eq!(vars["SURGE_STORE"], "postgres");
    assert_eq!(vars["SURGE_CLUSTER"], "true");
    // Images in the compose file's MinIO, with its credentials.
    assert_eq!(vars["SURGE_MEDIA_STORE"], "s3");
    let minio = &compose["services"]["minio"];
    assert!(minio["image"]
        .as_str()
        .unwrap()
        .starts_with("minio/minio:${MINIO_VERSION"));
    assert!(versions.contains_key("MINIO_VERSION") && versions.contains_key("MC_VERSION"));
    assert_eq!(
        minio["environment"]["MINIO_ROOT_USER"].as_str(),
        Some(vars["SURGE_MEDIA_S3_ACCESS_KEY_ID"].as_str())
    );
    assert_eq!(
        minio["environment"]["MINIO_ROOT_PASSWORD"].as_str(),
        Some(vars["SURGE_MEDIA_S3_SECRET_ACCESS_KEY"].as_str())
    );
    let bucket = compose["services"]["minio-bucket"]["entrypoint"][2]
        .as_str()
        .unwrap();
    assert!(
        bucket.contains(&format!(
            "mc mb --ignore-existing local/{}",
            vars["SURGE_MEDIA_S3_BUCKET"]
        )),
        "{bucket}"
    );
    // Each node: its own name and advertised address, and Surge accepts
    // the whole of its settings; HAProxy balances over exactly these nodes.
    let haproxy = read("postgres/haproxy.cfg");
    let mut nodes = Vec::new();
    for (name, service) in compose["services"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        if !name.starts_with("surge-") || name == "surge-migrate" || name == "surge-certs" {
            continue;
        }
        let mut node = vars.clone();
        for (k, v) in service["environment"].as_hash().unwrap() {
            node.insert(k.as_str().unwrap().into(), v.as_str().unwrap().into());
        }
        assert_eq!(node["SURGE_NODE_ID"], name);
        // The inter-node channel's files are the ones surge-certs made.
        let mounts: Vec<&str> = service["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            mounts.contains(&"cluster-tls:/var/lib/surge-tls:ro"),
            "{mounts:?}"
        );
        assert!(node["SURGE_CLUSTER_TLS_KEY"].starts_with("/var/lib/surge-tls/"));
        assert_eq!(node["SURGE_CLUSTER_ADVERTISE"], format!("{name}:7070"));
        assert_surge_accepts(&format!("cluster/postgres ({name})"), &node);
        assert!(
            haproxy.contains(&format!("server {name} {name}:8080 check")),
            "haproxy.cfg does not balance over {name}"
        );
        nodes.push(name.to_owned());
    }
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let certs = &compose["services"]["surge-certs"];
    assert!(certs["entrypoint"][2]
        .as_str()
        .unwrap()
        .contains("surge cluster certs /var/lib/surge-tls"));
    assert!(haproxy.contains("option httpchk GET /readyz"));
    // The password Surge is given is the one the server is created with.
    let env = &compose["services"]["postgres"]["environment"];
    assert_eq!(
        env["POSTGRES_PASSWORD"].as_str(),
        Some(vars["SURGE_POSTGRES_PASSWORD"].as_str())
    );
    assert!(vars["SURGE_POSTGRES_URL"].contains(&format!(
        "{}@postgres:5432/{}",
        env["POSTGRES_USER"].as_str().unwrap(),
        env["POSTGRES_DB"].as_str().unwrap()
    )));
    let cnpg = yaml("postgres/cnpg-cluster.yaml");
    let cluster = cnpg
        .iter()
        .find(|d| d["kind"].as_str() == Some("Cluster"))
        .expect("a CloudNativePG Cluster");
    assert_eq!(
        cluster["apiVersion"].as_str(),
        Some("postgresql.cnpg.io/v1")
    );
    assert_eq!(cluster["spec"]["instances"].as_i64(), Some(3));
    // Backups through the Barman Cloud plugin, not the deprecated
    // in-tree barmanObjectStore.
    assert!(!read("postgres/cnpg-cluster.yaml").contains("barmanObjectStore:"));
    let store = cnpg
        .iter()
        .find(|d| d["kind"].as_str() == Some("ObjectStore"))
        .expect("a Barman Cloud ObjectStore");
    assert_eq!(store["apiVersion"].as_str(), Some("barmancloud.cnpg.io/v1"));
    let plugin = &cluster["spec"]["plugins"][0];
    assert_eq!(
        plugin["name"].as_str(),
        Some("barman-cloud.cloudnative-pg.io")
    );
    assert_eq!(plugin["isWALArchiver"].as_bool(), Some(true));
    assert_eq!(
        plugin["parameters"]["barmanObjectName"].as_str(),
        store["metadata"]["name"].as_str()
    );
    let scheduled = cnpg
        .iter()
        .find(|d| d["kind"].as_str() == Some("ScheduledBackup"))
        .expect("a ScheduledBackup");
    assert_eq!(scheduled["spec"]["method"].as_str(), Some("plugin"));
    assert_eq!(
        scheduled["spec"]["pluginConfiguration"]["name"].as_str(),
        Some("barman-cloud.cloudnative-pg.io")
    );

    // Kubernetes: three replicas rolled one at a time, a budget keeping
    // two, a preStop before the SIGTERM drain, readiness on /readyz, and
    // settings Surge accepts (with what the pod spec adds).
    let k8s = yaml("postgres/surge-cluster.yaml");
    let of_kind = |kind: &str| {
        k8s.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    // A StatefulSet: each node keeps its name (the pod's) across restarts.
    assert!(k8s.iter().all(|d| d["kind"].as_str() != Some("Deployment")));
    let d = of_kind("StatefulSet");
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(3));
    assert_eq!(
        d["spec"]["updateStrategy"]["type"].as_str(),
        Some("RollingUpdate")
    );
    assert_eq!(
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].as_i64(),
        Some(1)
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    // Other nodes reach it by its stable name in the headless Service,
    // published before it is ready.
    let nodes_svc = k8s
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("Service")
                && d["metadata"]["name"].as_str() == Some("surge-nodes")
        })
        .expect("the headless surge-nodes Service");
    assert_eq!(d["spec"]["serviceName"].as_str(), Some("surge-nodes"));
    assert_eq!(nodes_svc["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        nodes_svc["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true)
    );
    let env: Vec<(&str, &str)> = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    assert!(
        env.contains(&(
            "SURGE_CLUSTER_ADVERTISE",
            "$(POD_NAME).surge-nodes.surge.svc:7070"
        )),
        "{env:?}"
    );
    // Only the nodes reach the inter-node port; only the monitoring
    // namespace the metrics.
    let policy = of_kind("NetworkPolicy");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app"].as_str(),
        Some("surge")
    );
    let rules = policy["spec"]["ingress"].as_vec().unwrap();
    let rule_for = |port: i64| {
        rules
            .iter()
            .find(|r| r["ports"][0]["port"].as_i64() == Some(port))
            .unwrap_or_else(|| panic!("no rule for {port}"))
    };
    assert_eq!(
        rule_for(7070)["from"][0]["podSelector"]["matchLabels"]["app"].as_str(),
        Some("surge")
    );
    assert!(rule_for(8080)["from"].is_badvalue(), "the API is open");
    assert_eq!(
        rule_for(9464)["from"][0]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"]
            .as_str(),
        Some("monitoring")
    );
    // Prometheus finds the nodes through the headless Service's metrics port.
    let monitor = of_kind("ServiceMonitor");
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_hash()
        .unwrap()
    {
        assert_eq!(nodes_svc["metadata"]["labels"][k.as_str().unwrap()], *v);
    }
    let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(nodes_svc["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|p| p["name"].as_str() == Some(port)));
    assert!(!c["lifecycle"]["preStop"].is_badvalue());
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    // The inter-node channel's TLS files are the mounted Secret's.
    let mounted = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("cluster-tls"))
        .expect("the cluster-tls mount");
    assert_eq!(
        mounted["mountPath"].as_str(),
        Some("/etc/surge/cluster-tls")
    );
    assert!(d["spec"]["template"]["spec"]["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"].as_str() == Some("surge-cluster-tls")));
    assert_eq!(
        of_kind("PodDisruptionBudget")["spec"]["minAvailable"].as_i64(),
        Some(2)
    );
    let mut vars: BTreeMap<String, String> = of_kind("ConfigMap")["data"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    vars.insert("SURGE_CLUSTER_ADVERTISE".into(), "10.0.0.7:7070".into());
    vars.insert(
        "SURGE_JWT_SECRET".into(),
        "a-secret-from-surge-secrets-0123456789abcdef".into(),
    );
    vars.insert("SURGE_NODE_ID".into(), "surge-0".into());
    for (k, v) in &env {
        if k.starts_with("SURGE_") {
            vars.insert((*k).into(), v.replace("$(POD_NAME)", "surge-0"));
        }
    }
    // Images in a bucket; its keys from the surge-media-s3 Secret.
    assert_eq!(vars["SURGE_MEDIA_STORE"], "s3");
    for key in [
        "SURGE_MEDIA_S3_ACCESS_KEY_ID",
        "SURGE_MEDIA_S3_SECRET_ACCESS_KEY",
    ] {
        assert!(
            c["env"]
                .as_vec()
                .unwrap()
                .iter()
                .any(|e| e["name"].as_str() == Some(key)
                    && e["valueFrom"]["secretKeyRef"]["name"].as_str() == Some("surge-media-s3")),
            "{key}"
        );
        vars.insert(key.into(), "from-the-secret".into());
    }
    assert_surge_accepts("cluster/postgres/surge-cluster.yaml", &vars);
}

#[test]
fn the_operations_doc_points_at_the_cluster_files() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    for f in [
        "cluster/docker-compose.yml",
        "cluster/kustomization.yaml",
        "cluster/README.md",
        "cluster/postgres/docker-compose.yml",
    ] {
        assert!(
            readme.contains(f),
            "docs/operations.md does not mention {f}"
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(f).is_file(),
            "{f} missing"
        );
    }
}

/// In cluster mode every node serves every image: images on one node's
/// own disk (the default `data_dir/media`) are refused at start; a bucket
/// or a directory all nodes share is taken.
#[test]
fn cluster_mode_refuses_images_on_one_nodes_own_disk() {
    let base = format!(
        "cluster = true\nstore = \"postgres\"\nnode_id = \"n1\"\njwt_secret = \"{}\"\nredis_url = \"redis://127.0.0.1:6379\"\ncluster_plaintext = true\n",
        crate::helpers::TEST_SECRET
    );
    let err = Settings::from_toml(&base).unwrap_err().to_string();
    assert!(
        err.contains("media_store") && err.contains("share"),
        "{err}"
    );
    Settings::from_toml(&format!(
        "{base}media_store = \"s3\"\nmedia_s3_bucket = \"surge-media\"\n"
    ))
    .unwrap();
    Settings::from_toml(&format!("{base}media_dir = \"/mnt/shared/surge-media\"\n")).unwrap();
}
