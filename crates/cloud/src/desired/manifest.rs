//! Desired state from a directory of manifests (a checked-out Git repository).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;

use super::limits::{MAX_REPLICAS, check_image, check_name};
use super::{DesiredSource, DesiredState, Limits};
use crate::{CloudError, PlatformKind, Scope, ServiceSpec};

/// The `apiVersion` this reader understands.
pub const API_VERSION: &str = "fleet/v1";
/// The `kind` of a service manifest.
pub const KIND_SERVICE: &str = "Service";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    environment: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    platform: String,
    image: String,
    #[serde(default = "one")]
    replicas: u32,
    #[serde(default)]
    configuration_id: Option<String>,
    #[serde(default)]
    config_version: Option<u64>,
    #[serde(default)]
    secret_bindings: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// Reads `*.yaml`, `*.yml` and `*.json` manifests (one service each) below a directory,
/// skipping hidden entries such as `.git`. See `docs/desired-state.md` for the format.
#[derive(Debug, Clone)]
pub struct ManifestDir {
    root: PathBuf,
    limits: Limits,
}

impl ManifestDir {
    /// A reader of the manifests below `root` with default [`Limits`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ManifestDir {
            root: root.into(),
            limits: Limits::default(),
        }
    }

    /// Replaces the input bounds.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Reads every manifest (all environments), ordered by (environment, id).
    pub fn read_all(&self) -> Result<Vec<ServiceSpec>, CloudError> {
        let mut files = Vec::new();
        collect(&self.root, 0, &self.limits, &mut files)?;
        files.sort();
        let mut seen: HashMap<(String, String), PathBuf> = HashMap::new();
        let mut specs = Vec::with_capacity(files.len());
        for file in files {
            let spec = parse_file(&file, &self.limits)?;
            let key = (spec.environment_id.clone(), spec.id.clone());
            if let Some(first) = seen.get(&key) {
                return Err(CloudError::invalid(format!(
                    "{}: metadata.name: service {:?} of environment {:?} is already declared in {}",
                    file.display(),
                    spec.id,
                    spec.environment_id,
                    first.display()
                )));
            }
            seen.insert(key, file);
            specs.push(spec);
        }
        specs.sort_by(|a, b| (&a.environment_id, &a.id).cmp(&(&b.environment_id, &b.id)));
        Ok(specs)
    }
}

#[async_trait]
impl DesiredState for ManifestDir {
    fn source(&self) -> DesiredSource {
        DesiredSource::Git
    }

    async fn read(&self, scope: &Scope) -> Result<Vec<ServiceSpec>, CloudError> {
        let reader = self.clone();
        let env = scope.environment_id.clone();
        let all = tokio::task::spawn_blocking(move || reader.read_all())
            .await
            .map_err(|e| {
                CloudError::transient("the manifest reader task failed").with_source(e)
            })??;
        Ok(all
            .into_iter()
            .filter(|s| s.environment_id == env)
            .collect())
    }
}

fn collect(
    dir: &Path,
    depth: usize,
    limits: &Limits,
    out: &mut Vec<PathBuf>,
) -> Result<(), CloudError> {
    let entries = fs::read_dir(dir).map_err(|e| {
        CloudError::transient(format!("{}: cannot read directory", dir.display())).with_source(e)
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| {
            CloudError::transient(format!("{}: cannot list entry", dir.display())).with_source(e)
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| {
            CloudError::transient(format!("{}: cannot stat", path.display())).with_source(e)
        })?;
        // Symlinks are not followed: a link could leave the checkout or loop.
        if file_type.is_dir() {
            if depth >= limits.max_depth {
                return Err(CloudError::invalid(format!(
                    "{}: directory nesting exceeds the limit of {} levels",
                    path.display(),
                    limits.max_depth
                )));
            }
            collect(&path, depth + 1, limits, out)?;
        } else if file_type.is_file() && is_manifest(&path) {
            if out.len() >= limits.max_files {
                return Err(CloudError::invalid(format!(
                    "{}: more than {} manifest files",
                    dir.display(),
                    limits.max_files
                )));
            }
            out.push(path);
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Parses one manifest file into a spec; every error names the file and the field.
pub fn parse_file(path: &Path, limits: &Limits) -> Result<ServiceSpec, CloudError> {
    let shown = path.display();
    let meta = fs::metadata(path)
        .map_err(|e| CloudError::transient(format!("{shown}: cannot stat")).with_source(e))?;
    if meta.len() > limits.max_file_bytes {
        return Err(CloudError::invalid(format!(
            "{shown}: file is {} bytes, over the limit of {} bytes",
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let bytes = fs::read(path)
        .map_err(|e| CloudError::transient(format!("{shown}: cannot read")).with_source(e))?;
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let manifest: Manifest = if is_json {
        serde_json::from_slice(&bytes).map_err(|e| CloudError::invalid(format!("{shown}: {e}")))?
    } else {
        serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| CloudError::invalid(format!("{shown}: {e}")))?
    };
    to_spec(manifest)
        .map_err(|(field, why)| CloudError::invalid(format!("{shown}: {field}: {why}")))
}

fn to_spec(m: Manifest) -> Result<ServiceSpec, (&'static str, String)> {
    if m.api_version != API_VERSION {
        return Err((
            "apiVersion",
            format!(
                "{:?} is not supported (expected {API_VERSION:?})",
                m.api_version
            ),
        ));
    }
    if m.kind != KIND_SERVICE {
        return Err((
            "kind",
            format!("{:?} is not supported (expected {KIND_SERVICE:?})", m.kind),
        ));
    }
    check_name(&m.metadata.name).map_err(|e| ("metadata.name", e))?;
    check_name(&m.metadata.environment).map_err(|e| ("metadata.environment", e))?;
    let platform: PlatformKind = m
        .spec
        .platform
        .parse()
        .map_err(|e: CloudError| ("spec.platform", e.message().to_owned()))?;
    check_image(&m.spec.image).map_err(|e| ("spec.image", e))?;
    if m.spec.replicas > MAX_REPLICAS {
        return Err((
            "spec.replicas",
            format!("{} is over the limit of {MAX_REPLICAS}", m.spec.replicas),
        ));
    }
    if m.spec.config_version.is_some() && m.spec.configuration_id.is_none() {
        return Err((
            "spec.configurationId",
            "required when configVersion is set".to_owned(),
        ));
    }
    if m.spec.config_version == Some(0) {
        return Err(("spec.configVersion", "must be at least 1".to_owned()));
    }
    if let Some(id) = m.spec.secret_bindings.keys().find(|k| k.is_empty()) {
        return Err((
            "spec.secretBindings",
            format!("binding id {id:?} must not be empty"),
        ));
    }
    Ok(ServiceSpec {
        id: m.metadata.name,
        environment_id: m.metadata.environment,
        platform,
        image: m.spec.image,
        replicas: m.spec.replicas,
        configuration_id: m.spec.configuration_id,
        config_version: m.spec.config_version,
        secret_bindings: m.spec.secret_bindings,
        labels: m.metadata.labels,
    })
}

/// Renders `spec` as a YAML manifest in the format [`ManifestDir`] reads (used to write a
/// desired-state directory that matches a running environment).
pub fn to_yaml(spec: &ServiceSpec) -> String {
    let mut out = format!(
        "apiVersion: {API_VERSION}\nkind: {KIND_SERVICE}\nmetadata:\n  name: {}\n  environment: {}\n",
        spec.id, spec.environment_id
    );
    if !spec.labels.is_empty() {
        out.push_str("  labels:\n");
        for (k, v) in &spec.labels {
            out.push_str(&format!("    {}: {}\n", quote(k), quote(v)));
        }
    }
    out.push_str(&format!(
        "spec:\n  platform: {}\n  image: {}\n  replicas: {}\n",
        spec.platform,
        quote(&spec.image),
        spec.replicas
    ));
    if let Some(c) = &spec.configuration_id {
        out.push_str(&format!("  configurationId: {}\n", quote(c)));
    }
    if let Some(v) = spec.config_version {
        out.push_str(&format!("  configVersion: {v}\n"));
    }
    if !spec.secret_bindings.is_empty() {
        out.push_str("  secretBindings:\n");
        for (k, v) in &spec.secret_bindings {
            out.push_str(&format!("    {}: {}\n", quote(k), quote(v)));
        }
    }
    out
}

/// A JSON string is a valid YAML double-quoted scalar, and it escapes everything YAML would
/// otherwise interpret (`:`, `#`, leading `*`…).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}
