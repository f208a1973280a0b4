//! The committed JSON Schemas in `docs/schemas/` must be what the types generate.
//! Regenerate with `FLEET_UPDATE_SCHEMAS=1 cargo test -p fleet-envelope --test schemas`.

use std::path::PathBuf;

use fleet_envelope::EventType;
use fleet_envelope::schema::{schema_files, schema_for};

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = schema_dir();
    let update = std::env::var("FLEET_UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, text) in schema_files() {
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schemas is stale for {stale:?}: run FLEET_UPDATE_SCHEMAS=1 cargo test -p fleet-envelope --test schemas"
    );
}

#[test]
fn no_schema_file_is_left_over_from_a_removed_type() {
    let expected: Vec<String> = schema_files().into_iter().map(|(n, _)| n).collect();
    let entries = std::fs::read_dir(schema_dir()).unwrap_or_else(|e| panic!("docs/schemas: {e}"));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            expected.contains(&name),
            "docs/schemas/{name} belongs to no event type"
        );
    }
}

#[test]
fn schemas_pin_type_and_version_and_describe_the_payload() {
    for t in EventType::ALL {
        let s = schema_for(t);
        assert_eq!(s["properties"]["eventType"]["const"], t.as_str());
        assert_eq!(s["properties"]["eventVersion"]["const"], 1);
        assert_eq!(s["properties"]["data"]["type"], "object", "{t}");
        assert!(
            s["properties"]["data"]["required"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{t}"
        );
    }
    let s = schema_for(EventType::RuntimeDeploymentRequested);
    let replicas = &s["properties"]["data"]["properties"]["replicas"];
    assert_eq!(
        (replicas["type"].as_str(), replicas["minimum"].as_u64()),
        (Some("integer"), Some(0))
    );
}
