//! The switch's events.
//!
//! * [`v1`]: the schema of `proto/sentiric/event/v1/events.proto`, as
//!   generated Rust types; [`new_event`] starts an envelope, or
//!   [`unstamped`] and later [`stamp`], to mint the id off the hot path.
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
    let mut e = unstamped(body);
    stamp(&mut e);
    e
}

/// [`new_event`] without its `event_id`: [`stamp`] gives it one later
/// (on another thread: the events thread mints every id, so a node's ids
/// sort as its events were written).
pub fn unstamped(body: v1::event::Body) -> v1::Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    v1::Event {
        schema_version: SCHEMA_VERSION,
        time_unix_us: i64::try_from(now.as_micros()).unwrap_or(i64::MAX),
        body: Some(body),
        ..v1::Event::default()
    }
}

/// Gives an envelope without one a UUIDv7 `event_id` from its time.
pub fn stamp(e: &mut v1::Event) {
    if e.event_id.is_empty() {
        let at = std::time::Duration::from_micros(u64::try_from(e.time_unix_us).unwrap_or(0));
        e.event_id = event_id(at).to_string();
    }
}

/// A UUIDv7 (RFC 9562 §5.7) for an event minted at `now`: the 12 bits
/// after the millisecond timestamp are a counter (§6.2, method 1), so a
/// thread's ids sort in the order it minted them, and the other 62 bits
/// come from a per-thread generator seeded once from the OS's random keys
/// — no system call per id, on the workers' path.
fn event_id(now: std::time::Duration) -> uuid::Uuid {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        /// (last millisecond, counter, generator state)
        static STATE: Cell<(u64, u16, u64)> = Cell::new((0, 0, {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5e47_1c1d);
            h.finish()
        }));
    }
    STATE.with(|cell| {
        let (last, mut counter, mut state) = cell.get();
        // splitmix64
        let mut random = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX) & 0xffff_ffff_ffff;
        if ms > last {
            // A new millisecond: the counter starts low, leaving room.
            counter = (random() & 0x7ff) as u16;
        } else {
            // The same millisecond (or the clock stepped back): count on,
            // borrowing the next millisecond when the counter is spent.
            ms = last;
            counter += 1;
            if counter > 0xfff {
                ms += 1;
                counter = (random() & 0x7ff) as u16;
            }
        }
        let tail = random() & 0x3fff_ffff_ffff_ffff;
        cell.set((ms, counter, state));
        let bits = (u128::from(ms) << 80)
            | (0x7u128 << 76)
            | (u128::from(counter) << 64)
            | (0b10u128 << 62)
            | u128::from(tail);
        uuid::Uuid::from_u128(bits)
    })
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
        // Many in the same millisecond: the counter keeps them in order.
        let ids: Vec<String> = (0..10_000).map(|_| new_event(body()).event_id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        for id in &ids[..10] {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn stamping_later_takes_the_events_time_and_keeps_an_id_it_has() {
        let mut e = unstamped(v1::event::Body::NodeStarted(v1::NodeStarted::default()));
        assert!(e.event_id.is_empty());
        stamp(&mut e);
        let id = uuid::Uuid::parse_str(&e.event_id).unwrap();
        assert_eq!((id.as_u128() >> 80) as i64, e.time_unix_us / 1000);
        let before = e.event_id.clone();
        stamp(&mut e);
        assert_eq!(e.event_id, before);
    }

    #[test]
    fn an_event_ids_time_is_its_millisecond_and_the_counter_borrows_the_next() {
        let t = std::time::Duration::from_millis(1_700_000_000_123);
        let first = event_id(t);
        assert_eq!(first.as_u128() >> 80, 1_700_000_000_123);
        // 4,096 more in the same millisecond spend the counter: the ids
        // move on to the next millisecond and stay in order.
        let mut last = first;
        for _ in 0..4096 {
            let id = event_id(t);
            assert!(id > last);
            last = id;
        }
        assert_eq!(last.as_u128() >> 80, 1_700_000_000_124);
        // A clock stepping back does not reorder them.
        assert!(event_id(std::time::Duration::from_millis(5)) > last);
    }
}
