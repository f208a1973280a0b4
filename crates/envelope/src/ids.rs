//! Deterministic event ids, so a re-run of the same work produces the same ids and the inbox and
//! the broker's duplicate detection can drop the repeat.

use chrono::{DateTime, SecondsFormat, Utc};
use sha1::{Digest, Sha1};
use uuid::Uuid;

/// The UUIDv5 namespace of every derived Fleet id. Fixed forever: changing it changes every
/// derived id and breaks dedupe across a deploy.
pub const FLEET_NAMESPACE: Uuid = Uuid::from_u128(0xef81_8b9e_d0da_44d3_ad69_a615_002d_8f35);

/// The id of the `ordinal`-th event (from 0) that `worker` emits while handling event `trigger`.
///
/// UUIDv5 in [`FLEET_NAMESPACE`] of the UTF-8 name
/// `emitted:<trigger, lowercase hyphenated>:<byte length of worker>:<worker>:<ordinal>`.
/// The length prefix keeps names unambiguous whatever characters `worker` holds.
pub fn emitted_event_id(trigger: Uuid, worker: &str, ordinal: u32) -> Uuid {
    // The name is hashed piece by piece, with no string built. `sha1` uses the CPU's SHA
    // instructions where it has them; the result is `Uuid::new_v5`'s, which a test pins.
    let mut hash = Sha1::new();
    hash.update(FLEET_NAMESPACE.as_bytes());
    hash.update(b"emitted:");
    hash.update(
        trigger
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    hash.update(b":");
    hash.update(decimal(worker.len() as u64, &mut [0; 20]));
    hash.update(b":");
    hash.update(worker.as_bytes());
    hash.update(b":");
    hash.update(decimal(u64::from(ordinal), &mut [0; 20]));
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// `value` in decimal, written into the end of `buf`.
pub(crate) fn decimal(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[at..];
        }
    }
}

/// The id of the virtual event that fires `timer` of `worker` for the window starting at
/// `window_start`; replicas sharing a store derive the same id and run the window once.
///
/// UUIDv5 in [`FLEET_NAMESPACE`] of
/// `timer:<byte length of worker>:<worker>:<byte length of timer>:<timer>:<window start>`, the
/// window start written as RFC 3339 UTC with nine fraction digits
/// (`2026-01-31T12:00:00.000000000Z`).
pub fn timer_event_id(worker: &str, timer: &str, window_start: DateTime<Utc>) -> Uuid {
    let start = window_start.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let name = format!(
        "timer:{}:{worker}:{}:{timer}:{start}",
        worker.len(),
        timer.len()
    );
    Uuid::new_v5(&FLEET_NAMESPACE, name.as_bytes())
}

/// The W3C parent-id used when an envelope has no `spanId`: the last 8 bytes of its `eventId`
/// as hex. Those bytes carry the UUID variant bits, so the result is never all zeros.
pub fn derived_span_id(event_id: Uuid) -> String {
    let mut out = String::with_capacity(16);
    push_span_hex(&mut out, event_id);
    out
}

/// Appends [`derived_span_id`] of `event_id` to `out`.
pub(crate) fn push_span_hex(out: &mut String, event_id: Uuid) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &event_id.as_bytes()[8..] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn emitted_ids_are_stable_and_distinct() {
        let trigger = Uuid::from_u128(0x0190_b5b4_8b1a_7c3e_9f00_1a2b_3c4d_5e6f);
        let a = emitted_event_id(trigger, "runtime-deployment", 0);
        assert_eq!(a, emitted_event_id(trigger, "runtime-deployment", 0));
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(a, emitted_event_id(trigger, "runtime-deployment", 1));
        assert_ne!(a, emitted_event_id(trigger, "runtime-health", 0));
        // Pinned: the derivation is a wire contract between releases.
        assert_eq!(a.to_string(), "b5cb5ffc-d778-5705-adfc-261f14adc520");
    }

    #[test]
    fn emitted_ids_are_the_documented_uuid_v5() {
        let trigger = Uuid::from_u128(0x0190_b5b4_8b1a_7c3e_9f00_1a2b_3c4d_5e6f);
        let long = "w".repeat(300);
        for worker in ["", "runtime-health", "wörker:ü", long.as_str()] {
            for ordinal in [0, 7, 10, 4_294_967_295] {
                let name = format!("emitted:{trigger}:{}:{worker}:{ordinal}", worker.len());
                assert_eq!(
                    emitted_event_id(trigger, worker, ordinal),
                    Uuid::new_v5(&FLEET_NAMESPACE, name.as_bytes()),
                    "{worker} {ordinal}"
                );
            }
        }
    }

    #[test]
    fn timer_ids_depend_on_worker_timer_and_window() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 31, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let t1 = t0 + chrono::Duration::seconds(30);
        let a = timer_event_id("runtime-health", "probe", t0);
        assert_eq!(a, timer_event_id("runtime-health", "probe", t0));
        assert_ne!(a, timer_event_id("runtime-health", "probe", t1));
        assert_ne!(a, timer_event_id("runtime-health", "sweep", t0));
        // Length prefixes: moving a character between worker and timer changes the id.
        assert_ne!(
            timer_event_id("a:b", "c", t0),
            timer_event_id("a", "b:c", t0)
        );
    }

    #[test]
    fn derived_span_ids_are_valid_w3c_ids() {
        let id = Uuid::from_u128(0x0190_b5b4_8b1a_7c3e_9f00_1a2b_3c4d_5e6f);
        assert_eq!(derived_span_id(id), "9f001a2b3c4d5e6f");
    }
}
