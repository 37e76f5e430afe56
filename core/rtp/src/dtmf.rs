//! RFC 4733 telephone-events: detection of DTMF in a received stream and
//! generation of the packets that send it.
//!
//! Every packet of one event carries the event's start timestamp and a
//! growing duration; the last ones carry the E (end) bit and are sent
//! three times, since any of them may be lost (§2.5.1.4). The detector
//! reports each event once when it begins and once when it ends — from the
//! first end packet, or, when every end packet was lost, from the start
//! of the next event or a caller's [`DtmfDetector::flush`].

/// Event code of `*`.
pub const STAR: u8 = 10;
/// Event code of `#`.
pub const POUND: u8 = 11;
/// Event code of hook flash.
pub const FLASH: u8 = 16;

/// The character of a DTMF event code (0–9, `*`, `#`, A–D), if it is one.
pub fn event_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        STAR => Some('*'),
        POUND => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a DTMF character.
pub fn char_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(STAR),
        '#' => Some(POUND),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// One telephone-event payload block (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code.
    pub event: u8,
    /// The E bit: this is (a copy of) the event's last packet.
    pub end: bool,
    /// Power level, 0 to -63 dBm0, as its absolute value.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Reads the first block of a telephone-event payload; `None` when it
    /// is shorter than four bytes.
    pub fn parse(payload: &[u8]) -> Option<EventPayload> {
        let b = payload.get(..4)?;
        Some(EventPayload {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The four bytes on the wire.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// What the detector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// An event began.
    Begin {
        /// Event code.
        event: u8,
        /// RTP timestamp of its start.
        timestamp: u32,
    },
    /// An event ended.
    End {
        /// Event code.
        event: u8,
        /// RTP timestamp of its start.
        timestamp: u32,
        /// Its duration, in timestamp units (the last one heard when the
        /// end packets were lost).
        duration: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct Current {
    event: u8,
    timestamp: u32,
    duration: u16,
    ended: bool,
}

/// Turns received telephone-event packets into begin/end events.
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    current: Option<Current>,
}

impl DtmfDetector {
    /// A detector with no event in progress.
    pub fn new() -> Self {
        DtmfDetector::default()
    }

    /// Feeds one telephone-event packet (its RTP timestamp and payload);
    /// returns what it reveals, in order: at most the end of a previous
    /// event whose end packets were lost, then a begin, then an end.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Vec<DtmfEvent> {
        let mut out = Vec::new();
        let Some(p) = EventPayload::parse(payload) else {
            return out;
        };
        let same = self
            .current
            .is_some_and(|c| c.timestamp == timestamp && c.event == p.event);
        if !same {
            // A new event. One whose timestamp is older than the current
            // one's is a late packet of a finished event: ignored.
            if let Some(c) = self.current {
                if (timestamp.wrapping_sub(c.timestamp) as i32) < 0 {
                    return out;
                }
            }
            out.extend(self.flush());
            out.push(DtmfEvent::Begin {
                event: p.event,
                timestamp,
            });
            self.current = Some(Current {
                event: p.event,
                timestamp,
                duration: p.duration,
                ended: false,
            });
        }
        if let Some(c) = self.current.as_mut() {
            if p.duration > c.duration {
                c.duration = p.duration;
            }
            if p.end && !c.ended {
                c.ended = true;
                out.push(DtmfEvent::End {
                    event: c.event,
                    timestamp: c.timestamp,
                    duration: c.duration,
                });
            }
        }
        out
    }

    /// Ends the event in progress, if it has not ended: for when the
    /// stream stops or the caller's timer decides the end packets are lost.
    pub fn flush(&mut self) -> Option<DtmfEvent> {
        let c = self.current.as_mut()?;
        if c.ended {
            return None;
        }
        c.ended = true;
        Some(DtmfEvent::End {
            event: c.event,
            timestamp: c.timestamp,
            duration: c.duration,
        })
    }
}

/// One packet to send: the marker bit, the RTP timestamp (the event's
/// start for every packet) and the payload. The caller gives each its own
/// sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// Set on the first packet of the event.
    pub marker: bool,
    /// The event's start timestamp.
    pub timestamp: u32,
    /// The telephone-event payload.
    pub payload: [u8; 4],
}

/// The packets of one event, one per packet interval (§2.5.1).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    timestamp: u32,
    step: u16,
    total: u16,
    sent: u16,
    ends_left: u8,
    started: bool,
}

impl DtmfSender {
    /// An event starting at RTP timestamp `timestamp`, lasting `total`
    /// timestamp units, with an update every `step` units (one packet time,
    /// e.g. 160 at 8 kHz for 20 ms), at `volume` (0 to 63, -dBm0).
    pub fn new(event: u8, timestamp: u32, total: u16, step: u16, volume: u8) -> Self {
        DtmfSender {
            event,
            volume: volume.min(63),
            timestamp,
            step: step.max(1),
            total: total.max(1),
            sent: 0,
            ends_left: 3,
            started: false,
        }
    }
}

impl Iterator for DtmfSender {
    type Item = DtmfPacket;

    /// The next packet, one per packet interval; `None` once the three end
    /// packets are out.
    fn next(&mut self) -> Option<DtmfPacket> {
        if self.ends_left == 0 {
            return None;
        }
        let marker = !self.started;
        self.started = true;
        if self.sent < self.total {
            self.sent = self.sent.saturating_add(self.step).min(self.total);
        }
        let end = self.sent >= self.total;
        if end {
            self.ends_left -= 1;
        }
        Some(DtmfPacket {
            marker,
            timestamp: self.timestamp,
            payload: EventPayload {
                event: self.event,
                end,
                volume: self.volume,
                duration: self.sent,
            }
            .to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chars() {
        let all = "0123456789*#ABCD";
        for c in all.chars() {
            assert_eq!(event_char(char_event(c).unwrap()), Some(c));
        }
        assert_eq!(event_char(FLASH), None);
        assert_eq!(char_event('x'), None);
    }

    #[test]
    fn generated_event_is_detected_once() {
        // '5' for 100 ms at 8 kHz, 20 ms packets: 5 updates, 3 end packets.
        let pkts: Vec<_> = DtmfSender::new(5, 8000, 800, 160, 10).collect();
        assert_eq!(pkts.len(), 7);
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        assert!(pkts.iter().all(|p| p.timestamp == 8000));
        let durs: Vec<u16> = pkts
            .iter()
            .map(|p| EventPayload::parse(&p.payload).unwrap().duration)
            .collect();
        assert_eq!(durs, [160, 320, 480, 640, 800, 800, 800]);
        let mut d = DtmfDetector::new();
        let events: Vec<_> = pkts
            .iter()
            .flat_map(|p| d.on_packet(p.timestamp, &p.payload))
            .collect();
        assert_eq!(
            events,
            [
                DtmfEvent::Begin {
                    event: 5,
                    timestamp: 8000
                },
                DtmfEvent::End {
                    event: 5,
                    timestamp: 8000,
                    duration: 800
                },
            ]
        );
        assert_eq!(d.flush(), None);
    }

    #[test]
    fn lost_start_lost_end_and_late_packets() {
        let a: Vec<_> = DtmfSender::new(1, 1000, 480, 160, 10).collect();
        let b: Vec<_> = DtmfSender::new(POUND, 5000, 320, 160, 10).collect();
        let mut d = DtmfDetector::new();
        let mut events = Vec::new();
        // A's first packet and all its end packets are lost.
        for p in &a[1..2] {
            events.extend(d.on_packet(p.timestamp, &p.payload));
        }
        // B arrives: A is ended by it.
        for p in &b {
            events.extend(d.on_packet(p.timestamp, &p.payload));
        }
        // A late end packet of A after B: ignored.
        events.extend(d.on_packet(a[4].timestamp, &a[4].payload));
        assert_eq!(
            events,
            [
                DtmfEvent::Begin {
                    event: 1,
                    timestamp: 1000
                },
                DtmfEvent::End {
                    event: 1,
                    timestamp: 1000,
                    duration: 320
                },
                DtmfEvent::Begin {
                    event: POUND,
                    timestamp: 5000
                },
                DtmfEvent::End {
                    event: POUND,
                    timestamp: 5000,
                    duration: 320
                },
            ]
        );
        // The same digit twice in a row is two events (new timestamp).
        let again: Vec<_> = DtmfSender::new(POUND, 9000, 480, 160, 10).collect();
        let ev = d.on_packet(again[0].timestamp, &again[0].payload);
        assert_eq!(
            ev,
            [DtmfEvent::Begin {
                event: POUND,
                timestamp: 9000
            }]
        );
        assert_eq!(d.on_packet(1, &[1, 2]), [], "short payloads are ignored");
        assert!(d.flush().is_some());
    }
}
