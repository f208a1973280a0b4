//! Shared Access Signature validation for `$cbs` put-token.
//!
//! A token reads `SharedAccessSignature sr=<uri>&sig=<sig>&se=<expiry>&skn=<keyname>` (fields in
//! any order, values URL-encoded). `sig` is base64 of HMAC-SHA256, keyed with the key's text,
//! over `<sr as URL-encoded in the token>\n<se>`.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use crate::address;

/// A named shared access key the listener accepts tokens from. `Debug` never shows the key.
#[derive(Clone)]
pub struct SasKey {
    name: String,
    key: String,
}

impl SasKey {
    /// A key called `name` (the `SharedAccessKeyName`) with secret `key`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for SasKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Checks `token` against `keys` for a put-token naming `audience`; `now` in Unix seconds.
/// The error says why without echoing the signature.
pub(crate) fn validate(
    token: &str,
    audience: &str,
    keys: &[SasKey],
    now: i64,
) -> Result<(), String> {
    let fields = token
        .strip_prefix("SharedAccessSignature ")
        .ok_or_else(|| "the token is not a SharedAccessSignature".to_owned())?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for pair in fields.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sr" => sr = Some(value),
            "sig" => sig = Some(value),
            "se" => se = Some(value),
            "skn" => skn = Some(value),
            _ => {}
        }
    }
    let missing = |field: &str| format!("the token has no {field} field");
    let sr_raw = sr.ok_or_else(|| missing("sr"))?;
    let sig = sig.ok_or_else(|| missing("sig"))?;
    let se = se.ok_or_else(|| missing("se"))?;
    let skn = decode(skn.ok_or_else(|| missing("skn"))?);

    let key = keys
        .iter()
        .find(|k| k.name == skn)
        .ok_or_else(|| format!("unknown key name \"{skn}\""))?;
    let expiry: i64 = se
        .parse()
        .map_err(|_| format!("expiry \"{se}\" is not a Unix time"))?;
    if expiry <= now {
        return Err(format!("the token expired at {expiry}"));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode(sig))
        .map_err(|_| "the signature is not base64".to_owned())?;

    let resource = decode(sr_raw);
    // Clients differ in how they escape `sr`; accept the signature over the form in the token
    // or over the canonical escaping of its decoded value.
    let canonical = utf8_percent_encode(&resource, NON_ALPHANUMERIC).to_string();
    let signed = [
        sr_raw,
        canonical.as_str(),
        canonical.to_ascii_lowercase().as_str(),
    ]
    .iter()
    .any(|form| verify(&key.key, &format!("{form}\n{se}"), &signature));
    if !signed {
        return Err(format!("the signature does not match key \"{skn}\""));
    }
    let scope = address::key(&resource);
    let target = address::key(audience);
    if !(scope.is_empty() || target == scope || target.starts_with(&format!("{scope}/"))) {
        return Err(format!(
            "the token's resource \"{resource}\" does not cover \"{audience}\""
        ));
    }
    Ok(())
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

fn verify(key: &str, text: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(text.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// Builds a token the way Service Bus clients do (tests and tooling use it).
pub fn sign_token(resource: &str, key_name: &str, key: &str, expiry: i64) -> String {
    let sr = utf8_percent_encode(resource, NON_ALPHANUMERIC).to_string();
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{sr}\n{expiry}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = utf8_percent_encode(&sig, NON_ALPHANUMERIC);
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={key_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<SasKey> {
        vec![SasKey::new("k", "secret")]
    }

    #[test]
    fn a_signed_token_is_accepted_for_its_entity_and_below() {
        let token = sign_token("sb://ns/q1", "k", "secret", 2_000);
        assert_eq!(validate(&token, "amqp://ns/q1", &keys(), 1_000), Ok(()));
        assert_eq!(validate(&token, "q1/$management", &keys(), 1_000), Ok(()));
        let err = validate(&token, "q2", &keys(), 1_000).unwrap_err();
        assert!(err.contains("does not cover"), "{err}");
    }

    #[test]
    fn a_wrong_key_is_refused_naming_the_key_name() {
        let token = sign_token("sb://ns/q1", "k", "not-the-secret", 2_000);
        let err = validate(&token, "q1", &keys(), 1_000).unwrap_err();
        assert!(err.contains("does not match key \"k\""), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn expired_and_unknown_keys_are_refused() {
        let token = sign_token("sb://ns/q1", "k", "secret", 500);
        assert!(
            validate(&token, "q1", &keys(), 1_000)
                .unwrap_err()
                .contains("expired")
        );
        let token = sign_token("sb://ns/q1", "other", "secret", 2_000);
        assert!(
            validate(&token, "q1", &keys(), 1_000)
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(validate("Bearer x", "q1", &keys(), 1_000).is_err());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let text = format!("{:?}", SasKey::new("k", "topsecret"));
        assert!(!text.contains("topsecret"), "{text}");
    }
}
