//! The offer/answer model (RFC 3264): building an answer from an offer and
//! what this side supports, and the hold/resume offers of §8.4.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::session::{
    AddrType, Attribute, Connection, Direction, Media, Origin, RtpMap, SessionDescription, Timing,
};

/// A codec this side can handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name (`PCMU`, `opus`, `telephone-event`), case-insensitive.
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (1 unless stated).
    pub channels: u8,
}

impl Codec {
    /// A codec by name, clock rate and channel count.
    pub fn new(name: &str, clock_rate: u32, channels: u8) -> Self {
        Codec {
            name: name.to_string(),
            clock_rate,
            channels,
        }
    }

    fn matches(&self, m: &RtpMap<'_>) -> bool {
        self.name.eq_ignore_ascii_case(m.encoding)
            && self.clock_rate == m.clock_rate
            && self.channels == m.channels.unwrap_or(1)
    }
}

/// What this side offers to answer with.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// Address media is received on (the anchoring address).
    pub address: IpAddr,
    /// Audio codecs supported. Order does not matter for the answer: RFC
    /// 3264 §6.1 keeps the offerer's order.
    pub codecs: Vec<Codec>,
    /// Accept RFC 4733 `telephone-event` at the chosen codec's clock rate.
    pub telephone_event: bool,
    /// What this side is willing to do (`sendrecv` normally).
    pub direction: Direction,
    /// Accept `a=rtcp-mux` when offered.
    pub rtcp_mux: bool,
    /// `o=` user name.
    pub username: String,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
}

/// Why no answer could be made: answer the offer with 488.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// No stream of the offer has a codec in common with this side.
    #[error("no common codec in any stream")]
    NoCommonCodec,
}

impl NegotiationError {
    /// The SIP status: 488 Not Acceptable Here.
    pub fn status(&self) -> u16 {
        488
    }
}

/// Answers `offer` (RFC 3264 §6). For each audio stream with a common codec,
/// the answer lists the common formats in the offer's order with the
/// offer's payload type numbers, plus `telephone-event` when both sides
/// have it, and takes the port `port_for(i)` gives. Every other stream, and
/// any stream `port_for` refuses, is rejected with port 0. Directions are
/// the offer's reversed, narrowed by [`LocalMedia::direction`].
pub fn answer<'o>(
    offer: &SessionDescription<'o>,
    local: &LocalMedia,
    mut port_for: impl FnMut(usize) -> Option<u16>,
) -> Result<SessionDescription<'static>, NegotiationError> {
    let mut media = Vec::with_capacity(offer.media.len());
    let mut accepted = 0;
    for (i, m) in offer.media.iter().enumerate() {
        let formats = if m.kind == "audio" && m.port != 0 && m.proto.contains("RTP") {
            common_formats(m, local)
        } else {
            Vec::new()
        };
        let port = if formats.is_empty() {
            None
        } else {
            port_for(i)
        };
        let Some(port) = port else {
            media.push(rejected(m));
            continue;
        };
        accepted += 1;
        let mut attributes = Vec::new();
        for pt in &formats {
            if let Some(map) = m.rtpmaps().find(|r| r.payload_type == *pt) {
                attributes.push(Attribute::new(
                    "rtpmap",
                    match map.channels {
                        Some(c) => format!("{} {}/{}/{}", pt, map.encoding, map.clock_rate, c),
                        None => format!("{} {}/{}", pt, map.encoding, map.clock_rate),
                    },
                ));
            }
            if let Some(f) = m.fmtp(*pt) {
                attributes.push(Attribute::new("fmtp", format!("{pt} {f}")));
            }
        }
        if let Some(p) = m.ptime() {
            attributes.push(Attribute::new("ptime", p.to_string()));
        }
        let mux = local.rtcp_mux && m.rtcp_mux();
        if mux {
            attributes.push(Attribute::flag("rtcp-mux"));
        }
        let offered = offer.direction(i).reversed();
        let dir = Direction::from_flags(
            offered.sends() && local.direction.sends(),
            offered.receives() && local.direction.receives(),
        );
        attributes.push(Attribute::flag(dir.as_str()));
        media.push(Media {
            kind: Cow::Owned(m.kind.to_string()),
            port,
            port_count: None,
            proto: Cow::Owned(m.proto.to_string()),
            formats: formats.iter().map(|p| Cow::Owned(p.to_string())).collect(),
            information: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes,
        });
    }
    if accepted == 0 {
        return Err(NegotiationError::NoCommonCodec);
    }
    Ok(SessionDescription {
        origin: Origin {
            username: Cow::Owned(local.username.clone()),
            session_id: Cow::Owned(local.session_id.to_string()),
            session_version: local.session_version,
            addr_type: AddrType::of(&local.address),
            address: Cow::Owned(local.address.to_string()),
        },
        session_name: Cow::Borrowed("-"),
        information: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::from_ip(local.address)),
        bandwidths: Vec::new(),
        timings: vec![Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }],
        zone: None,
        key: None,
        attributes: Vec::new(),
        media,
    })
}

/// Payload types of `m` this side supports, in the offer's order; with
/// `telephone-event` at the clock rate of a chosen codec appended.
fn common_formats(m: &Media<'_>, local: &LocalMedia) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rates = Vec::new();
    for pt in m.payload_types() {
        let Some(map) = m.rtpmap(pt) else { continue };
        if map.encoding.eq_ignore_ascii_case("telephone-event") {
            continue;
        }
        if local.codecs.iter().any(|c| c.matches(&map)) {
            out.push(pt);
            rates.push(map.clock_rate);
        }
    }
    if local.telephone_event && !out.is_empty() {
        for pt in m.payload_types() {
            if let Some(map) = m.rtpmap(pt) {
                if map.encoding.eq_ignore_ascii_case("telephone-event")
                    && rates.contains(&map.clock_rate)
                {
                    out.push(pt);
                }
            }
        }
    }
    out
}

/// A rejected stream (RFC 3264 §6): same media and protocol, port 0, the
/// offer's formats kept so the line stays well-formed.
fn rejected(m: &Media<'_>) -> Media<'static> {
    Media {
        kind: Cow::Owned(m.kind.to_string()),
        port: 0,
        port_count: None,
        proto: Cow::Owned(m.proto.to_string()),
        formats: m
            .formats
            .iter()
            .take(1)
            .map(|f| Cow::Owned(f.to_string()))
            .collect(),
        information: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

impl SessionDescription<'_> {
    /// Turns this (previously sent) description into a hold offer (RFC 3264
    /// §8.4): `sendonly` where it was sending and receiving, `inactive`
    /// where it was only receiving. The session version is incremented.
    pub fn hold(&mut self) {
        for i in 0..self.media.len() {
            let d = self.direction(i);
            let held = if d.sends() {
                Direction::SendOnly
            } else {
                Direction::Inactive
            };
            self.media[i].set_direction(held);
        }
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// Resumes every stream (`sendrecv`), incrementing the session version.
    pub fn resume(&mut self) {
        for m in &mut self.media {
            m.set_direction(Direction::SendRecv);
        }
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia {
            address: "127.0.0.1".parse().unwrap(),
            codecs: vec![
                Codec::new("PCMA", 8000, 1),
                Codec::new("PCMU", 8000, 1),
                Codec::new("opus", 48000, 2),
            ],
            telephone_event: true,
            direction: Direction::SendRecv,
            rtcp_mux: true,
            username: "sentiric".into(),
            session_id: 42,
            session_version: 1,
        }
    }

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 18 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=rtcp-mux\r\na=sendonly\r\nm=video 51372 RTP/AVP 31\r\n";

    #[test]
    fn intersects_in_offer_order_and_reverses_direction() {
        let offer = SessionDescription::parse_str(OFFER).unwrap();
        let ans = answer(&offer, &local(), |_| Some(20000)).unwrap();
        let text = ans.to_string();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(
            text.contains("a=recvonly\r\n"),
            "sendonly offer is answered recvonly"
        );
        assert!(text.contains("a=rtcp-mux\r\n"));
        assert!(
            text.contains("m=video 0 RTP/AVP 31\r\n"),
            "unsupported stream rejected with port 0"
        );
        assert!(text.contains("c=IN IP4 127.0.0.1\r\n"));
        // The answer parses as SDP again.
        let again = SessionDescription::parse_str(&text).unwrap();
        assert_eq!(again.media.len(), 2);
    }

    #[test]
    fn no_common_codec_is_488() {
        let offer = SessionDescription::parse_str(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n",
        )
        .unwrap();
        let e = answer(&offer, &local(), |_| Some(1)).unwrap_err();
        assert_eq!(e.status(), 488);
        // Port exhaustion rejects the stream too.
        let offer = SessionDescription::parse_str(OFFER).unwrap();
        assert!(answer(&offer, &local(), |_| None).is_err());
    }

    #[test]
    fn dynamic_codecs_match_by_name_rate_and_channels() {
        let offer = SessionDescription::parse_str(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96 111\r\na=rtpmap:96 opus/48000/1\r\na=rtpmap:111 OPUS/48000/2\r\na=fmtp:111 minptime=10\r\n",
        )
        .unwrap();
        let ans = answer(&offer, &local(), |_| Some(3000)).unwrap();
        let m = &ans.media[0];
        assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![111]);
        assert_eq!(m.fmtp(111), Some("minptime=10"));
        assert_eq!(ans.direction(0), Direction::SendRecv);
    }

    #[test]
    fn hold_and_resume() {
        let mut sd = SessionDescription::parse_str(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        )
        .unwrap();
        sd.hold();
        assert_eq!(sd.direction(0), Direction::SendOnly);
        assert!(sd.is_hold(0));
        assert_eq!(sd.origin.session_version, 2);
        let offer_text = sd.to_string();
        let offer = SessionDescription::parse_str(&offer_text).unwrap();
        let ans = answer(&offer, &local(), |_| Some(5000)).unwrap();
        assert_eq!(ans.direction(0), Direction::RecvOnly);
        sd.resume();
        assert_eq!(sd.direction(0), Direction::SendRecv);
        assert!(!sd.is_hold(0));
    }
}
