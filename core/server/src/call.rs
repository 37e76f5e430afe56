//! `sentiric call URI`: a small user agent for people and tests. It places
//! one call through any SIP server over UDP, streams a WAV file (or
//! silence) as G.711, records what it hears, sends DTMF as RFC 4733
//! events, hangs up after a while, and prints a JSON summary: the
//! responses, the setup time, and the RTP counts each way.
//!
//! ```text
//! sentiric call sip:600@127.0.0.1 --play hello.wav --record heard.wav --dtmf 12# --duration 5
//! ```

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sentiric_media::dtmf::DtmfDetector as ToneDetector;
use sentiric_media::g711::Law;
use sentiric_media::wav::{Wav, WavPlayer, WavRecorder};
use sentiric_rtp::dtmf::{char_event, event_char, DtmfDetector, DtmfEvent, DtmfSender};
use sentiric_rtp::packet::{RtpHeader, RtpPacket};
use sentiric_sip::build::{response_to, MessageBuilder};
use sentiric_sip::dialog::Dialog;
use sentiric_sip::transaction::{
    IncomingRequest, IncomingResponse, Reliability, TimerConfig, TransactionEvent, TransactionLayer,
};
use sentiric_sip::{HeaderName, Host, Message, Method, Uri};

use crate::voice::{Coder, Voice};
use crate::worker::random_u64;

pub(crate) use crate::cli::CallArgs;

/// Payload type `sentiric call` offers Opus on.
const OPUS_PT: u8 = 111;

/// The codec `--codec` names.
fn voice(codec: Option<crate::cli::CodecArg>) -> Option<Voice> {
    use crate::cli::CodecArg;
    codec.map(|c| match c {
        CodecArg::Pcmu => Voice::G711(Law::Ulaw),
        CodecArg::Pcma => Voice::G711(Law::Alaw),
        CodecArg::Opus => Voice::Opus,
    })
}

/// The address a SIP URI names (an IP address; names need DNS). This
/// user agent speaks UDP only: a `sips:` URI or another transport is
/// refused, never reached over UDP instead.
fn uri_target(uri: &str) -> Result<SocketAddr, String> {
    let u = Uri::parse(uri).map_err(|e| format!("{uri}: {e}"))?;
    let sip = u.as_sip().ok_or_else(|| format!("{uri}: not a sip: URI"))?;
    if sip.secure {
        return Err(format!(
            "{uri}: a sips: URI is reached over TLS only, which `sentiric call` does not speak yet (refused rather than sent over UDP)"
        ));
    }
    match sip.params.get("transport").flatten() {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("udp") => {}
        Some(t) => {
            return Err(format!(
                "{uri}: transport={t}: `sentiric call` speaks UDP only (refused rather than sent over UDP)"
            ))
        }
    }
    let ip: IpAddr = match sip.host {
        Host::Ipv4(a) => a.into(),
        Host::Ipv6(a) => a.into(),
        Host::Domain(d) => {
            return Err(format!(
                "{d}: host names are not resolved yet; use an address"
            ))
        }
    };
    Ok(SocketAddr::new(ip, sip.port.unwrap_or(5060)))
}

/// Where the far end receives media, the codec, its payload type, and
/// that of `telephone-event`.
type MediaChoice = (SocketAddr, Voice, u8, Option<u8>);

/// The remote media address and the codec an SDP answer chose.
fn answer_media(body: &[u8]) -> Option<MediaChoice> {
    let sdp = sentiric_sdp::SessionDescription::parse(body).ok()?;
    let m = sdp.media.first()?;
    let ip = sdp.connection_of(0)?.ip()?;
    let (voice, pt) = m.payload_types().find_map(|pt| match pt {
        0 => Some((Voice::G711(Law::Ulaw), 0)),
        8 => Some((Voice::G711(Law::Alaw), 8)),
        _ => m
            .rtpmap(pt)
            .filter(|r| r.encoding.eq_ignore_ascii_case("opus") && r.clock_rate == 48000)
            .map(|_| (Voice::Opus, pt)),
    })?;
    let clock = if voice == Voice::Opus { 48000 } else { 8000 };
    Some((
        SocketAddr::new(ip, m.port),
        voice,
        pt,
        m.telephone_event(clock),
    ))
}

/// The `m=` line and attributes `sentiric call` offers for `codec`.
fn offer_media(codec: Option<Voice>, port: u16) -> String {
    let te = |clock: u32| format!("a=rtpmap:101 telephone-event/{clock}\r\na=fmtp:101 0-16\r\n");
    match codec {
        None => format!(
            "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n{}",
            te(8000)
        ),
        Some(Voice::G711(law)) => {
            let pt = if law == Law::Ulaw { 0 } else { 8 };
            let name = Voice::G711(law).name();
            format!(
                "m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n{}",
                te(8000)
            )
        }
        Some(Voice::Opus) => format!(
            "m=audio {port} RTP/AVP {OPUS_PT} 101\r\na=rtpmap:{OPUS_PT} opus/48000/2\r\n\
             a=fmtp:{OPUS_PT} useinbandfec=1\r\n{}",
            te(48000)
        ),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Sip {
    sock: UdpSocket,
    layer: TransactionLayer<SocketAddr>,
    local: SocketAddr,
}

impl Sip {
    fn via(&self) -> String {
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{:016x}",
            self.local,
            random_u64()
        )
    }

    fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            let _ = self.sock.send_to(&t.bytes, t.destination);
        }
    }
}

/// Places the call; prints the summary; `Ok(true)` when it was answered
/// and hung up cleanly.
pub(crate) fn run(args: &CallArgs) -> Result<bool, String> {
    let target = uri_target(&args.uri)?;
    // A recording that cannot be written is refused before dialling.
    if let Some(path) = &args.record {
        std::fs::File::create(path).map_err(|e| format!("--record {}: {e}", path.display()))?;
    }
    let sock = UdpSocket::bind((args.bind, 0)).map_err(|e| format!("SIP socket: {e}"))?;
    let rtp = UdpSocket::bind((args.bind, 0)).map_err(|e| format!("RTP socket: {e}"))?;
    rtp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let rtp_local = rtp.local_addr().map_err(|e| e.to_string())?;
    let player = match &args.play {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let wav = Wav::parse(&bytes).map_err(|e| format!("{}: {e:?}", p.display()))?;
            Some(WavPlayer::new(&wav, 8000).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let mut sip = Sip {
        sock,
        layer: TransactionLayer::new(TimerConfig::default(), 64),
        local,
    };
    let ip = local.ip();
    let sdp = format!(
        "v=0\r\no=sentiric-call {id} 1 IN IP{v} {ip}\r\ns=-\r\nc=IN IP{v} {ip}\r\nt=0 0\r\n\
         {}a=ptime:20\r\n",
        offer_media(voice(args.codec), rtp_local.port()),
        id = random_u64() >> 1,
        v = if ip.is_ipv4() { 4 } else { 6 },
    );
    let host = if ip.is_ipv4() {
        ip.to_string()
    } else {
        format!("[{ip}]")
    };
    let from = format!("<sip:sentiric-call@{host}>;tag={:016x}", random_u64());
    let mut b = MessageBuilder::request(Method::Invite, &args.uri)
        .header(HeaderName::Via, &sip.via())
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, &from)
        .header(HeaderName::To, &format!("<{}>", args.uri))
        .header(HeaderName::CallId, &format!("{:016x}@{host}", random_u64()))
        .header(HeaderName::Contact, &format!("<sip:sentiric-call@{local}>"))
        .header(
            HeaderName::UserAgent,
            concat!("sentiric-call/", env!("CARGO_PKG_VERSION")),
        );
    b.push_header("CSeq", "1 INVITE");
    let invite = b.body(Some("application/sdp"), sdp.as_bytes());
    let started = Instant::now();
    let invite_msg = Message::parse(&invite).map_err(|e| e.to_string())?;
    let invite_req = invite_msg.as_request().ok_or("INVITE")?;
    sip.layer
        .send_request(started, invite_req, target, Reliability::Unreliable)
        .map_err(|e| e.to_string())?;
    sip.flush();
    eprintln!("calling {} at {target} from {local}", args.uri);

    // Until a final response.
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 65_535];
    let mut answered: Option<(Dialog, Option<MediaChoice>)> = None;
    let mut setup = None;
    let mut final_status = 0u16;
    let mut next_note = started + Duration::from_secs(4);
    while final_status == 0 {
        if Instant::now() >= next_note {
            eprintln!(
                "no final response after {} s (SIP gives up at 32 s)",
                started.elapsed().as_secs()
            );
            next_note += Duration::from_secs(4);
        }
        let wait = sip
            .layer
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        sip.sock
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        if let Ok((n, _)) = sip.sock.recv_from(&mut buf) {
            if let Ok(m) = Message::parse(&buf[..n]) {
                if let Some(resp) = m.as_response() {
                    if let IncomingResponse::Deliver(_) =
                        sip.layer.receive_response(Instant::now(), resp)
                    {
                        codes.push(resp.status);
                        eprintln!(
                            "{} {} after {:.1} ms",
                            resp.status,
                            resp.reason,
                            started.elapsed().as_secs_f64() * 1000.0
                        );
                        if resp.status >= 200 {
                            final_status = resp.status;
                            setup = Some(started.elapsed());
                            if resp.status < 300 {
                                let dialog = Dialog::new_uac(invite_req, resp)
                                    .map_err(|e| format!("{e:?}"))?;
                                answered = Some((dialog, answer_media(resp.body)));
                            }
                        }
                    }
                }
            }
        }
        sip.layer.handle_timeout(Instant::now());
        while let Some(ev) = sip.layer.poll_event() {
            if let TransactionEvent::Timeout(_) = ev.event {
                final_status = 408;
                codes.push(408);
                // The time to the final status, here the transaction's
                // own (Timer B: no response at all).
                setup = Some(started.elapsed());
                eprintln!(
                    "no response from {target} in {:.1} s: 408 (Timer B)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        sip.flush();
    }
    let setup_ms = setup.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let Some((mut dialog, media)) = answered else {
        println!(
            "{{\"uri\":{},\"status\":{final_status},\"codes\":{codes:?},\"setup_ms\":{setup_ms:.1}}}",
            json_str(&args.uri)
        );
        return Ok(false);
    };
    let remote_sip = dialog
        .remote_target_uri()
        .and_then(|u| uri_target(u.as_str()).ok())
        .unwrap_or(target);
    let ack = dialog.create_ack(1, &sip.via()).finish();
    let _ = sip.sock.send_to(&ack, remote_sip);
    let Some((remote_rtp, voice, pt, te)) = media else {
        return Err("the answer has no audio stream in a codec this agent speaks".into());
    };
    let mut coder = Coder::new(voice)?;
    let step = voice.step();
    let te = te.unwrap_or(101);

    // Media: 20 ms frames out, everything heard decoded and recorded.
    // Without --duration: until the played file ends (and half a second
    // more, for its echo to come back), or 5 s of test tone.
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if args.play.is_some() {
            24 * 3600
        } else {
            5
        }));
    let mut file_ended: Option<Instant> = None;
    let mut player = player;
    // 440 Hz at -16 dBFS, half a second on, half off.
    let mut tone = args
        .play
        .is_none()
        .then(|| sentiric_media::tone::Tone::new(440.0, 0.0, -16.0, 8000).with_cadence(500, 500));
    let mut recorder = args.record.as_ref().map(|_| WavRecorder::new(8000, 1));
    let ssrc = random_u64() as u32;
    let (mut seq, mut ts) = (random_u64() as u16, random_u64() as u32);
    let (mut sent, mut received) = (0u64, 0u64);
    // Per source (a prompt, then the far end, say): the SSRC and the
    // first, last and highest extended sequence numbers; packets expected
    // from the sources before the current one.
    let mut seqs: Option<(u32, i64, i64, i64)> = None;
    let mut expected_before = 0u64;
    let mut detector = DtmfDetector::new();
    let mut heard_dtmf = String::new();
    let mut tones = ToneDetector::new(8000, 20, 40);
    let (mut heard_tones, mut heard) = (String::new(), Vec::new());
    let mut digits: Vec<char> = args.dtmf.chars().collect();
    digits.reverse();
    let mut dtmf: Option<DtmfSender> = None;
    let (mut pcm, mut payload, mut packet) = (Vec::new(), Vec::new(), Vec::new());
    let media_start = Instant::now();
    let mut next_frame = media_start;
    let mut remote_bye = false;
    sip.sock
        .set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| e.to_string())?;
    while media_start.elapsed() < duration
        && !remote_bye
        && !(args.duration.is_none()
            && file_ended.is_some_and(|t| t.elapsed() >= Duration::from_millis(500)))
    {
        let now = Instant::now();
        if now >= next_frame {
            next_frame += Duration::from_millis(20);
            // DTMF from half a second in, one digit after another.
            if dtmf.is_none() && media_start.elapsed() > Duration::from_millis(500) {
                if let Some(d) = digits.pop() {
                    // 100 ms tones, an update every 20 ms, on the codec's clock.
                    let (total, every) = ((step * 5) as u16, step as u16);
                    dtmf = char_event(d).map(|e| DtmfSender::new(e, ts, total, every, 10));
                }
            }
            packet.clear();
            match dtmf.as_mut().and_then(Iterator::next) {
                Some(p) => {
                    let h = RtpHeader {
                        marker: p.marker,
                        payload_type: te,
                        sequence: seq,
                        timestamp: p.timestamp,
                        ssrc,
                    };
                    h.write(&p.payload, &mut packet);
                }
                None => {
                    dtmf = None;
                    let playing = player.as_mut().is_some_and(|p| p.next_frame(&mut pcm));
                    if !playing && player.is_some() && file_ended.is_none() {
                        file_ended = Some(now);
                    }
                    if !playing {
                        pcm.clear();
                        pcm.resize(160, 0);
                        // Without --play: a test tone, so that an echo
                        // test is heard (and its recording is not
                        // silence); after a --play file: silence.
                        if let Some(t) = tone.as_mut() {
                            t.fill(&mut pcm);
                        }
                    }
                    coder.encode(&pcm, &mut payload);
                    let h = RtpHeader {
                        marker: sent == 0,
                        payload_type: pt,
                        sequence: seq,
                        timestamp: ts,
                        ssrc,
                    };
                    h.write(&payload, &mut packet);
                }
            }
            let _ = rtp.send_to(&packet, remote_rtp);
            sent += 1;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(step);
        }
        // What arrived.
        while let Ok((n, _)) = rtp.recv_from(&mut buf) {
            let Ok(p) = RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            received += 1;
            // Extended sequence numbers: the first, the last, the highest.
            let s = p.sequence();
            match seqs.as_mut() {
                Some((ssrc, _, last, high)) if *ssrc == p.ssrc() => {
                    *last += i64::from(s.wrapping_sub(*last as u16) as i16);
                    *high = (*high).max(*last);
                }
                other => {
                    if let Some((_, first, _, high)) = other {
                        expected_before += (*high - *first + 1).max(0) as u64;
                    }
                    let s = i64::from(s);
                    seqs = Some((p.ssrc(), s, s, s));
                }
            }
            if p.payload_type() == te {
                for ev in detector.on_packet(p.timestamp(), p.payload()) {
                    if let DtmfEvent::End { event, .. } = ev {
                        if let Some(c) = event_char(event) {
                            heard_dtmf.push(c);
                        }
                    }
                }
            } else if p.payload_type() == pt {
                coder.decode(p.payload(), &mut heard);
                // Digits heard as tones, 20 ms at a time.
                for frame in heard.chunks_exact(160) {
                    if let Some(d) = tones.push(frame) {
                        heard_tones.push(d.key);
                    }
                }
                if let Some(r) = recorder.as_mut() {
                    r.push(&heard, None);
                }
            }
        }
        // SIP meanwhile: a BYE from the far end, a retransmitted 2xx.
        if let Ok((n, from)) = sip.sock.recv_from(&mut buf) {
            if let Ok(m) = Message::parse(&buf[..n]) {
                if let Some(req) = m.as_request() {
                    if let IncomingRequest::New(id) = sip.layer.receive_request(
                        Instant::now(),
                        req,
                        from,
                        Reliability::Unreliable,
                    ) {
                        let status = if req.method == Method::Bye { 200 } else { 501 };
                        let reason = if status == 200 {
                            "OK"
                        } else {
                            "Not Implemented"
                        };
                        let _ = sip.layer.send_response(
                            Instant::now(),
                            id,
                            response_to(req, status, reason, None).finish(),
                        );
                        remote_bye |= req.method == Method::Bye;
                    }
                } else if m
                    .as_response()
                    .is_some_and(|r| (200..300).contains(&r.status))
                {
                    let _ = sip.sock.send_to(&ack, remote_sip);
                }
            }
        }
        sip.layer.handle_timeout(Instant::now());
        sip.flush();
        let pause = next_frame
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(5));
        std::thread::sleep(pause);
    }

    // Hang up, unless the far end did.
    let mut bye_status = if remote_bye { 200 } else { 0 };
    if !remote_bye {
        let bye = dialog.create_request(Method::Bye, &sip.via()).finish();
        let m = Message::parse(&bye).map_err(|e| e.to_string())?;
        let req = m.as_request().ok_or("BYE")?;
        sip.layer
            .send_request(Instant::now(), req, remote_sip, Reliability::Unreliable)
            .map_err(|e| e.to_string())?;
        sip.flush();
        let give_up = Instant::now() + Duration::from_secs(8);
        sip.sock
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        while bye_status == 0 && Instant::now() < give_up {
            if let Ok((n, _)) = sip.sock.recv_from(&mut buf) {
                if let Ok(m) = Message::parse(&buf[..n]) {
                    if let Some(r) = m.as_response() {
                        if r.cseq().method == Method::Bye && r.status >= 200 {
                            bye_status = r.status;
                        }
                    }
                }
            }
            sip.layer.handle_timeout(Instant::now());
            sip.flush();
        }
    }
    if let (Some(path), Some(r)) = (&args.record, recorder) {
        std::fs::write(path, r.to_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let expected =
        expected_before + seqs.map_or(0, |(_, first, _, high)| (high - first + 1).max(0) as u64);
    let lost = expected.saturating_sub(received);
    println!(
        "{{\"uri\":{},\"status\":{final_status},\"codes\":{codes:?},\"setup_ms\":{setup_ms:.1},\
         \"media\":{{\"codec\":\"{}\",\"remote\":\"{remote_rtp}\",\"sent\":{sent},\"received\":{received},\
         \"lost\":{lost},\"dtmf_received\":{},\"dtmf_tones_heard\":{}}},\"bye\":{bye_status},\
         \"hung_up_by\":\"{}\"}}",
        json_str(&args.uri),
        voice.name(),
        json_str(&heard_dtmf),
        json_str(&heard_tones),
        if remote_bye { "remote" } else { "local" },
    );
    Ok(bye_status == 200)
}
