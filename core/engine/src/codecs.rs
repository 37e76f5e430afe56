//! Codec negotiation across a call's two legs: the switch puts itself in
//! the middle of each offer/answer exchange (RFC 3264) so that two
//! endpoints with no codec in common can still talk, and transcodes only
//! then.
//!
//! An offer from one leg is relayed to the other with the offerer's
//! formats first, in its order, and then the switch's own codecs the
//! offer lacked ([`extend_offer`]): an answerer that shares a codec with
//! the offerer picks it (offerers list what they prefer first, and so
//! does the relayed offer), one that shares none picks one of the
//! switch's. The answer is then settled ([`settle_answer`]): when the
//! answerer's codec is one the offerer offered, the answer relayed back
//! keeps only the offerer's formats and media is relayed untouched; when
//! it is one the switch added, the answer relayed back names the
//! offerer's first codec the switch speaks, and the call is transcoded
//! between the two.

use std::borrow::Cow;

use sentiric_sdp::session::{Attribute, Media, RtpMap, SessionDescription};

/// A codec the switch transcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law, `PCMU/8000`.
    Pcmu,
    /// G.711 A-law, `PCMA/8000`.
    Pcma,
    /// Opus, `opus/48000/2` (RFC 7587).
    Opus,
}

/// The codec's `rtpmap` encoding: `PCMU/8000`, `PCMA/8000`,
/// `opus/48000/2`.
impl std::fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding())
    }
}

impl AudioCodec {
    /// Every codec the switch speaks, in the order it adds them to offers.
    pub const ALL: [AudioCodec; 3] = [AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus];

    /// The codec an `rtpmap` names, if the switch speaks it.
    pub fn of(map: &RtpMap<'_>) -> Option<AudioCodec> {
        let e = map.encoding;
        match map.clock_rate {
            8000 if e.eq_ignore_ascii_case("PCMU") => Some(AudioCodec::Pcmu),
            8000 if e.eq_ignore_ascii_case("PCMA") => Some(AudioCodec::Pcma),
            48000 if e.eq_ignore_ascii_case("opus") && map.channels == Some(2) => {
                Some(AudioCodec::Opus)
            }
            _ => None,
        }
    }

    /// The `rtpmap` value after the payload type.
    fn encoding(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU/8000",
            AudioCodec::Pcma => "PCMA/8000",
            AudioCodec::Opus => "opus/48000/2",
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
            AudioCodec::Opus => 48000,
        }
    }

    /// The static payload type, for G.711.
    fn static_pt(self) -> Option<u8> {
        match self {
            AudioCodec::Pcmu => Some(0),
            AudioCodec::Pcma => Some(8),
            AudioCodec::Opus => None,
        }
    }
}

/// What one leg speaks on a transcoded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegFormat {
    /// The codec.
    pub codec: AudioCodec,
    /// Its payload type on this leg.
    pub pt: u8,
    /// The payload type of `telephone-event` at the codec's clock rate on
    /// this leg, when both legs have one: DTMF events are relayed.
    pub telephone_event: Option<u8>,
}

/// A transcoded call: what leg A speaks and what leg B speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transcoding {
    /// Leg A's side.
    pub a: LegFormat,
    /// Leg B's side.
    pub b: LegFormat,
}

/// One format of an offer as the offerer wrote it.
#[derive(Debug, Clone)]
struct Format {
    pt: u8,
    map: Option<(String, u32, Option<u8>)>,
    fmtp: Option<String>,
}

impl Format {
    fn rtpmap(&self) -> Option<RtpMap<'_>> {
        self.map.as_ref().map(|(e, clock, ch)| RtpMap {
            payload_type: self.pt,
            encoding: e,
            clock_rate: *clock,
            channels: *ch,
        })
    }

    fn codec(&self) -> Option<AudioCodec> {
        self.rtpmap().as_ref().and_then(AudioCodec::of)
    }

    fn telephone_event(&self) -> Option<u32> {
        let m = self.rtpmap()?;
        m.encoding
            .eq_ignore_ascii_case("telephone-event")
            .then_some(m.clock_rate)
    }
}

/// An offer's first audio stream as the offerer made it, before the switch
/// added to it: what its answer is settled against.
#[derive(Debug, Clone, Default)]
pub(crate) struct OfferRecord {
    formats: Vec<Format>,
    /// The switch converts media: its answer is settled.
    transcodes: bool,
}

/// The formats of `m` with their `rtpmap` (or static mapping) and `fmtp`.
fn formats(m: &Media<'_>) -> Vec<Format> {
    m.payload_types()
        .map(|pt| Format {
            pt,
            map: m
                .rtpmap(pt)
                .map(|r| (r.encoding.to_string(), r.clock_rate, r.channels)),
            fmtp: m.fmtp(pt).map(str::to_string),
        })
        .collect()
}

/// An RTP audio stream the switch may negotiate codecs on.
fn negotiable(m: &Media<'_>) -> bool {
    m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP")
}

/// Records the offer in `sdp` and, when the switch transcodes and the
/// offer has a codec the switch speaks (it can transcode from it),
/// appends the switch's codecs the offer lacks to its first audio stream.
pub(crate) fn extend_offer(sdp: &mut SessionDescription<'_>, transcodes: bool) -> OfferRecord {
    let Some(m) = sdp.media.first_mut().filter(|m| negotiable(m)) else {
        return OfferRecord::default();
    };
    let formats = formats(m);
    let speaks = formats.iter().any(|f| f.codec().is_some());
    if transcodes && speaks {
        let mut used: Vec<u8> = formats.iter().map(|f| f.pt).collect();
        for codec in AudioCodec::ALL {
            if formats.iter().any(|f| f.codec() == Some(codec)) {
                continue;
            }
            let pt = match codec.static_pt() {
                Some(pt) if !used.contains(&pt) => pt,
                Some(_) => continue,
                None => match (96..128).find(|pt| !used.contains(pt)) {
                    Some(pt) => pt,
                    None => continue,
                },
            };
            used.push(pt);
            m.formats.push(Cow::Owned(pt.to_string()));
            m.attributes.push(Attribute::new(
                "rtpmap",
                format!("{pt} {}", codec.encoding()),
            ));
        }
    }
    OfferRecord {
        formats,
        transcodes,
    }
}

/// Puts the formats of the offer in `sdp` whose codec `names` lists (SDP
/// encoding names, any case: `PCMA`, `opus`) first, in that order; the
/// others follow as they were. An answerer takes the first format it
/// supports (RFC 3264 §6.1), so this states the preference without
/// leaving out a codec the answerer might need.
pub(crate) fn prefer(sdp: &mut SessionDescription<'_>, names: &[String]) {
    let Some(m) = sdp.media.first_mut().filter(|m| negotiable(m)) else {
        return;
    };
    if names.is_empty() {
        return;
    }
    let rank = |pt: &str| -> usize {
        let Ok(pt) = pt.parse::<u8>() else {
            return names.len();
        };
        let name = m
            .rtpmap(pt)
            .map(|r| r.encoding.to_string())
            .or_else(|| static_name(pt).map(str::to_string));
        name.and_then(|n| names.iter().position(|p| p.eq_ignore_ascii_case(&n)))
            .unwrap_or(names.len())
    };
    let mut ranked: Vec<(usize, Cow<'_, str>)> =
        m.formats.iter().map(|f| (rank(f), f.clone())).collect();
    // Stable: formats of equal rank keep the offerer's order.
    ranked.sort_by_key(|(r, _)| *r);
    m.formats = ranked.into_iter().map(|(_, f)| f).collect();
}

/// The encoding name of a static payload type the switch may meet
/// without an `rtpmap` (RFC 3551 table 4).
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        18 => "G729",
        _ => return None,
    })
}

/// Settles the answer in `sdp` to the offer `offer` recorded: rewrites it
/// to name only formats of the original offer, and returns the two sides
/// (the offerer's, the answerer's) when the switch must convert media
/// between them: the answerer chose a codec the switch added, or the two
/// share a codec but only the offerer has `telephone-event` (its events
/// become in-band tones for the answerer). `None` with media relayed as it
/// comes: the legs share codec and events, or the switch does not convert.
pub(crate) fn settle_answer(
    offer: &OfferRecord,
    sdp: &mut SessionDescription<'_>,
) -> Option<(LegFormat, LegFormat)> {
    let m = sdp.media.first_mut().filter(|m| negotiable(m))?;
    if !offer.transcodes {
        return None;
    }
    let answer = formats(m);
    let offered = |pt: u8| offer.formats.iter().any(|f| f.pt == pt);
    let chosen = chosen(&answer)?;
    if offered(chosen.pt) {
        // Shared: the formats the switch added go.
        m.formats.retain(|f| f.parse::<u8>().is_ok_and(&offered));
        m.attributes.retain(|a| {
            !matches!(&*a.name, "rtpmap" | "fmtp")
                || a.value
                    .as_deref()
                    .and_then(|v| v.split(' ').next())
                    .and_then(|p| p.parse::<u8>().ok())
                    .is_some_and(offered)
        });
        // Events the answerer cannot take are converted: the offerer
        // keeps its telephone-event.
        let codec = chosen.codec()?;
        let te_offer = events(&offer.formats, codec)?;
        if events(&answer, codec).is_some() {
            return None;
        }
        m.formats.push(Cow::Owned(te_offer.pt.to_string()));
        push_maps(m, te_offer);
        let side = |te| LegFormat {
            codec,
            pt: chosen.pt,
            telephone_event: te,
        };
        return Some((side(Some(te_offer.pt)), side(None)));
    }
    let answerer_codec = chosen.codec()?;
    let mine = offer.formats.iter().find(|f| f.codec().is_some())?;
    let offerer_codec = mine.codec()?;
    // Each side keeps its events at its codec's rate; the switch maps
    // them across, or makes tones of them for a side without.
    let te_offer = events(&offer.formats, offerer_codec);
    let te_answer = events(&answer, answerer_codec);
    m.formats = std::iter::once(mine.pt)
        .chain(te_offer.map(|o| o.pt))
        .map(|pt| Cow::Owned(pt.to_string()))
        .collect();
    m.attributes
        .retain(|a| !matches!(&*a.name, "rtpmap" | "fmtp"));
    for f in std::iter::once(mine).chain(te_offer) {
        push_maps(m, f);
    }
    Some((
        LegFormat {
            codec: offerer_codec,
            pt: mine.pt,
            telephone_event: te_offer.map(|o| o.pt),
        },
        LegFormat {
            codec: answerer_codec,
            pt: chosen.pt,
            telephone_event: te_answer.map(|a| a.pt),
        },
    ))
}

/// The `telephone-event` format at `codec`'s clock rate among `formats`.
fn events(formats: &[Format], codec: AudioCodec) -> Option<&Format> {
    formats
        .iter()
        .find(|f| f.telephone_event() == Some(codec.clock_rate()))
}

/// The answerer's codec in `answer`: its first format that is not an
/// event or comfort noise.
fn chosen(answer: &[Format]) -> Option<&Format> {
    answer.iter().find(|f| {
        f.telephone_event().is_none()
            && !f
                .map
                .as_ref()
                .is_some_and(|(e, _, _)| e.eq_ignore_ascii_case("CN"))
    })
}

/// The format a leg speaks per an answer (the switch's own, or a peer's):
/// its codec, payload type and `telephone-event`. `None` when its codec is
/// not one the switch speaks.
pub(crate) fn answered_format(sdp: &SessionDescription<'_>) -> Option<LegFormat> {
    let m = sdp.media.first().filter(|m| negotiable(m))?;
    let answer = formats(m);
    let f = chosen(&answer)?;
    let codec = f.codec()?;
    Some(LegFormat {
        codec,
        pt: f.pt,
        telephone_event: events(&answer, codec).map(|t| t.pt),
    })
}

/// B's answer `b_sdp` when A's media is already settled as `a` (the
/// switch answered A itself, then bridged): B's side when media must be
/// converted to or from A's, `None` when it is relayed as it comes, an
/// error when B chose a codec the switch cannot convert.
pub(crate) fn settle_fixed(
    a: LegFormat,
    b_sdp: &SessionDescription<'_>,
) -> Result<Option<LegFormat>, ()> {
    let b = answered_format(b_sdp).ok_or(())?;
    let same = b.codec == a.codec
        && b.pt == a.pt
        && (a.telephone_event.is_none() || b.telephone_event == a.telephone_event);
    Ok((!same).then_some(b))
}

/// Appends the `rtpmap` and `fmtp` of `f`, as its offer had them.
fn push_maps(m: &mut Media<'_>, f: &Format) {
    if let Some(r) = f.rtpmap() {
        let ch = match r.channels {
            Some(c) if c > 1 => format!("/{c}"),
            _ => String::new(),
        };
        m.attributes.push(Attribute::new(
            "rtpmap",
            format!("{} {}/{}{ch}", f.pt, r.encoding, r.clock_rate),
        ));
    }
    if let Some(p) = &f.fmtp {
        m.attributes
            .push(Attribute::new("fmtp", format!("{} {p}", f.pt)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(m: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{m}")
    }

    fn media_line(text: &[u8]) -> String {
        let s = String::from_utf8_lossy(text).to_string();
        s.split("\r\n")
            .skip_while(|l| !l.starts_with("m="))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn an_offer_gets_the_codecs_it_lacks_after_its_own() {
        let text = sdp("m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n");
        let mut s = SessionDescription::parse(text.as_bytes()).unwrap();
        extend_offer(&mut s, true);
        assert_eq!(
            media_line(&s.to_bytes()),
            "m=audio 4000 RTP/AVP 0 101 8 96|a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15|\
             a=rtpmap:8 PCMA/8000|a=rtpmap:96 opus/48000/2"
        );
    }

    #[test]
    fn a_preference_puts_its_codecs_first_and_keeps_the_rest() {
        let text = sdp("m=audio 4000 RTP/AVP 0 101 9\r\na=rtpmap:101 telephone-event/8000\r\n");
        let mut s = SessionDescription::parse(text.as_bytes()).unwrap();
        extend_offer(&mut s, true);
        // Opus (added by the switch) before PCMA; the caller's PCMU, its
        // events and G.722 (static, no rtpmap) follow in its order.
        prefer(&mut s, &["OPUS".into(), "pcma".into(), "absent".into()]);
        assert!(
            media_line(&s.to_bytes()).starts_with("m=audio 4000 RTP/AVP 96 8 0 101 9|"),
            "{}",
            media_line(&s.to_bytes())
        );
        prefer(&mut s, &["G722".into()]);
        assert!(media_line(&s.to_bytes()).starts_with("m=audio 4000 RTP/AVP 9 96 8 0 101|"));
        // No preference: as it was.
        prefer(&mut s, &[]);
        assert!(media_line(&s.to_bytes()).starts_with("m=audio 4000 RTP/AVP 9 96 8 0 101|"));
    }

    #[test]
    fn an_offer_of_codecs_the_switch_cannot_decode_is_left_alone() {
        let text = sdp("m=audio 4000 RTP/AVP 18\r\n");
        let mut s = SessionDescription::parse(text.as_bytes()).unwrap();
        extend_offer(&mut s, true);
        assert_eq!(media_line(&s.to_bytes()), "m=audio 4000 RTP/AVP 18");
    }

    #[test]
    fn a_shared_codec_is_relayed_without_the_added_formats() {
        let offer = sdp("m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
        let mut o = SessionDescription::parse(offer.as_bytes()).unwrap();
        let rec = extend_offer(&mut o, true);
        let answer = sdp(
            "m=audio 5000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n",
        );
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(settle_answer(&rec, &mut a), None);
        assert_eq!(
            media_line(&a.to_bytes()),
            "m=audio 5000 RTP/AVP 0 101|a=rtpmap:0 PCMU/8000|a=rtpmap:101 telephone-event/8000"
        );
    }

    #[test]
    fn an_answer_in_an_added_codec_is_transcoded() {
        let offer = sdp(
            "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        );
        let mut o = SessionDescription::parse(offer.as_bytes()).unwrap();
        let rec = extend_offer(&mut o, true);
        let answer = sdp("m=audio 5000 RTP/AVP 8 100\r\na=rtpmap:100 telephone-event/8000\r\n");
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        let (offerer, answerer) = settle_answer(&rec, &mut a).unwrap();
        assert_eq!(
            offerer,
            LegFormat {
                codec: AudioCodec::Pcmu,
                pt: 0,
                telephone_event: Some(101)
            }
        );
        assert_eq!(
            answerer,
            LegFormat {
                codec: AudioCodec::Pcma,
                pt: 8,
                telephone_event: Some(100)
            }
        );
        assert_eq!(
            media_line(&a.to_bytes()),
            "m=audio 5000 RTP/AVP 0 101|a=rtpmap:0 PCMU/8000|\
             a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15"
        );
    }

    #[test]
    fn opus_without_events_against_g711_with() {
        let offer = sdp("m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n");
        let mut o = SessionDescription::parse(offer.as_bytes()).unwrap();
        let rec = extend_offer(&mut o, true);
        assert_eq!(
            media_line(&o.to_bytes()),
            "m=audio 4000 RTP/AVP 111 0 8|a=rtpmap:111 opus/48000/2|a=fmtp:111 useinbandfec=1|\
             a=rtpmap:0 PCMU/8000|a=rtpmap:8 PCMA/8000"
        );
        let answer = sdp("m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        let (offerer, answerer) = settle_answer(&rec, &mut a).unwrap();
        assert_eq!((offerer.codec, offerer.pt), (AudioCodec::Opus, 111));
        // The answerer's events become tones for the offerer.
        assert_eq!(offerer.telephone_event, None);
        assert_eq!(
            (answerer.codec, answerer.telephone_event),
            (AudioCodec::Pcmu, Some(101))
        );
        assert_eq!(
            media_line(&a.to_bytes()),
            "m=audio 5000 RTP/AVP 111|a=rtpmap:111 opus/48000/2|a=fmtp:111 useinbandfec=1"
        );
    }

    #[test]
    fn a_shared_codec_with_events_on_one_side_only_is_converted() {
        let offer = sdp(
            "m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        );
        let mut o = SessionDescription::parse(offer.as_bytes()).unwrap();
        let rec = extend_offer(&mut o, true);
        let answer = sdp("m=audio 5000 RTP/AVP 8\r\n");
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        let (offerer, answerer) = settle_answer(&rec, &mut a).unwrap();
        assert_eq!((offerer.codec, offerer.pt), (AudioCodec::Pcma, 8));
        assert_eq!(offerer.telephone_event, Some(101));
        assert_eq!((answerer.pt, answerer.telephone_event), (8, None));
        // The offerer keeps its events: the switch makes tones of them.
        assert_eq!(
            media_line(&a.to_bytes()),
            "m=audio 5000 RTP/AVP 8 101|a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15"
        );
        // With events on both sides, nothing to convert.
        let answer = sdp("m=audio 5000 RTP/AVP 8 100\r\na=rtpmap:100 telephone-event/8000\r\n");
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(settle_answer(&rec, &mut a), None);
    }

    #[test]
    fn without_adding_nothing_is_transcoded() {
        let offer = sdp("m=audio 4000 RTP/AVP 0\r\n");
        let mut o = SessionDescription::parse(offer.as_bytes()).unwrap();
        let rec = extend_offer(&mut o, false);
        let answer = sdp("m=audio 5000 RTP/AVP 8\r\n");
        let mut a = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(settle_answer(&rec, &mut a), None);
    }
}
