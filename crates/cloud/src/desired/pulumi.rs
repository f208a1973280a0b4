//! Desired state from a Pulumi stack export (`pulumi stack export`, deployment version 3).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::limits::{MAX_REPLICAS, check_image, check_name};
use super::{DesiredSource, DesiredState, Limits};
use crate::{CloudError, PlatformKind, Scope, ServiceSpec};

/// Resource type of a Container App.
pub const TYPE_CONTAINER_APP: &str = "azure-native:app:ContainerApp";
/// Resource type of an App Service or Functions site (told apart by `kind`).
pub const TYPE_WEB_APP: &str = "azure-native:web:WebApp";
/// Resource type of a Kubernetes Deployment (on AKS).
pub const TYPE_K8S_DEPLOYMENT: &str = "kubernetes:apps/v1:Deployment";

/// Tag (ARM) or label (Kubernetes) naming the environment of a resource.
pub const TAG_ENVIRONMENT: &str = "fleet-environment";
/// Tag or label overriding the service id (defaults to the resource name).
pub const TAG_SERVICE: &str = "fleet-service";
/// Tag or label naming the configuration the service carries.
pub const TAG_CONFIGURATION_ID: &str = "fleet-configuration-id";
/// Tag or label with the configuration version (an integer ≥ 1).
pub const TAG_CONFIG_VERSION: &str = "fleet-config-version";

#[derive(Debug, Deserialize)]
struct Export {
    version: u32,
    deployment: Deployment,
}

#[derive(Debug, Deserialize)]
struct Deployment {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    urn: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    inputs: Value,
    #[serde(default)]
    outputs: Value,
    /// Pulumi keeps resources pending deletion in the export with `delete: true`.
    #[serde(default)]
    delete: bool,
}

/// Reads a Pulumi stack export file. Resources of the mapped types become services; every other
/// resource (resource groups, registries, providers…) is ignored. See `docs/desired-state.md`.
#[derive(Debug, Clone)]
pub struct PulumiExport {
    path: PathBuf,
    stack_environment: Option<String>,
    limits: Limits,
}

impl PulumiExport {
    /// A reader of the export at `path`. Resources without a `fleet-environment` tag belong to
    /// `stack_environment` (a stack usually deploys one environment); without either they are
    /// an error.
    pub fn new(path: impl Into<PathBuf>, stack_environment: Option<String>) -> Self {
        PulumiExport {
            path: path.into(),
            stack_environment,
            limits: Limits::default(),
        }
    }

    /// Replaces the input bounds.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Reads every mapped resource (all environments), ordered by (environment, id).
    pub fn read_all(&self) -> Result<Vec<ServiceSpec>, CloudError> {
        let shown = self.path.display();
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| CloudError::transient(format!("{shown}: cannot stat")).with_source(e))?;
        if meta.len() > self.limits.max_export_bytes {
            return Err(CloudError::invalid(format!(
                "{shown}: file is {} bytes, over the limit of {} bytes",
                meta.len(),
                self.limits.max_export_bytes
            )));
        }
        let bytes = std::fs::read(&self.path)
            .map_err(|e| CloudError::transient(format!("{shown}: cannot read")).with_source(e))?;
        parse_export(
            &self.path,
            &bytes,
            self.stack_environment.as_deref(),
            &self.limits,
        )
    }
}

#[async_trait]
impl DesiredState for PulumiExport {
    fn source(&self) -> DesiredSource {
        DesiredSource::Pulumi
    }

    async fn read(&self, scope: &Scope) -> Result<Vec<ServiceSpec>, CloudError> {
        let reader = self.clone();
        let env = scope.environment_id.clone();
        let all = tokio::task::spawn_blocking(move || reader.read_all())
            .await
            .map_err(|e| {
                CloudError::transient("the Pulumi export reader task failed").with_source(e)
            })??;
        Ok(all
            .into_iter()
            .filter(|s| s.environment_id == env)
            .collect())
    }
}

/// Parses export `bytes` (read from `path`, used in messages) into specs.
pub fn parse_export(
    path: &Path,
    bytes: &[u8],
    stack_environment: Option<&str>,
    limits: &Limits,
) -> Result<Vec<ServiceSpec>, CloudError> {
    let shown = path.display();
    let export: Export =
        serde_json::from_slice(bytes).map_err(|e| CloudError::invalid(format!("{shown}: {e}")))?;
    if export.version != 3 {
        return Err(CloudError::invalid(format!(
            "{shown}: version: {} is not supported (expected 3)",
            export.version
        )));
    }
    let resources = export.deployment.resources;
    if resources.len() > limits.max_resources {
        return Err(CloudError::invalid(format!(
            "{shown}: deployment.resources: {} resources, over the limit of {}",
            resources.len(),
            limits.max_resources
        )));
    }
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut specs = Vec::new();
    for r in resources.iter().filter(|r| !r.delete) {
        let Some(spec) = map_resource(r, stack_environment).map_err(|(field, why)| {
            CloudError::invalid(format!(
                "{shown}: resource {} ({}): {field}: {why}",
                r.urn, r.ty
            ))
        })?
        else {
            continue;
        };
        let key = (spec.environment_id.clone(), spec.id.clone());
        if let Some(first) = seen.insert(key, r.urn.clone()) {
            return Err(CloudError::invalid(format!(
                "{shown}: resource {}: service {:?} of environment {:?} is already declared by {first}",
                r.urn, spec.id, spec.environment_id
            )));
        }
        specs.push(spec);
    }
    specs.sort_by(|a, b| (&a.environment_id, &a.id).cmp(&(&b.environment_id, &b.id)));
    Ok(specs)
}

type FieldErr = (String, String);

/// Looks `pointer` up in the inputs (the desired values), then in the outputs.
fn field<'a>(r: &'a Resource, pointer: &str) -> Option<(&'a Value, &'static str)> {
    r.inputs
        .pointer(pointer)
        .map(|v| (v, "inputs"))
        .or_else(|| r.outputs.pointer(pointer).map(|v| (v, "outputs")))
}

fn dotted(pointer: &str) -> String {
    let mut out = String::from("inputs");
    for seg in pointer.split('/').skip(1) {
        if seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            out.push('.');
            out.push_str(seg);
        }
    }
    out
}

fn string_at(r: &Resource, pointer: &str) -> Result<Option<String>, FieldErr> {
    match field(r, pointer) {
        None | Some((Value::Null, _)) => Ok(None),
        Some((Value::String(s), _)) => Ok(Some(s.clone())),
        Some((other, side)) => Err((
            dotted(pointer).replacen("inputs", side, 1),
            format!("expected a string, found {}", json_kind(other)),
        )),
    }
}

fn count_at(r: &Resource, pointer: &str) -> Result<Option<u32>, FieldErr> {
    match field(r, pointer) {
        None | Some((Value::Null, _)) => Ok(None),
        Some((Value::Number(n), side)) => {
            let v = n
                .as_u64()
                .filter(|v| *v <= u64::from(MAX_REPLICAS))
                .ok_or_else(|| {
                    (
                        dotted(pointer).replacen("inputs", side, 1),
                        format!("{n} is not a count from 0 to {MAX_REPLICAS}"),
                    )
                })?;
            Ok(Some(v as u32))
        }
        Some((other, side)) => Err((
            dotted(pointer).replacen("inputs", side, 1),
            format!("expected a number, found {}", json_kind(other)),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        // Pulumi secrets are objects ({"4dabf18193072939515e22adb298388d": ..., "ciphertext": ...}).
        Value::Object(_) => "an object",
    }
}

fn tags_at(r: &Resource, pointer: &str) -> Result<BTreeMap<String, String>, FieldErr> {
    match field(r, pointer) {
        None | Some((Value::Null, _)) => Ok(BTreeMap::new()),
        Some((Value::Object(map), side)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err((
                    format!("{}.{k}", dotted(pointer).replacen("inputs", side, 1)),
                    format!("expected a string, found {}", json_kind(other)),
                )),
            })
            .collect(),
        Some((other, side)) => Err((
            dotted(pointer).replacen("inputs", side, 1),
            format!("expected an object, found {}", json_kind(other)),
        )),
    }
}

fn urn_name(urn: &str) -> &str {
    urn.rsplit("::").next().unwrap_or(urn)
}

fn map_resource(
    r: &Resource,
    stack_environment: Option<&str>,
) -> Result<Option<ServiceSpec>, FieldErr> {
    let (platform, name, image, replicas, tags, tags_ptr) = match r.ty.as_str() {
        TYPE_CONTAINER_APP => {
            let name = string_at(r, "/containerAppName")?.or(string_at(r, "/name")?);
            let image = string_at(r, "/template/containers/0/image")?
                .ok_or_else(|| (dotted("/template/containers/0/image"), "missing".to_owned()))?;
            let replicas = count_at(r, "/template/scale/minReplicas")?.unwrap_or(1);
            (
                PlatformKind::ContainerApps,
                name,
                image,
                replicas,
                tags_at(r, "/tags")?,
                "/tags",
            )
        }
        TYPE_WEB_APP => {
            let kind = string_at(r, "/kind")?
                .unwrap_or_default()
                .to_ascii_lowercase();
            let platform = if kind.contains("functionapp") {
                PlatformKind::Functions
            } else {
                PlatformKind::AppService
            };
            let name = string_at(r, "/name")?;
            let fx = string_at(r, "/siteConfig/linuxFxVersion")?
                .ok_or_else(|| (dotted("/siteConfig/linuxFxVersion"), "missing".to_owned()))?;
            // "DOCKER|registry/repo:tag" is how App Service names a container image.
            let image = match fx.split_once('|') {
                Some((scheme, image)) if scheme.eq_ignore_ascii_case("docker") => image.to_owned(),
                _ => {
                    return Err((
                        dotted("/siteConfig/linuxFxVersion"),
                        format!("{fx:?} is not a container image (expected \"DOCKER|<image>\")"),
                    ));
                }
            };
            let replicas = count_at(r, "/siteConfig/numberOfWorkers")?.unwrap_or(1);
            (
                platform,
                name,
                image,
                replicas,
                tags_at(r, "/tags")?,
                "/tags",
            )
        }
        TYPE_K8S_DEPLOYMENT => {
            let name = string_at(r, "/metadata/name")?;
            let image =
                string_at(r, "/spec/template/spec/containers/0/image")?.ok_or_else(|| {
                    (
                        dotted("/spec/template/spec/containers/0/image"),
                        "missing".to_owned(),
                    )
                })?;
            let replicas = count_at(r, "/spec/replicas")?.unwrap_or(1);
            (
                PlatformKind::Aks,
                name,
                image,
                replicas,
                tags_at(r, "/metadata/labels")?,
                "/metadata/labels",
            )
        }
        _ => return Ok(None),
    };
    let tag_field = |tag: &str| format!("{}.{tag}", dotted(tags_ptr));
    let id = tags
        .get(TAG_SERVICE)
        .cloned()
        .or(name)
        .unwrap_or_else(|| urn_name(&r.urn).to_owned());
    check_name(&id).map_err(|e| {
        (
            "service name (fleet-service tag or resource name)".to_owned(),
            e,
        )
    })?;
    let environment = tags
        .get(TAG_ENVIRONMENT)
        .cloned()
        .or_else(|| stack_environment.map(str::to_owned))
        .ok_or_else(|| {
            (
                tag_field(TAG_ENVIRONMENT),
                "missing, and the reader has no stack environment".to_owned(),
            )
        })?;
    check_name(&environment).map_err(|e| (tag_field(TAG_ENVIRONMENT), e))?;
    check_image(&image).map_err(|e| ("image".to_owned(), e))?;
    let configuration_id = tags.get(TAG_CONFIGURATION_ID).cloned();
    let config_version = match tags.get(TAG_CONFIG_VERSION) {
        None => None,
        Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
            (
                tag_field(TAG_CONFIG_VERSION),
                format!("{v:?} is not a version number (an integer >= 1)"),
            )
        })?),
    };
    if config_version.is_some() && configuration_id.is_none() {
        return Err((
            tag_field(TAG_CONFIGURATION_ID),
            "required when fleet-config-version is set".to_owned(),
        ));
    }
    let labels = tags
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fleet-"))
        .collect();
    Ok(Some(ServiceSpec {
        id,
        environment_id: environment,
        platform,
        image,
        replicas,
        configuration_id,
        config_version,
        secret_bindings: BTreeMap::new(),
        labels,
    }))
}
