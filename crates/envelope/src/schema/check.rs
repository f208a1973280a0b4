//! A small validator for the JSON Schema subset the catalog's generated schemas use.
//!
//! Checking `data` against the same schema that is published in `docs/schemas/` keeps the
//! published contract and the enforced one identical, and, unlike serde, reports every broken
//! rule with its path instead of stopping at the first. Schemas are compiled once into [`Node`]s;
//! a keyword this validator does not know makes compilation fail, and a test compiles every
//! catalog schema, so a new attribute cannot silently go unenforced.

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::parse::Path;
use crate::rules;

pub(super) const NULL: u8 = 1;
pub(super) const BOOLEAN: u8 = 2;
pub(super) const INTEGER: u8 = 4;
pub(super) const NUMBER: u8 = 8;
pub(super) const STRING: u8 = 16;
pub(super) const ARRAY: u8 = 32;
pub(super) const OBJECT: u8 = 64;

/// A compiled schema.
#[derive(Debug)]
pub(crate) enum Node {
    /// `true`: anything.
    Any,
    /// Keyword checks on one value.
    Checks(Box<Checks>),
    /// Every part must hold (a `$ref` with sibling keywords).
    All(Vec<Node>),
    /// At least one branch must hold (`anyOf`, and `oneOf` whose branches cannot overlap).
    AnyOf(Vec<Node>),
}

pub(super) type StrRule = fn(&str) -> Result<(), String>;

/// The checks of one schema object.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    pub(super) types: u8,
    pub(super) enum_values: Option<Vec<Value>>,
    pub(super) min_len: Option<usize>,
    pub(super) max_len: Option<usize>,
    pub(super) string_rule: Option<StrRule>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) items: Option<Node>,
    pub(super) min_items: Option<usize>,
    pub(super) properties: Vec<(String, Node)>,
    pub(super) required: Vec<String>,
    /// Bit i set: `properties[i]` is required. Lets an object be checked in one pass over its
    /// members without a hash lookup per property.
    pub(super) required_mask: u64,
    pub(super) additional: Option<Node>,
}

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
];

/// Compiles `schema`, resolving `#/$defs/...` references against `defs`.
pub(crate) fn compile(schema: &Value, defs: &Map<String, Value>) -> Result<Node, String> {
    compile_at(schema, defs, 0)
}

fn compile_at(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Result<Node, String> {
    if depth > 32 {
        return Err("schema nests or recurses too deeply".to_owned());
    }
    let obj = match schema {
        Value::Bool(true) => return Ok(Node::Any),
        Value::Object(o) => o,
        other => return Err(format!("unsupported schema {other}")),
    };
    let mut parts = Vec::new();
    let mut checks = Checks::default();
    let mut has_checks = false;
    for (key, v) in obj {
        match key.as_str() {
            k if ANNOTATIONS.contains(&k) => continue,
            "$ref" => {
                let name = v
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .ok_or_else(|| format!("unsupported $ref {v}"))?;
                let target = defs
                    .get(name)
                    .ok_or_else(|| format!("unresolved $ref {name}"))?;
                parts.push(compile_at(target, defs, depth + 1)?);
                continue;
            }
            "anyOf" | "oneOf" => {
                parts.push(compile_branches(v, defs, depth)?);
                continue;
            }
            "format" => apply_format(&mut checks, v)?,
            "pattern" => checks.string_rule = Some(pattern_rule(v)?),
            _ => apply_keyword(&mut checks, key, v, defs, depth)?,
        }
        has_checks = true;
    }
    if has_checks {
        if checks.properties.len() > 64 {
            return Err("more than 64 properties in one object".to_owned());
        }
        for (i, (name, _)) in checks.properties.iter().enumerate() {
            if checks.required.contains(name) {
                checks.required_mask |= 1 << i;
            }
        }
        let props = &checks.properties;
        checks
            .required
            .retain(|r| !props.iter().any(|(name, _)| name == r));
        parts.insert(0, Node::Checks(Box::new(checks)));
    }
    Ok(match parts.len() {
        0 => Node::Any,
        1 => parts.pop().unwrap_or(Node::Any),
        _ => Node::All(parts),
    })
}

fn compile_branches(v: &Value, defs: &Map<String, Value>, depth: usize) -> Result<Node, String> {
    let branches = v.as_array().ok_or("anyOf/oneOf must be an array")?;
    // A documented unit-variant enum comes out as oneOf [{const}, ...]: fold it into one enum
    // check so the error lists the allowed names.
    let consts: Option<Vec<Value>> = branches.iter().map(|b| b.get("const").cloned()).collect();
    if let Some(values) = consts
        && values.iter().all(Value::is_string)
    {
        return Ok(Node::Checks(Box::new(Checks {
            types: STRING,
            enum_values: Some(values),
            ..Checks::default()
        })));
    }
    let nodes = branches
        .iter()
        .map(|b| compile_at(b, defs, depth + 1))
        .collect::<Result<_, _>>()?;
    Ok(Node::AnyOf(nodes))
}

fn apply_keyword(
    c: &mut Checks,
    key: &str,
    v: &Value,
    defs: &Map<String, Value>,
    depth: usize,
) -> Result<(), String> {
    let as_usize = |v: &Value| {
        v.as_u64()
            .map(|n| n as usize)
            .ok_or(format!("{key} must be an integer"))
    };
    match key {
        "type" => c.types = type_mask(v)?,
        "enum" => c.enum_values = Some(v.as_array().ok_or("enum must be an array")?.clone()),
        "const" => c.enum_values = Some(vec![v.clone()]),
        "minLength" => c.min_len = Some(as_usize(v)?),
        "maxLength" => c.max_len = Some(as_usize(v)?),
        "minimum" => c.min = Some(v.as_f64().ok_or("minimum must be a number")?),
        "maximum" => c.max = Some(v.as_f64().ok_or("maximum must be a number")?),
        "minItems" => c.min_items = Some(as_usize(v)?),
        "items" => c.items = Some(compile_at(v, defs, depth + 1)?),
        "required" => {
            let names = v.as_array().ok_or("required must be an array")?;
            c.required = names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        "properties" => {
            let props = v.as_object().ok_or("properties must be an object")?;
            for (name, s) in props {
                c.properties
                    .push((name.clone(), compile_at(s, defs, depth + 1)?));
            }
        }
        "additionalProperties" => c.additional = Some(compile_at(v, defs, depth + 1)?),
        other => return Err(format!("unsupported schema keyword {other:?}")),
    }
    Ok(())
}

fn type_mask(v: &Value) -> Result<u8, String> {
    let one = |name: &str| match name {
        "null" => Ok(NULL),
        "boolean" => Ok(BOOLEAN),
        "integer" => Ok(INTEGER),
        "number" => Ok(NUMBER | INTEGER),
        "string" => Ok(STRING),
        "array" => Ok(ARRAY),
        "object" => Ok(OBJECT),
        other => Err(format!("unknown type {other:?}")),
    };
    match v {
        Value::String(s) => one(s),
        Value::Array(a) => a
            .iter()
            .try_fold(0, |m, t| Ok(m | one(t.as_str().unwrap_or(""))?)),
        other => Err(format!("unsupported type {other}")),
    }
}

fn apply_format(c: &mut Checks, v: &Value) -> Result<(), String> {
    let (min, max): (f64, f64) = match v.as_str().unwrap_or("") {
        "date-time" => {
            c.string_rule = Some(|s| rules::timestamp(s).map(|_| ()));
            return Ok(());
        }
        "uuid" => {
            c.string_rule = Some(|s| rules::uuid(s).map(|_| ()));
            return Ok(());
        }
        "double" | "float" => return Ok(()),
        "uint8" => (0.0, u8::MAX.into()),
        "uint16" => (0.0, u16::MAX.into()),
        "uint32" => (0.0, u32::MAX.into()),
        "uint64" | "uint" => (0.0, u64::MAX as f64),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" | "int" => (i64::MIN as f64, i64::MAX as f64),
        other => return Err(format!("unsupported format {other:?}")),
    };
    c.min = Some(c.min.map_or(min, |m| m.max(min)));
    c.max = Some(c.max.map_or(max, |m| m.min(max)));
    Ok(())
}

fn pattern_rule(v: &Value) -> Result<StrRule, String> {
    match v.as_str().unwrap_or("") {
        r"^[0-9a-f]{64}$" => Ok(rules::sha256_hex),
        r"^[0-9a-f]{32}$" => Ok(rules::trace_id),
        r"^[0-9a-f]{16}$" => Ok(rules::span_id),
        other => Err(format!(
            "unsupported pattern {other:?}: add it to the pattern table"
        )),
    }
}

/// Checks `value` against `node`, pushing one error per broken rule.
pub(crate) fn check(node: &Node, value: &Value, path: &Path<'_>, errors: &mut Vec<FieldError>) {
    match node {
        Node::Any => {}
        Node::Checks(c) => check_one(c, value, path, errors),
        Node::All(parts) => parts.iter().for_each(|p| check(p, value, path, errors)),
        Node::AnyOf(branches) => {
            let mut scratch = Vec::new();
            let mut best: Option<Vec<FieldError>> = None;
            for b in branches {
                scratch.clear();
                check(b, value, path, &mut scratch);
                if scratch.is_empty() {
                    return;
                }
                // Option<T> is anyOf [T, null]: report T's own errors, which name nested fields.
                if !matches!(b, Node::Checks(c) if c.types == NULL) && best.is_none() {
                    best = Some(std::mem::take(&mut scratch));
                }
            }
            match best {
                Some(errs) => errors.extend(errs),
                None => errors.push(FieldError::new(
                    path.render(),
                    "does not match any allowed form",
                )),
            }
        }
    }
}

fn check_one(c: &Checks, value: &Value, path: &Path<'_>, errors: &mut Vec<FieldError>) {
    let kind = match value {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Number(n) if n.is_f64() => NUMBER,
        Value::Number(_) => INTEGER,
        Value::String(_) => STRING,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
    };
    if c.types != 0 && c.types & kind == 0 {
        errors.push(FieldError::new(
            path.render(),
            format!("{} (got {})", expectation(c), rules::show(value)),
        ));
        return;
    }
    if let Some(allowed) = &c.enum_values
        && !allowed.contains(value)
    {
        errors.push(FieldError::new(
            path.render(),
            format!("{} (got {})", expectation(c), rules::show(value)),
        ));
        return;
    }
    match value {
        Value::String(s) => check_string(c, s, path, errors),
        Value::Number(n) => {
            let (below, above) = out_of_range(c, n);
            let noun = if c.types & NUMBER != 0 {
                "a number"
            } else {
                "an integer"
            };
            if let (true, Some(min)) = (below, c.min) {
                let rule = format!("must be {noun} >= {min} (got {n})");
                errors.push(FieldError::new(path.render(), rule));
            } else if let (true, Some(max)) = (above, c.max) {
                let rule = format!("must be {noun} <= {max} (got {n})");
                errors.push(FieldError::new(path.render(), rule));
            }
        }
        Value::Array(items) => {
            if let Some(min) = c.min_items
                && items.len() < min
            {
                let noun = if min == 1 { "item" } else { "items" };
                errors.push(FieldError::new(
                    path.render(),
                    format!("must have at least {min} {noun}"),
                ));
            }
            if let Some(node) = &c.items {
                for (i, item) in items.iter().enumerate() {
                    check(node, item, &Path::Index(path, i), errors);
                }
            }
        }
        Value::Object(obj) => check_object(c, obj, path, errors),
        Value::Null | Value::Bool(_) => {}
    }
}

/// Whether `n` is below `minimum` and whether it is above `maximum`.
pub(super) fn out_of_range(c: &Checks, n: &serde_json::Number) -> (bool, bool) {
    // i128 holds every JSON integer serde_json produces exactly; floats compare as f64.
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => (
            c.min.is_some_and(|m| i128::from(i) < m as i128),
            c.max.is_some_and(|m| i128::from(i) > m as i128),
        ),
        (None, Some(u), _) => (false, c.max.is_some_and(|m| i128::from(u) > m as i128)),
        (_, _, Some(f)) => (c.min.is_some_and(|m| f < m), c.max.is_some_and(|m| f > m)),
        _ => (false, false),
    }
}

/// Whether `s` keeps the length limits and the string rule (the verdict of [`check_string`]).
pub(super) fn string_ok(c: &Checks, s: &str) -> bool {
    // Characters ≤ bytes, and ≥ 1 for a non-empty string: count only when that could matter.
    let short_enough = c.max_len.is_none_or(|m| s.len() <= m);
    let long_enough = c
        .min_len
        .is_none_or(|m| m == 0 || (m == 1 && !s.is_empty()));
    if !(short_enough && long_enough) {
        let len = s.chars().count();
        if c.min_len.is_some_and(|m| len < m) || c.max_len.is_some_and(|m| len > m) {
            return false;
        }
    }
    c.string_rule.is_none_or(|rule| rule(s).is_ok())
}

fn check_string(c: &Checks, s: &str, path: &Path<'_>, errors: &mut Vec<FieldError>) {
    if c.min_len.is_some() || c.max_len.is_some() {
        let len = s.chars().count();
        if c.min_len == Some(1) && len == 0 {
            errors.push(FieldError::new(path.render(), "must not be empty"));
        } else if let Some(min) = c.min_len.filter(|m| len < *m) {
            errors.push(FieldError::new(
                path.render(),
                format!("must be at least {min} characters"),
            ));
        }
        if let Some(max) = c.max_len.filter(|m| len > *m) {
            errors.push(FieldError::new(
                path.render(),
                format!("must be at most {max} characters"),
            ));
        }
    }
    if let Some(rule) = c.string_rule
        && let Err(msg) = rule(s)
    {
        errors.push(FieldError::new(path.render(), msg));
    }
}

fn check_object(
    c: &Checks,
    obj: &Map<String, Value>,
    path: &Path<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = 0u64;
    for (k, v) in obj {
        match c.properties.iter().position(|(name, _)| name == k) {
            Some(i) => {
                seen |= 1 << i;
                check(&c.properties[i].1, v, &Path::Key(path, k), errors);
            }
            None => {
                if let Some(node) = &c.additional {
                    check(node, v, &Path::Key(path, k), errors);
                }
            }
        }
    }
    let missing = c.required_mask & !seen;
    if missing != 0 {
        for (i, (name, _)) in c.properties.iter().enumerate() {
            if missing & (1 << i) != 0 {
                errors.push(FieldError::new(Path::Key(path, name).render(), "required"));
            }
        }
    }
    // `required` keeps only names that have no schema of their own.
    for name in &c.required {
        if !obj.contains_key(name) {
            errors.push(FieldError::new(Path::Key(path, name).render(), "required"));
        }
    }
}

/// The upper bounds `format` implies for unsigned and signed Rust integers.
const NATURAL_MAXIMA: [f64; 5] = [
    u8::MAX as f64,
    u16::MAX as f64,
    u32::MAX as f64,
    i32::MAX as f64,
    u64::MAX as f64,
];

/// What a value must be, phrased for an error: `must be an integer >= 0`.
fn expectation(c: &Checks) -> String {
    if let Some(values) = &c.enum_values {
        let names: Vec<String> = values.iter().map(rules::show).collect();
        return match names.as_slice() {
            [one] => format!("must be {one}"),
            _ => format!("must be one of {}", names.join(", ")),
        };
    }
    let mut kinds = Vec::new();
    let t = c.types;
    if t & NUMBER != 0 {
        kinds.push("a number".to_owned());
    } else if t & INTEGER != 0 {
        kinds.push(match (c.min, c.max) {
            // A maximum that only restates the Rust type's range is noise in a message.
            (Some(min), Some(max)) if NATURAL_MAXIMA.contains(&max) => {
                format!("an integer >= {min}")
            }
            (Some(min), Some(max)) => format!("an integer between {min} and {max}"),
            (Some(min), None) => format!("an integer >= {min}"),
            (None, Some(max)) => format!("an integer <= {max}"),
            (None, None) => "an integer".to_owned(),
        });
    }
    for (bit, name) in [
        (STRING, "a string"),
        (BOOLEAN, "a boolean"),
        (ARRAY, "an array"),
        (OBJECT, "an object"),
    ] {
        if t & bit != 0 {
            kinds.push(name.to_owned());
        }
    }
    if t & NULL != 0 {
        kinds.push("null".to_owned());
    }
    if kinds.is_empty() {
        return "must be valid".to_owned();
    }
    format!("must be {}", kinds.join(" or "))
}
