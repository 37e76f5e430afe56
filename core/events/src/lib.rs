//! The switch's events.
//!
//! * [`v1`]: the schema of `proto/sentiric/event/v1/events.proto`, as
//!   generated Rust types, and [`new_event`] to start an envelope.
//! * [`outbox`]: where every event is written first — an append-only
//!   local log, replayed at start-up, that an event leaves only once the
//!   broker has confirmed it.

pub mod outbox;

/// The v1 event schema (generated from `proto/`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/sentiric.event.v1.rs"));
}

/// The `schema_version` of [`v1`] envelopes.
pub const SCHEMA_VERSION: u32 = 1;

/// An envelope with a fresh UUIDv7 `event_id`, this schema's version and
/// the time now; the caller sets the call's id, sequence, trace id, node
/// and body.
pub fn new_event(body: v1::event::Body) -> v1::Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    v1::Event {
        event_id: uuid::Uuid::now_v7().to_string(),
        schema_version: SCHEMA_VERSION,
        time_unix_us: i64::try_from(now.as_micros()).unwrap_or(i64::MAX),
        body: Some(body),
        ..v1::Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn an_envelope_round_trips_through_protobuf() {
        let mut e = new_event(v1::event::Body::CallStarted(v1::CallStarted {
            from_uri: "sip:alice@127.0.0.1".into(),
            to_uri: "sip:600@127.0.0.1".into(),
            request_uri: "sip:600@127.0.0.1".into(),
            source: "127.0.0.1:5062".into(),
            transport: "udp".into(),
        }));
        e.call_id = "abc@127.0.0.1".into();
        e.sequence = 1;
        let bytes = e.encode_to_vec();
        let back = v1::Event::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.schema_version, SCHEMA_VERSION);
        let id = uuid::Uuid::parse_str(&back.event_id).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn event_ids_sort_by_creation() {
        let body = || v1::event::Body::NodeStarted(v1::NodeStarted::default());
        let ids: Vec<String> = (0..100).map(|_| new_event(body()).event_id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
