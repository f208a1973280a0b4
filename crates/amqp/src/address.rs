//! Link addresses: what node a client attaches to.
//!
//! Clients send `amqp://HOST/q1`, `amqps://HOST/t1/Subscriptions/s1`, `q1/$management` or
//! `$cbs`. The scheme and host are stripped; entity names are matched case-insensitively by
//! the backend, and compared lower-cased here (authorisation, reply routing).

use fleet_bus::EntityPath;

/// The CBS node name.
pub(crate) const CBS: &str = "$cbs";
/// Suffix of an entity's management node.
pub(crate) const MANAGEMENT: &str = "$management";

/// What an address designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// The claims-based-security node.
    Cbs,
    /// An entity's management node.
    Management(EntityPath),
    /// A queue, topic, subscription or dead-letter subqueue.
    Entity(EntityPath),
}

/// Strips `scheme://host/` and surrounding slashes.
pub(crate) fn normalise(address: &str) -> &str {
    let path = match address.find("://") {
        Some(at) => {
            let after = &address[at + 3..];
            match after.find('/') {
                Some(slash) => &after[slash..],
                None => "",
            }
        }
        None => address,
    };
    path.trim_matches('/')
}

/// The lower-cased normalised form, for comparisons.
pub(crate) fn key(address: &str) -> String {
    normalise(address).to_ascii_lowercase()
}

/// Classifies an address; the error text names the address.
pub(crate) fn parse(address: &str) -> Result<Node, String> {
    let path = normalise(address);
    if path.eq_ignore_ascii_case(CBS) {
        return Ok(Node::Cbs);
    }
    if let Some(entity) = strip_suffix_ignore_case(path, MANAGEMENT) {
        let entity = entity.trim_end_matches('/');
        return EntityPath::parse(entity)
            .map(Node::Management)
            .map_err(|err| err.message().to_owned());
    }
    EntityPath::parse(path)
        .map(Node::Entity)
        .map_err(|err| err.message().to_owned())
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    let (head, tail) = (text.get(..split)?, text.get(split..)?);
    (tail.eq_ignore_ascii_case(suffix) && (head.is_empty() || head.ends_with('/'))).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_and_host_are_stripped() {
        assert_eq!(normalise("amqp://127.0.0.1/q1"), "q1");
        assert_eq!(
            normalise("amqps://ns.example/t1/Subscriptions/s1"),
            "t1/Subscriptions/s1"
        );
        assert_eq!(normalise("sb://ns.example"), "");
        assert_eq!(normalise("q1/$management"), "q1/$management");
    }

    #[test]
    fn nodes_are_classified() {
        assert_eq!(parse("$cbs"), Ok(Node::Cbs));
        assert_eq!(
            parse("amqp://h/q1/$DeadLetterQueue"),
            Ok(Node::Entity(EntityPath::queue("q1").dead_letter()))
        );
        assert_eq!(
            parse("t1/subscriptions/s1/$MANAGEMENT"),
            Ok(Node::Management(EntityPath::subscription("t1", "s1")))
        );
        assert_eq!(
            parse("q1/$DeadLetterQueue/$management"),
            Ok(Node::Management(EntityPath::queue("q1").dead_letter()))
        );
    }

    #[test]
    fn malformed_addresses_name_themselves() {
        let err = parse("amqp://h/a/b").unwrap_err();
        assert!(err.contains("a/b"), "{err}");
    }
}
