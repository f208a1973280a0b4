//! The `DesiredState` port and its two readers: a directory of manifests (a Git checkout) and a
//! Pulumi stack export. The formats are documented in `docs/desired-state.md`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{CloudError, Scope, ServiceSpec};

/// Where desired state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DesiredSource {
    /// Manifests in a Git repository.
    Git,
    /// A Pulumi stack export.
    Pulumi,
}

/// Reads the desired services of an environment.
#[async_trait]
pub trait DesiredState: Send + Sync {
    /// Which kind of source this is (recorded on drift findings).
    fn source(&self) -> DesiredSource;

    /// The desired services of `scope.environment_id`, ordered by id.
    ///
    /// Bad input is [`Invalid`](crate::CloudErrorKind::Invalid) with a message naming the file
    /// (or resource) and the field; an unreadable source is
    /// [`Transient`](crate::CloudErrorKind::Transient).
    async fn read(&self, scope: &Scope) -> Result<Vec<ServiceSpec>, CloudError>;
}

mod limits;
pub mod manifest;
pub mod pulumi;

pub use limits::Limits;
pub use manifest::ManifestDir;
pub use pulumi::PulumiExport;
