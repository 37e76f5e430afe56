//! End to end with SIPp (Debian `sip-tester`) on both sides of the switch:
//! a SIPp UAC calls through `sentiric` to SIPp UASes on other loopback
//! addresses. The test command installs SIPp and sets
//! `SENTIRIC_REQUIRE_SIPP=1`, so there these tests fail rather than skip
//! when SIPp is missing.

use std::io::Write;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// One SIPp scenario at a time: each runs two SIPp processes and the
/// switch, and on a two-core machine parallel runs miss SIPp's timers.
static SERIAL: Mutex<()> = Mutex::new(());

fn sipp_available() -> bool {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        assert!(
            std::env::var("SENTIRIC_REQUIRE_SIPP").as_deref() != Ok("1"),
            "SIPp is required here (apt-get install sip-tester)"
        );
        eprintln!("skipped: SIPp is not installed (apt-get install sip-tester)");
    }
    ok
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sentiric-sipp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod common;
use common::{best_correlation, share_at, sweep, wav_bytes, wav_samples, Switch};

/// Starts SIPp in `dir` with `args`.
fn sipp(dir: &Path, args: &[&str]) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .args(["-nostdin", "-timeout", "60s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp")
}

fn wait_ok(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "{what}: SIPp exited with {status}");
}

/// A UAS that answers every INVITE with `status` and takes the ACK.
fn uas_failing(status: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS answering {status}">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"#
    )
}

/// A UAC whose call must end with `status` (and its ACK).
fn uac_expecting(status: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC expecting {status}">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="{status}" />
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#
    )
}

fn config(min_port: u16, rules: &str) -> String {
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {}\n{rules}",
        min_port + 199
    )
}

#[test]
fn sipp_calls_bridged_with_media_played_and_echoed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let dir = Scratch::new("media");
    // SIPp's pcap scenario plays pcap/g711a.pcap from its directory.
    let pcaps = Path::new("/usr/share/sip-tester");
    assert!(pcaps.join("g711a.pcap").exists(), "sip-tester's pcaps");
    std::os::unix::fs::symlink(pcaps, dir.0.join("pcap")).unwrap();
    let sw = Switch::start(Some(&config(
            22000,
            "[[dialplan.rule]]\nuser = \"uas\"\naction = \"bridge\"\ntargets = [\"sip:uas@127.0.0.41:5090\"]\n",
        )), &[]);
    let uas = sipp(
        &dir.0,
        &[
            "-sn",
            "uas",
            "-rtp_echo",
            "-i",
            "127.0.0.41",
            "-p",
            "5090",
            "-m",
            "3",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let uac = sipp(
        &dir.0,
        &[
            "-sn",
            "uac_pcap",
            "-s",
            "uas",
            "-i",
            "127.0.0.42",
            "-p",
            "5091",
            "-m",
            "3",
            "-l",
            "3",
            "-r",
            "3",
            &target,
        ],
    );
    wait_ok(uac, "uac_pcap");
    wait_ok(uas, "uas");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sw.lines("ended: 200").len(), 3, "{:?}", sw.log());
    assert_eq!(sw.lines("ended: 200, by the caller (A)").len(), 3);
    // Each call: SIPp's G.711 and DTMF captures from the UAC (246 packets
    // when measured), echoed back by the UAS, all through the switch's
    // ports and nothing dropped there.
    let media = sw.lines(" media: ");
    assert_eq!(media.len(), 3, "{media:?}");
    for line in &media {
        // The message's numbers (the log line's fields follow it):
        // [from A, foreign, invalid, from B, foreign, invalid].
        let counts: Vec<u64> = line
            .split("media: ")
            .nth(1)
            .unwrap_or("")
            .split(' ')
            .filter_map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .take(6)
            .collect();
        assert_eq!(counts.len(), 6, "{line}");
        assert!(counts[0] >= 200, "{line}");
        assert!(counts[3] * 10 >= counts[0] * 9, "echo short: {line}");
        assert_eq!((counts[1], counts[4]), (0, 0), "{line}");
    }
}

#[test]
fn sipp_failover_from_503_to_the_second_target() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let dir = Scratch::new("failover");
    let failing = dir.write("uas503.xml", &uas_failing("503 Service Unavailable"));
    let sw = Switch::start(
        Some(&config(
            22200,
            "[[dialplan.rule]]\nuser = \"fo\"\naction = \"bridge\"\n\
             targets = [\"sip:fo@127.0.0.43:5092\", \"sip:fo@127.0.0.44:5093\"]\n",
        )),
        &[],
    );
    let first = sipp(
        &dir.0,
        &[
            "-sf",
            failing.to_str().unwrap(),
            "-i",
            "127.0.0.43",
            "-p",
            "5092",
            "-m",
            "2",
        ],
    );
    let second = sipp(
        &dir.0,
        &["-sn", "uas", "-i", "127.0.0.44", "-p", "5093", "-m", "2"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let uac = sipp(
        &dir.0,
        &[
            "-sn",
            "uac",
            "-s",
            "fo",
            "-i",
            "127.0.0.45",
            "-p",
            "5094",
            "-m",
            "2",
            &target,
        ],
    );
    wait_ok(uac, "uac");
    wait_ok(first, "uas answering 503");
    wait_ok(second, "uas");
}

#[test]
fn sipp_busy_callee_is_relayed_to_the_caller() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let dir = Scratch::new("busy");
    let busy = dir.write("uas486.xml", &uas_failing("486 Busy Here"));
    let caller = dir.write("uac486.xml", &uac_expecting(486));
    let sw = Switch::start(
        Some(&config(
            22400,
            "[[dialplan.rule]]\nuser = \"busy\"\naction = \"bridge\"\n\
             targets = [\"sip:busy@127.0.0.46:5095\", \"sip:never@127.0.0.47:5096\"]\n",
        )),
        &[],
    );
    let uas = sipp(
        &dir.0,
        &[
            "-sf",
            busy.to_str().unwrap(),
            "-i",
            "127.0.0.46",
            "-p",
            "5095",
            "-m",
            "2",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    // 486 is not a reason to try the next target: it reaches the caller.
    let uac = sipp(
        &dir.0,
        &[
            "-sf",
            caller.to_str().unwrap(),
            "-s",
            "busy",
            "-i",
            "127.0.0.48",
            "-p",
            "5097",
            "-m",
            "2",
            &target,
        ],
    );
    wait_ok(uac, "uac expecting 486");
    wait_ok(uas, "uas answering 486");
    assert_eq!(sw.lines("ended: 486").len(), 2, "{:?}", sw.log());
}

/// A UAC that calls, holds (re-INVITE, sendonly), resumes (re-INVITE,
/// sendrecv) and hangs up.
const UAC_HOLD_RESUME: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC hold and resume">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="200" />
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendonly
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200">
    <action>
      <ereg regexp="a=recvonly" search_in="body" check_it="true" assign_to="held" />
      <log message="held: [$held]" />
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 3 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200" />
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 4 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" />
</scenario>
"#;

/// A UAS that answers the call and two re-INVITEs, answering a sendonly
/// offer with recvonly, then takes the BYE.
const UAS_HOLD_RESUME: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS answering hold and resume">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action>
      <ereg regexp="a=sendonly" search_in="body" check_it="true" assign_to="hold" />
      <log message="hold: [$hold]" />
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=recvonly
    ]]>
  </send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action>
      <ereg regexp="a=sendrecv" search_in="body" check_it="true" assign_to="resume" />
      <log message="resume: [$resume]" />
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 3 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

#[test]
fn sipp_hold_and_resume_by_re_invite() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let dir = Scratch::new("hold");
    let uac_file = dir.write("uac_hold.xml", UAC_HOLD_RESUME);
    let uas_file = dir.write("uas_hold.xml", UAS_HOLD_RESUME);
    let sw = Switch::start(
        Some(&config(
            22600,
            "[[dialplan.rule]]\nuser = \"hold\"\naction = \"bridge\"\n\
             targets = [\"sip:hold@127.0.0.49:5098\"]\n",
        )),
        &[],
    );
    let uas = sipp(
        &dir.0,
        &[
            "-sf",
            uas_file.to_str().unwrap(),
            "-i",
            "127.0.0.49",
            "-p",
            "5098",
            "-m",
            "2",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let uac = sipp(
        &dir.0,
        &[
            "-sf",
            uac_file.to_str().unwrap(),
            "-s",
            "hold",
            "-i",
            "127.0.0.50",
            "-p",
            "5099",
            "-m",
            "2",
            &target,
        ],
    );
    wait_ok(uac, "uac hold/resume");
    wait_ok(uas, "uas hold/resume");
    assert_eq!(
        sw.lines("ended: 200, by the caller (A)").len(),
        2,
        "{:?}",
        sw.log()
    );
}

/// A UAC that cancels its call once it rings.
const UAC_CANCEL: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC cancelling while ringing">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="180" />
  <send retrans="500">
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" />
  <recv response="487" />
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-6]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

/// A UAS that rings until cancelled.
const UAS_CANCELLED: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS ringing until cancelled">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="CANCEL" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"#;

/// A UAS that answers and then hangs up itself.
const UAS_HANGS_UP: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS hanging up">
  <recv request="INVITE">
    <action>
      <ereg regexp="&lt;(sip:[^&gt;]*)&gt;" search_in="hdr" header="Contact:" assign_to="c,contact" />
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from" />
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to" />
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" />
  <pause milliseconds="200" />
  <send retrans="500">
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to];tag=[pid]SIPpTag01[call_number]
      To: [$from]
      [last_Call-ID:]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200">
    <action>
      <log message="[$c]" />
    </action>
  </recv>
</scenario>
"#;

/// A UAC whose call the far end hangs up.
const UAC_HUNG_UP_ON: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC hung up on">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200" />
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="BYE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

/// Runs one scenario pair through a switch bridging `user` to the UAS.
fn scenario_pair(
    name: &str,
    min_port: u16,
    ips: (&str, &str),
    uac: &str,
    uas: &str,
    calls: &str,
) -> Switch {
    let dir = Scratch::new(name);
    let uac_file = dir.write("uac.xml", uac);
    let uas_file = dir.write("uas.xml", uas);
    let sw = Switch::start(
        Some(&config(
            min_port,
            &format!(
                "[[dialplan.rule]]\nuser = \"{name}\"\naction = \"bridge\"\n\
                 targets = [\"sip:{name}@{}:5100\"]\n",
                ips.1
            ),
        )),
        &[],
    );
    let uas = sipp(
        &dir.0,
        &[
            "-sf",
            uas_file.to_str().unwrap(),
            "-i",
            ips.1,
            "-p",
            "5100",
            "-m",
            calls,
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let uac = sipp(
        &dir.0,
        &[
            "-sf",
            uac_file.to_str().unwrap(),
            "-s",
            name,
            "-i",
            ips.0,
            "-p",
            "5101",
            "-m",
            calls,
            &target,
        ],
    );
    wait_ok(uac, &format!("{name}: uac"));
    wait_ok(uas, &format!("{name}: uas"));
    std::thread::sleep(Duration::from_millis(100));
    sw
}

#[test]
fn sipp_cancel_while_ringing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let sw = scenario_pair(
        "cancel",
        22800,
        ("127.0.0.51", "127.0.0.52"),
        UAC_CANCEL,
        UAS_CANCELLED,
        "2",
    );
    assert_eq!(sw.lines("ended: 487").len(), 2, "{:?}", sw.log());
}

#[test]
fn sipp_callee_hangs_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let sw = scenario_pair(
        "hangup",
        23000,
        ("127.0.0.53", "127.0.0.54"),
        UAC_HUNG_UP_ON,
        UAS_HANGS_UP,
        "2",
    );
    assert_eq!(
        sw.lines("ended: 200, by the callee (B)").len(),
        2,
        "{:?}",
        sw.log()
    );
}

/// A UAS that answers in `m_line` (with its attributes) and waits for
/// the caller's BYE; run with `-rtp_echo`, it sends back what it hears.
fn uas_answering(m_line: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS answering in one codec">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      {m_line}
    ]]>
  </send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#
    )
}

/// PCMA and RFC 4733 events, as SIPp answers with them.
const PCMA_AND_EVENTS: &str =
    "m=audio [media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n      \
                               a=rtpmap:101 telephone-event/8000";

/// `sentiric call` speaking `codec` through the switch to a SIPp UAS that
/// answers in `answer` (an `m=` line and its attributes) and echoes what
/// it hears. Returns the JSON summary, the correlation of what came back
/// with what was played, and the ratio of their levels.
fn echo_through_sipp(sw: &Switch, codec: &str, answer: &str) -> (String, f64, f64) {
    let (summary, heard, played) = call_sipp_echo(sw, "xcode", codec, answer, "12#");
    let rms = |x: &[i16]| {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    };
    let level = rms(&heard[4000..20_000.min(heard.len())]) / rms(&played[..16_000]);
    (summary, best_correlation(&played, &heard), level)
}

/// `sentiric call` to `user` at the switch, playing a sweep in `codec`
/// and sending `dtmf`, with a SIPp UAS answering in `answer` and echoing:
/// the summary, what the caller heard, and what it played.
fn call_sipp_echo(
    sw: &Switch,
    user: &str,
    codec: &str,
    answer: &str,
    dtmf: &str,
) -> (String, Vec<i16>, Vec<i16>) {
    let played = sweep(24_000);
    let dir = Scratch::new(&format!("xcode-{codec}"));
    let play = dir.write("play.wav", "");
    std::fs::write(&play, wav_bytes(&played)).unwrap();
    let record = dir.0.join("heard.wav");
    let uas_file = dir.write("uas.xml", &uas_answering(answer));
    let uas = sipp(
        &dir.0,
        &[
            "-sf",
            uas_file.to_str().unwrap(),
            "-rtp_echo",
            "-i",
            "127.0.0.43",
            "-p",
            "5102",
            "-m",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--codec",
            codec,
            "--play",
            play.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
            "--dtmf",
            dtmf,
            "--duration",
            "3.5",
            "--bind",
            "127.0.0.44",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_ok(uas, "uas answering in one codec");
    let heard = wav_samples(&std::fs::read(&record).unwrap());
    (summary, heard, played)
}

#[test]
fn sipp_legs_with_no_codec_in_common_are_transcoded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let sw = Switch::start(
        Some(&config(
            23200,
            "[[dialplan.rule]]\nuser = \"xcode\"\naction = \"bridge\"\n\
             targets = [\"sip:xcode@127.0.0.43:5102\"]\n",
        )),
        &[],
    );
    // PCMU against PCMA: both G.711, the audio comes back near intact.
    let (summary, corr, level) = echo_through_sipp(&sw, "pcmu", PCMA_AND_EVENTS);
    for field in [
        "\"status\":200",
        "\"codec\":\"PCMU\"",
        "\"lost\":0",
        "\"dtmf_received\":\"12#\"",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    assert!(corr > 0.95, "PCMU through PCMA: correlation {corr:.3}");
    assert!((0.8..1.25).contains(&level), "level {level:.2}");
    // Opus against PCMA: events cross between the 48 and 8 kHz clocks.
    let (summary, corr, level) = echo_through_sipp(&sw, "opus", PCMA_AND_EVENTS);
    for field in [
        "\"status\":200",
        "\"codec\":\"opus\"",
        "\"lost\":0",
        "\"dtmf_received\":\"12#\"",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    assert!(corr > 0.9, "Opus through PCMA: correlation {corr:.3}");
    assert!((0.7..1.4).contains(&level), "level {level:.2}");
    assert_eq!(sw.lines("transcoding: A speaks").len(), 2, "{:?}", sw.log());
    assert_eq!(
        sw.lines("A speaks PCMU/8000 (payload type 0), B PCMA/8000 (8)")
            .len(),
        1
    );
    assert_eq!(
        sw.lines("A speaks opus/48000/2 (payload type 111), B PCMA/8000 (8)")
            .len(),
        1
    );
}

#[test]
fn sipp_dtmf_events_become_tones_for_a_callee_without_telephone_event() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let sw = Switch::start(
        Some(&config(
            23400,
            "[[dialplan.rule]]\nuser = \"xcode\"\naction = \"bridge\"\n\
             targets = [\"sip:xcode@127.0.0.43:5102\"]\n",
        )),
        &[],
    );
    // The caller sends RFC 4733 events; the callee has no
    // telephone-event, so the switch plays the digits into its audio,
    // which the callee echoes back as tones.
    let (summary, _, level) = echo_through_sipp(
        &sw,
        "pcma",
        "m=audio [media_port] RTP/AVP 8\n      a=rtpmap:8 PCMA/8000",
    );
    for field in [
        "\"status\":200",
        "\"codec\":\"PCMA\"",
        "\"dtmf_received\":\"\"",
        "\"dtmf_tones_heard\":\"12#\"",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    // The tones sit between stretches of the sweep in what came back.
    assert!((0.8..1.6).contains(&level), "level {level:.2}");
    assert_eq!(
        sw.lines("A speaks PCMA/8000 (payload type 8), B PCMA/8000 (8)")
            .len(),
        1,
        "{:?}",
        sw.log()
    );
}

#[test]
fn sipp_a_prompt_in_early_media_then_the_bridge() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let sw = Switch::start(
        Some(&config(
            23600,
            "[[dialplan.rule]]\nuser = \"annc\"\naction = \"play\"\n\
             prompt = \"builtin:beep\"\nthen = \"continue\"\n\
             [[dialplan.rule]]\nuser = \"annc\"\naction = \"bridge\"\n\
             targets = [\"sip:annc@127.0.0.43:5102\"]\n",
        )),
        &[],
    );
    // The beep in a 183, then the callee (PCMA only) answers and the
    // caller (PCMU) hears its own sweep back through the transcoder.
    let (summary, heard, played) = call_sipp_echo(
        &sw,
        "annc",
        "pcmu",
        "m=audio [media_port] RTP/AVP 8\n      a=rtpmap:8 PCMA/8000",
        "",
    );
    for field in [
        "\"status\":200",
        "\"codes\":[100, 183, 200]",
        "\"codec\":\"PCMU\"",
        "\"lost\":0",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    // 250 ms of 1 kHz first (received in early media, read after the
    // answer), then the echo.
    let beep = share_at(&heard[200..1800], 1000.0);
    assert!(beep > 0.8, "beep share {beep:.2}");
    let corr = best_correlation(&played, &heard[1600..]);
    assert!(corr > 0.95, "echo after the prompt: correlation {corr:.3}");
    assert_eq!(
        sw.lines("A speaks PCMU/8000 (payload type 0), B PCMA/8000 (8)")
            .len(),
        1,
        "{:?}",
        sw.log()
    );
}

/// A UAC whose INVITE has no SDP: the offer comes in the 200, its answer
/// goes in the ACK.
const UAC_LATE_OFFER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC with a late offer">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag07[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 8" search_in="body" check_it="true" assign_to="offer" />
      <log message="offer: [$offer]" />
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag07[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <pause milliseconds="200" />
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag07[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" />
</scenario>
"#;

/// A UAS answering an INVITE without SDP with an offer, and checking that
/// the ACK brings the answer.
const UAS_OFFERING: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAS offering in its 200">
  <recv request="INVITE" />
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag08[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv request="ACK">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 8" search_in="body" check_it="true" assign_to="answer" />
      <log message="answer: [$answer]" />
    </action>
  </recv>
  <recv request="BYE" />
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

#[test]
fn sipp_late_offer_answer_in_the_ack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    // Both scenarios fail their call when the SDP is not where it must
    // be: the offer in the 200, the answer in the ACK.
    let sw = scenario_pair(
        "late",
        23800,
        ("127.0.0.55", "127.0.0.56"),
        UAC_LATE_OFFER,
        UAS_OFFERING,
        "2",
    );
    assert_eq!(
        sw.lines("ended: 200, by the caller (A)").len(),
        2,
        "{:?}",
        sw.log()
    );
}

#[test]
fn sipp_callee_over_tcp_after_one_that_refuses_the_connection() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    let dir = Scratch::new("tcp-callee");
    // The first target refuses TCP (nothing listens there): the switch
    // moves on to the SIPp UAS over TCP.
    let sw = Switch::start(
        Some(&config(
            24000,
            "[[dialplan.rule]]\nuser = \"tcp\"\naction = \"bridge\"\n\
             targets = [\"sip:uas@127.0.0.59:5100;transport=tcp\", \"sip:uas@127.0.0.57:5100;transport=tcp\"]\n",
        )),
        &[],
    );
    let uas = sipp(
        &dir.0,
        &[
            "-sn",
            "uas",
            "-t",
            "t1",
            "-i",
            "127.0.0.57",
            "-p",
            "5100",
            "-m",
            "3",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let uac = sipp(
        &dir.0,
        &[
            "-sn",
            "uac",
            "-s",
            "tcp",
            "-i",
            "127.0.0.58",
            "-p",
            "5101",
            "-m",
            "3",
            "-r",
            "3",
            &target,
        ],
    );
    wait_ok(uac, "uac over UDP");
    wait_ok(uas, "uas over TCP");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sw.lines("ended: 200, by the caller (A)").len(),
        3,
        "{:?}",
        sw.log()
    );
    assert!(
        !sw.lines("SIP over TCP: connecting").is_empty(),
        "{:?}",
        sw.log()
    );
}

/// Runs SIPp's built-in UAC against SIPp's built-in UAS through a switch
/// with `workers` workers whose transaction table holds `max_transactions`
/// in all: `calls` calls at 100 a second, all from one address and port
/// (a trunk). Returns the switch and whether every call succeeded.
fn one_source_at_100_cps(
    name: &str,
    workers: usize,
    max_transactions: usize,
    calls: u32,
) -> (Switch, bool) {
    let dir = Scratch::new(name);
    let sw = Switch::start(
        Some(&format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\
             [rtp]\nip = \"127.0.0.1\"\nmin_port = 18000\nmax_port = 19999\nquarantine_ms = 500\n\
             [limits]\nmax_transactions = {max_transactions}\n\
             [[dialplan.rule]]\nuser = \"uas\"\naction = \"bridge\"\n\
             targets = [\"sip:uas@127.0.0.59:5100\"]\n"
        )),
        &[],
    );
    let n = calls.to_string();
    let uas = sipp(&dir.0, &["-sn", "uas", "-i", "127.0.0.59", "-p", "5100"]);
    std::thread::sleep(Duration::from_millis(300));
    let target = sw.addr.to_string();
    let mut uac = sipp(
        &dir.0,
        &[
            "-sn",
            "uac",
            "-s",
            "uas",
            "-i",
            "127.0.0.60",
            "-p",
            "5101",
            "-m",
            &n,
            "-r",
            "100",
            "-recv_timeout",
            "10000",
            &target,
        ],
    );
    let ok = uac.wait().unwrap().success();
    let mut uas = uas;
    let _ = uas.kill();
    let _ = uas.wait();
    (sw, ok)
}

/// The `reason` series of `sentiric_calls_refused_total` on the switch's
/// `/metrics`.
fn refused(sw: &Switch, reason: &str) -> f64 {
    let (_, body) = common::http_get(sw.http(), "/metrics", None);
    let series = format!("sentiric_calls_refused_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {body}"))
}

/// Transactions linger 32 s after their last message (Timers J, L, M),
/// about four a call: a trunk's calls (one source, which the kernel keeps
/// on one worker) fill that worker's share of the table long before
/// they expire. Past three quarters of its share the worker hands new
/// calls to the others instead of refusing them; with nowhere to hand
/// them, the refusals are overload protection, counted and logged as
/// such.
#[test]
fn sipp_one_trunk_fills_a_transaction_table() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !sipp_available() {
        return;
    }
    // 800 calls ≈ 2,800 lingering transactions; a worker's share: 2,000.
    let (sw, ok) = one_source_at_100_cps("tx-spread", 2, 4000, 800);
    assert!(
        ok,
        "calls failed with two workers: {:?}",
        sw.lines("overload")
    );
    assert_eq!(refused(&sw, "transactions"), 0.0);
    assert!(sw.lines("overload protection").is_empty());
    drop(sw);
    // One worker, the same table: it fills, and says so.
    let (sw, ok) = one_source_at_100_cps("tx-full", 1, 2000, 800);
    assert!(!ok, "every call went through a full table");
    let n = refused(&sw, "transactions");
    assert!(n > 0.0, "no refusal counted");
    let line = sw
        .wait_line("overload protection", Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no log line: {:?}", sw.log()));
    assert!(line.contains("max_transactions"), "{line}");
}
