//! Bounds applied to desired-state input before it is parsed.

/// How much desired-state input a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest file (bytes).
    pub max_file_bytes: u64,
    /// Most manifest files in one directory tree.
    pub max_files: usize,
    /// Deepest sub-directory nesting walked below the root.
    pub max_depth: usize,
    /// Largest Pulumi stack export (bytes).
    pub max_export_bytes: u64,
    /// Most resources in one Pulumi export.
    pub max_resources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 256 * 1024,
            max_files: 200_000,
            max_depth: 8,
            max_export_bytes: 256 * 1024 * 1024,
            max_resources: 500_000,
        }
    }
}

/// Checks an identifier (service name, environment): 1–63 chars of `[a-z0-9-]`, starting and
/// ending alphanumeric — the strictest of the target platforms' naming rules (Container Apps).
pub(crate) fn check_name(value: &str) -> Result<(), String> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let edges = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if value.is_empty() || value.len() > 63 || !ok_chars || !edges {
        return Err(format!(
            "{value:?} is not a valid name (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// Checks an image reference: non-empty, no whitespace, at most 512 chars.
pub(crate) fn check_image(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 512 || value.chars().any(char::is_whitespace) {
        return Err(format!("{value:?} is not a valid image reference"));
    }
    Ok(())
}

/// Largest replica count accepted from desired state (AKS's per-deployment practical ceiling
/// and far above Container Apps' 300).
pub(crate) const MAX_REPLICAS: u32 = 1000;
