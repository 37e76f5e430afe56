//! Transcoded calls on a worker: RTP from one leg decoded, converted and
//! sent to the other as a stream of the switch's own, when the legs share
//! no codec (the engine settles that, [`sentiric_engine::codecs`]).
//!
//! Each direction is its own output stream: the switch's SSRC, its own
//! sequence numbers, and timestamps on the receiving leg's clock that
//! follow the sender's — one 20 ms step per frame emitted, and a jump
//! forward over a gap (silence suppression, G.711 loss), so the receiver's
//! jitter buffer sees time as the sender meant it. A lost packet is handed
//! to the transcoder as a loss (Opus conceals it). RFC 4733 events cross
//! with their payload type, timestamp and duration mapped to the other
//! leg's, or, for a leg without `telephone-event`, become the digit's
//! tones in its audio (the sender's audio, if any, is dropped while a
//! tone plays). Comfort noise and anything else is not relayed.

use sentiric_engine::b2bua::Leg;
use sentiric_engine::codecs::{AudioCodec, LegFormat, Transcoding};
use sentiric_media::tone::Tone;
use sentiric_media::transcode::{Codec, TranscodeError, Transcoder};
use sentiric_rtp::dtmf::event_char;
use sentiric_rtp::packet::{RtpHeader, RtpPacket};

/// Most losses in a row handed to the transcoder; a longer gap is a new
/// talk spurt, not loss to conceal.
const MAX_CONCEALED: u16 = 5;

/// The codec a leg's format is transcoded as: Opus is coded at 8 kHz, as
/// the other leg is G.711 (two Opus legs share their codec).
fn codec(f: LegFormat) -> Codec {
    match f.codec {
        AudioCodec::Pcmu => Codec::Pcmu,
        AudioCodec::Pcma => Codec::Pcma,
        AudioCodec::Opus => Codec::opus(8000),
    }
}

/// One direction's output stream and what it follows of the input.
#[derive(Debug)]
struct Stream {
    /// The receiving leg's format.
    to: LegFormat,
    /// The sending leg's format.
    from: LegFormat,
    ssrc: u32,
    seq: u16,
    /// The timestamp of the next payload.
    ts: u32,
    step: u32,
    /// The input stream followed: SSRC, newest sequence number, and the
    /// input and output timestamps of one instant.
    input: Option<(u32, u16, u32, u32)>,
    /// The next packet starts a talk spurt (marker bit).
    mark: bool,
    /// The event being played as a tone: its timestamp, the samples made
    /// so far, the tone, and whether its end was seen.
    tone: Option<(u32, u32, Tone, bool)>,
}

impl Stream {
    fn new(from: LegFormat, to: LegFormat, ssrc: u32) -> Stream {
        Stream {
            to,
            from,
            ssrc,
            seq: (ssrc >> 7) as u16,
            ts: ssrc.rotate_left(11),
            step: to.codec.clock_rate() / 50,
            input: None,
            mark: true,
            tone: None,
        }
    }

    /// The audio to make for the RFC 4733 event packet `p` (RFC 4733
    /// §2.5.1.3: the duration grows, then the end is sent three times), at
    /// `rate` Hz: appended to `pcm`.
    fn tone(&mut self, p: &RtpPacket<'_>, rate: u32, pcm: &mut Vec<i16>) {
        let payload = p.payload();
        if payload.len() < 4 {
            return;
        }
        let end = payload[1] & 0x80 != 0;
        let duration = u32::from(u16::from_be_bytes([payload[2], payload[3]]));
        let fresh = self.tone.as_ref().is_none_or(|t| t.0 != p.timestamp());
        if fresh {
            let Some(tone) = event_char(payload[0]).and_then(|d| Tone::dtmf(d, rate)) else {
                return;
            };
            self.tone = Some((p.timestamp(), 0, tone, false));
        }
        let Some((_, made, tone, ended)) = self.tone.as_mut() else {
            return;
        };
        if *ended {
            return;
        }
        let target = (u64::from(duration) * u64::from(rate)
            / u64::from(self.from.codec.clock_rate())) as u32;
        let at = pcm.len();
        pcm.resize(at + target.saturating_sub(*made) as usize, 0);
        tone.fill(&mut pcm[at..]);
        *made = target.max(*made);
        *ended = end;
    }

    /// A tone is playing: the sender's own audio waits.
    fn toning(&self) -> bool {
        self.tone.as_ref().is_some_and(|t| !t.3)
    }

    /// An input timestamp on the output clock.
    fn map_ts(&self, ts: u32, in_anchor: u32, out_anchor: u32) -> u32 {
        let diff = i64::from(ts.wrapping_sub(in_anchor) as i32);
        let scaled =
            diff * i64::from(self.to.codec.clock_rate()) / i64::from(self.from.codec.clock_rate());
        out_anchor.wrapping_add(scaled as i32 as u32)
    }

    /// Follows the input packet `p`: how many packets were lost before
    /// it, or `None` for a late or repeated packet (dropped).
    fn follow(&mut self, p: &RtpPacket<'_>) -> Option<u16> {
        let (ssrc, seq, ts) = (p.ssrc(), p.sequence(), p.timestamp());
        let lost = match self.input {
            Some((s, last, in_anchor, out_anchor)) if s == ssrc => {
                let d = seq.wrapping_sub(last) as i16;
                if d <= 0 {
                    return None;
                }
                let ideal = self.map_ts(ts, in_anchor, out_anchor);
                let ahead = ideal.wrapping_sub(self.ts) as i32;
                // More than ten seconds either way: the sender's clock
                // jumped; follow it from here.
                if ahead.unsigned_abs() > self.to.codec.clock_rate() * 10 {
                    self.input = Some((ssrc, seq, ts, self.ts));
                    self.mark = true;
                    return Some(0);
                }
                if ahead > self.step as i32 {
                    self.ts = ideal;
                    self.mark = true;
                }
                self.input = Some((ssrc, seq, in_anchor, out_anchor));
                (d as u16 - 1).min(MAX_CONCEALED)
            }
            _ => {
                self.input = Some((ssrc, seq, ts, self.ts));
                self.mark = true;
                0
            }
        };
        Some(lost)
    }

    /// The next packet of this stream around `payload`.
    fn packet(&mut self, pt: u8, ts: u32, marker: bool, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        RtpHeader {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
        }
        .write(payload, out);
        self.seq = self.seq.wrapping_add(1);
    }

    /// A payload the transcoder emitted.
    fn audio(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let (ts, mark) = (self.ts, std::mem::take(&mut self.mark));
        self.packet(self.to.pt, ts, mark, payload, out);
        self.ts = self.ts.wrapping_add(self.step);
    }

    /// An RFC 4733 event packet from the sender, for the receiver.
    fn event(&mut self, p: &RtpPacket<'_>, out: &mut Vec<u8>) -> bool {
        let (Some(pt), Some((_, _, in_anchor, out_anchor))) = (self.to.telephone_event, self.input)
        else {
            return false;
        };
        let mut payload = p.payload().to_vec();
        if payload.len() < 4 {
            return false;
        }
        let (to, from) = (self.to.codec.clock_rate(), self.from.codec.clock_rate());
        if to != from {
            let d = u32::from(u16::from_be_bytes([payload[2], payload[3]]));
            let d = u16::try_from(d * to / from).unwrap_or(u16::MAX);
            payload[2..4].copy_from_slice(&d.to_be_bytes());
        }
        let ts = self.map_ts(p.timestamp(), in_anchor, out_anchor);
        self.packet(pt, ts, p.marker(), &payload, out);
        true
    }
}

/// A transcoded call's media: both directions.
pub(crate) struct Transcoded {
    plan: Transcoding,
    transcoder: Transcoder,
    /// What goes to A, and what goes to B.
    to_a: Stream,
    to_b: Stream,
    /// Tone audio being made.
    pcm: Vec<i16>,
}

impl Transcoded {
    /// Media for `plan`, the switch's streams under SSRCs from `ssrc`.
    pub(crate) fn new(plan: Transcoding, ssrc: u32) -> Result<Transcoded, TranscodeError> {
        Ok(Transcoded {
            plan,
            transcoder: Transcoder::new(codec(plan.a), codec(plan.b))?,
            to_a: Stream::new(plan.b, plan.a, ssrc),
            to_b: Stream::new(plan.a, plan.b, ssrc.rotate_left(16)),
            pcm: Vec::new(),
        })
    }

    /// The plan it was built for.
    pub(crate) fn plan(&self) -> Transcoding {
        self.plan
    }

    /// A packet (already source-checked) from `from`: `send` gets each
    /// packet for the other leg. An error is a payload the decoder
    /// refused; the stream carries on.
    pub(crate) fn on_packet(
        &mut self,
        from: Leg,
        p: &RtpPacket<'_>,
        out: &mut Vec<u8>,
        mut send: impl FnMut(&[u8]),
    ) -> Result<(), TranscodeError> {
        let stream = match from {
            Leg::A => &mut self.to_b,
            Leg::B => &mut self.to_a,
        };
        let Some(lost) = stream.follow(p) else {
            return Ok(());
        };
        let t = &mut self.transcoder;
        if p.payload_type() != stream.from.pt {
            if Some(p.payload_type()) != stream.from.telephone_event {
                return Ok(());
            }
            if stream.to.telephone_event.is_some() {
                if stream.event(p, out) {
                    send(out);
                }
                return Ok(());
            }
            // The receiver takes no events: the digit's tones instead.
            let mut pcm = std::mem::take(&mut self.pcm);
            pcm.clear();
            stream.tone(p, codec(stream.from).pcm_rate(), &mut pcm);
            let mut emit = |frame: &[u8]| {
                stream.audio(frame, out);
                send(out);
            };
            let r = match from {
                Leg::A => t.pcm_a_to_b(&pcm, &mut emit),
                Leg::B => t.pcm_b_to_a(&pcm, &mut emit),
            };
            self.pcm = pcm;
            return r.map(|_| ());
        }
        if stream.toning() {
            return Ok(());
        }
        let mut run = |payload: Option<&[u8]>| -> Result<(), TranscodeError> {
            let mut emit = |frame: &[u8]| {
                stream.audio(frame, out);
                send(out);
            };
            match from {
                Leg::A => t.a_to_b(payload, &mut emit),
                Leg::B => t.b_to_a(payload, &mut emit),
            }
            .map(|_| ())
        };
        for _ in 0..lost {
            run(None)?;
        }
        run(Some(p.payload()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentiric_media::g711::Law;

    fn plan() -> Transcoding {
        Transcoding {
            a: LegFormat {
                codec: AudioCodec::Pcmu,
                pt: 0,
                telephone_event: Some(101),
            },
            b: LegFormat {
                codec: AudioCodec::Opus,
                pt: 96,
                telephone_event: Some(97),
            },
        }
    }

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x1234,
        }
        .write(payload, &mut v);
        v
    }

    /// Sends 20 ms PCMU packets from A with sequence numbers `seqs` (and
    /// timestamps to match); returns (seq, ts, pt, marker) of what
    /// reaches B.
    fn from_a(t: &mut Transcoded, seqs: &[u16]) -> Vec<(u16, u32, u8, bool)> {
        let tone: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let mut payload = Vec::new();
        Law::Ulaw.encode(&tone, &mut payload);
        let mut got = Vec::new();
        let mut out = Vec::new();
        for &seq in seqs {
            let pkt = rtp(0, seq, u32::from(seq) * 160, &payload);
            let p = RtpPacket::parse(&pkt).unwrap();
            t.on_packet(Leg::A, &p, &mut out, |b| {
                let q = RtpPacket::parse(b).unwrap();
                got.push((q.sequence(), q.timestamp(), q.payload_type(), q.marker()));
            })
            .unwrap();
        }
        got
    }

    #[test]
    fn g711_to_opus_one_packet_a_frame_on_the_opus_clock() {
        let mut t = Transcoded::new(plan(), 7).unwrap();
        let got = from_a(&mut t, &[10, 11, 12]);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|g| g.2 == 96));
        assert!(got[0].3 && !got[1].3 && !got[2].3);
        assert_eq!(got[1].0, got[0].0.wrapping_add(1));
        assert_eq!(got[1].1.wrapping_sub(got[0].1), 960);
        assert_eq!(got[2].1.wrapping_sub(got[1].1), 960);
    }

    #[test]
    fn a_gap_moves_time_forward_and_late_packets_are_dropped() {
        let mut t = Transcoded::new(plan(), 7).unwrap();
        // 13 and 14 lost (G.711 has nothing to conceal), 12 late.
        let got = from_a(&mut t, &[10, 11, 15, 12]);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].1.wrapping_sub(got[1].1), 4 * 960);
        // Sequence numbers stay contiguous: it is the switch's stream.
        assert_eq!(got[2].0, got[1].0.wrapping_add(1));
        assert!(got[2].3, "a jump starts a talk spurt");
    }

    #[test]
    fn events_cross_on_the_other_legs_clock() {
        let mut t = Transcoded::new(plan(), 7).unwrap();
        from_a(&mut t, &[10]);
        // Digit 5, duration 400 on the 8 kHz clock, at the audio's time.
        let pkt = rtp(101, 11, 1600, &[5, 10, 0x01, 0x90]);
        let mut got = Vec::new();
        let mut out = Vec::new();
        t.on_packet(Leg::A, &RtpPacket::parse(&pkt).unwrap(), &mut out, |b| {
            got.push(b.to_vec())
        })
        .unwrap();
        assert_eq!(got.len(), 1);
        let q = RtpPacket::parse(&got[0]).unwrap();
        assert_eq!(q.payload_type(), 97);
        assert_eq!(q.payload(), [5, 10, 0x09, 0x60]); // 2400 at 48 kHz
                                                      // Comfort noise is not relayed.
        let cn = rtp(13, 12, 1760, &[40]);
        t.on_packet(Leg::A, &RtpPacket::parse(&cn).unwrap(), &mut out, |_| {
            panic!("CN relayed")
        })
        .unwrap();
    }

    #[test]
    fn opus_back_to_g711_is_heard() {
        let mut t = Transcoded::new(plan(), 7).unwrap();
        // A's audio through to B, then B's Opus back to A.
        let mut opus = Vec::new();
        let tone: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let mut enc = Transcoder::new(Codec::Pcmu, Codec::opus(8000)).unwrap();
        let mut pcmu = Vec::new();
        Law::Ulaw.encode(&tone, &mut pcmu);
        for _ in 0..5 {
            enc.a_to_b(Some(&pcmu), |p| opus.push(p.to_vec())).unwrap();
        }
        let mut got = Vec::new();
        let mut out = Vec::new();
        for (i, o) in opus.iter().enumerate() {
            let pkt = rtp(96, i as u16, i as u32 * 960, o);
            t.on_packet(Leg::B, &RtpPacket::parse(&pkt).unwrap(), &mut out, |b| {
                got.push(b.to_vec())
            })
            .unwrap();
        }
        assert_eq!(got.len(), 5);
        let last = RtpPacket::parse(&got[4]).unwrap();
        assert_eq!((last.payload_type(), last.payload().len()), (0, 160));
        let mut pcm = Vec::new();
        Law::Ulaw.decode(last.payload(), &mut pcm);
        let rms = (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0).sqrt();
        assert!(rms > 1000.0, "rms {rms}");
    }

    #[test]
    fn events_become_tones_for_a_leg_without_telephone_event() {
        // Both legs PCMU; only A has events.
        let side = |te| LegFormat {
            codec: AudioCodec::Pcmu,
            pt: 0,
            telephone_event: te,
        };
        let mut t = Transcoded::new(
            Transcoding {
                a: side(Some(101)),
                b: side(None),
            },
            7,
        )
        .unwrap();
        from_a(&mut t, &[10]);
        // Digit 7 for 120 ms: updates every 20 ms, the end three times;
        // A's audio sent meanwhile is not heard over the tone.
        let mut pkts: Vec<(u8, u32, Vec<u8>)> = [160u16, 320, 480, 640, 800, 960]
            .iter()
            .map(|d| (101, 1760, vec![7, 10, (d >> 8) as u8, *d as u8]))
            .collect();
        pkts.insert(2, (0, 2080, vec![0xff; 160]));
        pkts.extend((0..3).map(|_| (101, 1760, vec![7, 0x8a, 0x03, 0xc0])));
        let pkts: Vec<Vec<u8>> = pkts
            .iter()
            .enumerate()
            .map(|(i, (pt, ts, payload))| rtp(*pt, 11 + i as u16, *ts, payload))
            .collect();
        let mut got = Vec::new();
        let mut out = Vec::new();
        for pkt in &pkts {
            t.on_packet(Leg::A, &RtpPacket::parse(pkt).unwrap(), &mut out, |b| {
                got.push(b.to_vec())
            })
            .unwrap();
        }
        // Six frames of tone, in PCMU, contiguous.
        assert_eq!(got.len(), 6);
        let mut detector = sentiric_media::dtmf::DtmfDetector::new(8000, 20, 40);
        let mut digits = Vec::new();
        for (i, g) in got.iter().enumerate() {
            let q = RtpPacket::parse(g).unwrap();
            assert_eq!(q.payload_type(), 0);
            if i > 0 {
                let prev = RtpPacket::parse(&got[i - 1]).unwrap();
                assert_eq!(q.timestamp().wrapping_sub(prev.timestamp()), 160);
            }
            let mut pcm = Vec::new();
            Law::Ulaw.decode(q.payload(), &mut pcm);
            digits.extend(detector.push(&pcm).map(|d| d.key));
        }
        digits.extend(detector.finish().map(|d| d.key));
        assert_eq!(digits, ['7']);
        // Audio flows again after the end.
        assert_eq!(from_a(&mut t, &[21]).len(), 1);
    }
}
