//! Desired-state readers: good manifests, bad manifests with named errors, a Pulumi export.

use std::path::{Path, PathBuf};

use fleet_cloud::desired::{Limits, ManifestDir, PulumiExport, manifest, pulumi};
use fleet_cloud::{CloudErrorKind, DesiredSource, DesiredState, PlatformKind, Scope, ServiceSpec};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, body).unwrap();
    p
}

const ORDERS_YAML: &str = "\
apiVersion: fleet/v1
kind: Service
metadata:
  name: orders-api
  environment: prod
  labels:
    team: orders
spec:
  platform: containerapps
  image: shop.azurecr.io/orders:2.1.0
  replicas: 3
  configurationId: orders-config
  configVersion: 4
  secretBindings:
    db: orders-db-password
";

const CATALOG_JSON: &str = r#"{
  "apiVersion": "fleet/v1", "kind": "Service",
  "metadata": {"name": "catalog", "environment": "prod"},
  "spec": {"platform": "aks", "image": "shop.azurecr.io/catalog:7.2", "replicas": 4}
}"#;

#[tokio::test]
async fn manifest_dir_reads_yaml_and_json_of_the_scoped_environment() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "services/orders.yaml", ORDERS_YAML);
    write(dir.path(), "services/catalog.json", CATALOG_JSON);
    write(
        dir.path(),
        "staging/orders.yml",
        &ORDERS_YAML.replace("environment: prod", "environment: staging"),
    );
    write(dir.path(), "README.md", "not a manifest");
    write(dir.path(), ".git/config.yaml", "not: [valid");

    let reader = ManifestDir::new(dir.path());
    assert_eq!(reader.source(), DesiredSource::Git);
    let specs = reader.read(&Scope::new("t1", "prod")).await.unwrap();
    let ids: Vec<_> = specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["catalog", "orders-api"]);
    let orders = &specs[1];
    assert_eq!(orders.platform, PlatformKind::ContainerApps);
    assert_eq!(orders.image, "shop.azurecr.io/orders:2.1.0");
    assert_eq!(orders.replicas, 3);
    assert_eq!(orders.configuration_id.as_deref(), Some("orders-config"));
    assert_eq!(orders.config_version, Some(4));
    assert_eq!(
        orders.secret_bindings.get("db").map(String::as_str),
        Some("orders-db-password")
    );
    assert_eq!(
        orders.labels.get("team").map(String::as_str),
        Some("orders")
    );
    assert_eq!(reader.read_all().unwrap().len(), 3);
}

async fn read_error(body: &str, file: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), file, body);
    let err = ManifestDir::new(dir.path())
        .read(&Scope::new("t1", "prod"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CloudErrorKind::Invalid, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(file), "error does not name the file: {msg}");
    msg
}

#[tokio::test]
async fn bad_manifests_are_invalid_and_name_the_file_and_field() {
    let cases = [
        (
            ORDERS_YAML.replace("  image: shop.azurecr.io/orders:2.1.0\n", ""),
            "image",
        ),
        (
            ORDERS_YAML.replace("platform: containerapps", "platform: lambda"),
            "spec.platform",
        ),
        (
            ORDERS_YAML.replace("replicas: 3", "replicas: many"),
            "replicas",
        ),
        (
            ORDERS_YAML.replace("replicas: 3", "replicas: 5000"),
            "spec.replicas",
        ),
        (ORDERS_YAML.replace("fleet/v1", "fleet/v9"), "apiVersion"),
        (
            ORDERS_YAML.replace("name: orders-api", "name: Orders_API"),
            "metadata.name",
        ),
        (
            ORDERS_YAML.replace("  replicas: 3\n", "  replicas: 3\n  replica: 4\n"),
            "replica",
        ),
        (
            ORDERS_YAML.replace("  configurationId: orders-config\n", ""),
            "spec.configurationId",
        ),
        ("apiVersion: [unclosed".to_owned(), "line"),
    ];
    for (body, field) in cases {
        let msg = read_error(&body, "bad.yaml").await;
        assert!(msg.contains(field), "error does not name {field:?}: {msg}");
    }
    let msg = read_error(&CATALOG_JSON.replace("\"aks\"", "42"), "bad.json").await;
    assert!(
        msg.contains("platform") || msg.contains("invalid type"),
        "{msg}"
    );
}

#[tokio::test]
async fn duplicate_services_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", ORDERS_YAML);
    write(dir.path(), "b.yaml", ORDERS_YAML);
    let msg = ManifestDir::new(dir.path())
        .read_all()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("a.yaml") && msg.contains("b.yaml") && msg.contains("already declared"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "big.yaml",
        &format!("{ORDERS_YAML}# {}\n", "x".repeat(300 * 1024)),
    );
    let msg = ManifestDir::new(dir.path())
        .read_all()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("big.yaml") && msg.contains("over the limit"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write(
            dir.path(),
            &format!("s{i}.yaml"),
            &ORDERS_YAML.replace("orders-api", &format!("svc-{i}")),
        );
    }
    let limits = Limits {
        max_files: 2,
        ..Limits::default()
    };
    let msg = ManifestDir::new(dir.path())
        .with_limits(limits)
        .read_all()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("more than 2 manifest files"), "{msg}");
}

#[test]
fn to_yaml_round_trips_through_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServiceSpec::new(
        "edge",
        "prod",
        PlatformKind::Functions,
        "reg.io/edge@sha256:00ab",
        2,
    );
    spec.configuration_id = Some("edge-config".into());
    spec.config_version = Some(9);
    spec.secret_bindings
        .insert("api-key".into(), "edge-api-key".into());
    spec.labels.insert("owner".into(), "a: b".into());
    let path = write(dir.path(), "edge.yaml", &manifest::to_yaml(&spec));
    assert_eq!(
        manifest::parse_file(&path, &Limits::default()).unwrap(),
        spec
    );
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pulumi-stack.json")
}

#[tokio::test]
async fn pulumi_export_maps_container_apps_web_apps_functions_and_deployments() {
    let reader = PulumiExport::new(fixture(), Some("prod".into()));
    assert_eq!(reader.source(), DesiredSource::Pulumi);
    let specs = reader.read(&Scope::new("t1", "prod")).await.unwrap();
    let summary: Vec<_> = specs
        .iter()
        .map(|s| (s.id.as_str(), s.platform, s.image.as_str(), s.replicas))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "billing-fn",
                PlatformKind::Functions,
                "shop.azurecr.io/billing:1.0.3",
                1
            ),
            (
                "catalog",
                PlatformKind::Aks,
                "shop.azurecr.io/catalog:7.2",
                4
            ),
            (
                "orders-api",
                PlatformKind::ContainerApps,
                "shop.azurecr.io/orders:2.1.0",
                3
            ),
        ]
    );
    let orders = &specs[2];
    assert_eq!(orders.configuration_id.as_deref(), Some("orders-config"));
    assert_eq!(orders.config_version, Some(4));
    assert_eq!(
        orders.labels.get("team").map(String::as_str),
        Some("orders")
    );
    assert!(!orders.labels.contains_key("fleet-config-version"));

    let staging = reader.read(&Scope::new("t1", "staging")).await.unwrap();
    assert_eq!(staging.len(), 1);
    assert_eq!(
        (staging[0].id.as_str(), staging[0].platform),
        ("storefront", PlatformKind::AppService)
    );
    assert_eq!(staging[0].replicas, 2);
}

fn export_error(resource: serde_json::Value, stack_env: Option<&str>) -> String {
    let export = serde_json::json!({"version": 3, "deployment": {"resources": [resource]}});
    let bytes = serde_json::to_vec(&export).unwrap();
    let err = pulumi::parse_export(
        Path::new("stack.json"),
        &bytes,
        stack_env,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), CloudErrorKind::Invalid);
    err.to_string()
}

#[test]
fn bad_pulumi_resources_name_the_file_resource_and_field() {
    let msg = export_error(
        serde_json::json!({"urn": "urn:pulumi:p::s::azure-native:app:ContainerApp::a", "type": "azure-native:app:ContainerApp",
            "inputs": {"containerAppName": "a", "template": {"containers": []}}}),
        Some("prod"),
    );
    assert!(
        msg.contains("stack.json")
            && msg.contains("ContainerApp::a")
            && msg.contains("inputs.template.containers[0].image"),
        "{msg}"
    );

    let msg = export_error(
        serde_json::json!({"urn": "urn:pulumi:p::s::azure-native:web:WebApp::w", "type": "azure-native:web:WebApp",
            "inputs": {"name": "w", "siteConfig": {"linuxFxVersion": "NODE|20-lts"}}}),
        Some("prod"),
    );
    assert!(
        msg.contains("inputs.siteConfig.linuxFxVersion") && msg.contains("NODE|20-lts"),
        "{msg}"
    );

    let msg = export_error(
        serde_json::json!({"urn": "urn:pulumi:p::s::kubernetes:apps/v1:Deployment::d", "type": "kubernetes:apps/v1:Deployment",
            "inputs": {"metadata": {"name": "d"}, "spec": {"replicas": "three", "template": {"spec": {"containers": [{"image": "x:1"}]}}}}}),
        Some("prod"),
    );
    assert!(
        msg.contains("inputs.spec.replicas") && msg.contains("expected a number"),
        "{msg}"
    );

    let msg = export_error(
        serde_json::json!({"urn": "urn:pulumi:p::s::kubernetes:apps/v1:Deployment::d", "type": "kubernetes:apps/v1:Deployment",
            "inputs": {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}}}),
        None,
    );
    assert!(
        msg.contains("fleet-environment") && msg.contains("missing"),
        "{msg}"
    );

    let bytes = br#"{"version": 2, "deployment": {"resources": []}}"#;
    let msg = pulumi::parse_export(Path::new("stack.json"), bytes, None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("stack.json: version: 2"), "{msg}");
}
