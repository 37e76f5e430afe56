//! The outbox: every event is written here before anything else sees it,
//! and leaves only when the broker has confirmed it.
//!
//! * **Layout.** A directory of segment files, `<first record>.seg`,
//!   each a run of records `[u32 length][u32 CRC-32 of the payload]
//!   [payload]` (little-endian), numbered consecutively across segments;
//!   and `confirmed`, the number below which every record is confirmed.
//!   A segment rolls over at [`OutboxConfig::segment_bytes`].
//! * **Durability.** [`Outbox::append`] buffers; [`Outbox::write`] hands
//!   the batch to the kernel in one `write` (from then on it survives the
//!   process, killed or not), and [`Outbox::sync`] also `fdatasync`s it
//!   (it survives the machine). The caller chooses how often each runs:
//!   a sync costs a disk flush, shared by every record since the last.
//! * **Confirms.** [`Outbox::confirm`] marks a record; the watermark
//!   moves over records confirmed without a gap, whole segments below it
//!   are deleted, and the watermark is written (atomically, by rename) at
//!   the next sync. A crash can thus publish some confirmed records again
//!   — consumers deduplicate by `event_id` — but never skip one.
//! * **Start-up.** [`Outbox::open`] reads every segment from the
//!   watermark and returns the unconfirmed records to publish again. A
//!   record cut short by a crash (short header, short payload, or a CRC
//!   that does not match) ends the last segment: the file is truncated
//!   there. The same damage in an earlier segment ends that segment's
//!   reading and is counted in [`Replay::damaged`].
//! * **Bound.** Past [`OutboxConfig::max_bytes`] on disk, `append` refuses
//!   with [`OutboxError::Full`] instead of dropping anything: the caller
//!   stops taking new calls until the broker catches up.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where the outbox lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// Bytes on disk, all segments together, past which appends are refused.
    pub max_bytes: u64,
    /// Size at which a segment is closed and a new one begun.
    pub segment_bytes: u64,
}

impl OutboxConfig {
    /// 1 GiB in 16 MiB segments under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> OutboxConfig {
        OutboxConfig {
            dir: dir.into(),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
        }
    }
}

/// Why an append or an open failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The outbox holds `max_bytes` already: nothing was written.
    #[error("event outbox full ({bytes} bytes on disk, limit {limit})")]
    Full {
        /// Bytes on disk now.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The record is larger than a record can be.
    #[error("event of {0} bytes is too large for the outbox")]
    TooLarge(usize),
    /// The file system refused.
    #[error("event outbox: {0}")]
    Io(#[from] io::Error),
}

/// A record and its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its number: pass it to [`Outbox::confirm`].
    pub seq: u64,
    /// The bytes appended.
    pub bytes: Vec<u8>,
}

/// What [`Outbox::open`] found.
#[derive(Debug, Default)]
pub struct Replay {
    /// The records not yet confirmed, in order.
    pub pending: Vec<Record>,
    /// Bytes cut off the end of the last segment (a write a crash cut short).
    pub truncated: u64,
    /// Segments before the last whose reading ended at damage.
    pub damaged: usize,
}

const HEADER: usize = 8;
/// Larger than any event the switch writes by far; a length above it is
/// damage, not a record.
const MAX_RECORD: usize = 16 << 20;
const CURSOR: &str = "confirmed";

#[derive(Debug)]
struct Segment {
    first: u64,
    /// Records in it.
    records: u64,
    bytes: u64,
    path: PathBuf,
}

/// The outbox (see the module documentation).
#[derive(Debug)]
pub struct Outbox {
    cfg: OutboxConfig,
    segments: VecDeque<Segment>,
    file: File,
    /// Appended, not yet written to the file.
    buf: Vec<u8>,
    /// Written to the current segment since its last sync.
    unsynced: bool,
    next: u64,
    /// Every record below it is confirmed.
    watermark: u64,
    /// The watermark last written to the cursor file.
    saved: u64,
    /// Confirmed records above the watermark.
    ahead: BTreeSet<u64>,
    /// Ranges `start..end` above the watermark with nothing to publish
    /// (records confirmed before a restart, or lost to damage): passed
    /// over as if confirmed.
    skip: BTreeMap<u64, u64>,
    bytes: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox in `cfg.dir` and returns what it
    /// holds that was never confirmed.
    pub fn open(cfg: OutboxConfig) -> Result<(Outbox, Replay), OutboxError> {
        fs::create_dir_all(&cfg.dir)?;
        let firsts = segments_in(&cfg.dir)?;
        let cursor = fs::read_to_string(cfg.dir.join(CURSOR))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut replay = Replay::default();
        let mut segments = VecDeque::new();
        let mut next = firsts.first().copied().unwrap_or(cursor);
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = segment_path(&cfg.dir, first);
            let last = i + 1 == count;
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let (records, good) = scan(&data, |k, payload| {
                let seq = first + k;
                if seq >= cursor {
                    replay.pending.push(Record {
                        seq,
                        bytes: payload.to_vec(),
                    });
                }
            });
            if good < data.len() {
                if last {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(good as u64)?;
                    replay.truncated = (data.len() - good) as u64;
                } else {
                    replay.damaged += 1;
                }
            }
            next = first + records;
            segments.push_back(Segment {
                first,
                records,
                bytes: good as u64,
                path,
            });
        }
        let watermark = cursor
            .max(segments.front().map_or(cursor, |s| s.first))
            .min(next);
        if segments.is_empty() {
            let path = segment_path(&cfg.dir, next);
            File::create(&path)?;
            segments.push_back(Segment {
                first: next,
                records: 0,
                bytes: 0,
                path,
            });
        }
        let current = segments.back().map(|s| s.path.clone()).unwrap_or_default();
        let file = OpenOptions::new().append(true).open(current)?;
        let bytes = segments.iter().map(|s| s.bytes).sum();
        // What lies between the records to publish again was confirmed
        // or is lost: the watermark must not wait for it.
        let mut skip = BTreeMap::new();
        let mut expected = watermark;
        for seq in replay.pending.iter().map(|r| r.seq) {
            if seq > expected {
                skip.insert(expected, seq);
            }
            expected = seq + 1;
        }
        if expected < next {
            skip.insert(expected, next);
        }
        let mut outbox = Outbox {
            cfg,
            segments,
            file,
            buf: Vec::new(),
            unsynced: false,
            next,
            watermark,
            saved: cursor,
            ahead: BTreeSet::new(),
            skip,
            bytes,
        };
        outbox.advance();
        outbox.collect()?;
        Ok((outbox, replay))
    }

    /// Queues a record; it is durable after the next [`Outbox::sync`].
    /// Returns its number.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, OutboxError> {
        if payload.len() > MAX_RECORD {
            return Err(OutboxError::TooLarge(payload.len()));
        }
        let size = (HEADER + payload.len()) as u64;
        let on_disk = self.bytes + self.buf.len() as u64;
        if on_disk + size > self.cfg.max_bytes {
            return Err(OutboxError::Full {
                bytes: on_disk,
                limit: self.cfg.max_bytes,
            });
        }
        let current = self.segments.back().map_or(0, |s| s.bytes) + self.buf.len() as u64;
        if current > 0 && current + size > self.cfg.segment_bytes {
            self.roll()?;
        }
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        if let Some(s) = self.segments.back_mut() {
            s.records += 1;
        }
        let seq = self.next;
        self.next += 1;
        Ok(seq)
    }

    /// Writes what was appended to the file (one `write`): from here it
    /// survives the process, killed or not, though not the machine's
    /// crash until [`Outbox::sync`].
    pub fn write(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // Part of the batch may be in the file: cut it off, or the
            // retry would follow a torn record that ends the log.
            let good = self.segments.back().map_or(0, |s| s.bytes);
            let _ = self.file.set_len(good);
            return Err(e);
        }
        if let Some(s) = self.segments.back_mut() {
            s.bytes += self.buf.len() as u64;
        }
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Writes what was appended and syncs it to the disk (one
    /// `fdatasync`), and the watermark if it moved.
    pub fn sync(&mut self) -> io::Result<()> {
        self.write()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        if self.saved != self.watermark {
            let tmp = self.cfg.dir.join("confirmed.tmp");
            fs::write(&tmp, self.watermark.to_string())?;
            fs::rename(&tmp, self.cfg.dir.join(CURSOR))?;
            self.saved = self.watermark;
        }
        Ok(())
    }

    /// Marks record `seq` confirmed by the broker. Segments wholly below
    /// the watermark are deleted.
    pub fn confirm(&mut self, seq: u64) -> io::Result<()> {
        if seq < self.watermark || seq >= self.next {
            return Ok(());
        }
        self.ahead.insert(seq);
        self.advance();
        self.collect()
    }

    /// Moves the watermark over what is confirmed without a gap.
    fn advance(&mut self) {
        loop {
            if self.ahead.remove(&self.watermark) {
                self.watermark += 1;
            } else if let Some(end) = self.skip.remove(&self.watermark) {
                self.watermark = end;
            } else {
                break;
            }
        }
    }

    /// Something is not on disk yet: records appended or written and not
    /// synced, or a watermark not saved.
    pub fn dirty(&self) -> bool {
        self.unsynced() || self.saved != self.watermark
    }

    /// `true` while records appended are not all synced to the disk (the
    /// next [`Outbox::sync`] has an `fdatasync` to do).
    pub fn unsynced(&self) -> bool {
        !self.buf.is_empty() || self.unsynced
    }

    /// The first record not confirmed (where a publisher starts).
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Records appended and not confirmed.
    pub fn len(&self) -> u64 {
        self.next - self.watermark
    }

    /// `true` when every record appended is confirmed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on disk, appended records not yet synced included.
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    /// `true` when the next append of `size` payload bytes would be refused.
    pub fn is_full(&self, size: usize) -> bool {
        self.bytes() + (HEADER + size) as u64 > self.cfg.max_bytes
    }

    /// Closes the current segment and begins the next.
    fn roll(&mut self) -> io::Result<()> {
        self.sync()?;
        let path = segment_path(&self.cfg.dir, self.next);
        self.file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.segments.push_back(Segment {
            first: self.next,
            records: 0,
            bytes: 0,
            path,
        });
        self.collect()
    }

    /// Deletes the closed segments the watermark has passed.
    fn collect(&mut self) -> io::Result<()> {
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.first + s.records <= self.watermark)
        {
            if let Some(s) = self.segments.pop_front() {
                self.bytes -= s.bytes;
                match fs::remove_file(&s.path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Every whole record on disk in `dir`, confirmed or not, oldest first,
/// without changing anything: for readers beside a running switch (a
/// record being written is simply not there yet).
pub fn read(dir: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for first in segments_in(dir)? {
        let data = match fs::read(segment_path(dir, first)) {
            Ok(d) => d,
            // Deleted since the listing: confirmed meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        scan(&data, |k, payload| {
            out.push(Record {
                seq: first + k,
                bytes: payload.to_vec(),
            });
        });
    }
    Ok(out)
}

/// Follows the outbox from a record on, as its writer appends (the
/// publisher, in its own thread): reads what was appended since the last
/// call, hands out only whole records, and moves to the next segment once
/// there is one (the writer begins a segment only after the last is
/// complete).
#[derive(Debug)]
pub struct Tail {
    dir: PathBuf,
    /// The segment being read: its first record's number, the file, and
    /// the records of it already passed.
    current: Option<(u64, File, u64)>,
    /// Bytes read from the current segment; those from `start` on are
    /// not yet passed (the front is dropped once it is half the buffer:
    /// a read of one record never moves the whole segment).
    buf: Vec<u8>,
    start: usize,
    /// When the directory was last scanned for a later segment.
    scanned: Option<std::time::Instant>,
    /// The next record's number wanted.
    next: u64,
}

impl Tail {
    /// Starts at record `from` (the first unconfirmed one, at start-up).
    pub fn new(dir: &Path, from: u64) -> Tail {
        Tail {
            dir: dir.to_path_buf(),
            current: None,
            buf: Vec::new(),
            start: 0,
            scanned: None,
            next: from,
        }
    }

    /// Up to `max` whole records appended since the last call, in order.
    pub fn read(&mut self, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        loop {
            if self.current.is_none() {
                let firsts = segments_in(&self.dir)?;
                // The segment holding `next`: the last that starts at or
                // before it (or the first, the others confirmed).
                let Some(first) = firsts
                    .iter()
                    .rev()
                    .find(|f| **f <= self.next)
                    .or(firsts.first())
                    .copied()
                else {
                    return Ok(out);
                };
                match File::open(segment_path(&self.dir, first)) {
                    Ok(f) => self.current = Some((first, f, 0)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                self.buf.clear();
                self.start = 0;
            }
            let Some((seg, file, passed)) = self.current.as_mut() else {
                return Ok(out);
            };
            file.read_to_end(&mut self.buf)?;
            let mut used = self.start;
            while out.len() < max {
                let Some((len, payload)) = record_at(&self.buf, used) else {
                    break;
                };
                let seq = *seg + *passed;
                if seq >= self.next {
                    out.push(Record {
                        seq,
                        bytes: payload.to_vec(),
                    });
                    self.next = seq + 1;
                }
                used += HEADER + len;
                *passed += 1;
            }
            self.start = used;
            if self.start > self.buf.len() / 2 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if out.len() >= max {
                return Ok(out);
            }
            // Read to its end: a later segment means this one is complete.
            // The writer names the next one after the record that follows
            // (one stat); a whole scan of the directory, for segments
            // after a damaged one, at most once a second (a scan per read
            // was most of a trickle's cost).
            let (seg, follows) = (*seg, *seg + *passed);
            let later = if follows > seg && segment_path(&self.dir, follows).exists() {
                Some(follows)
            } else if self
                .scanned
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
            {
                self.scanned = Some(std::time::Instant::now());
                segments_in(&self.dir)?.into_iter().find(|f| *f > seg)
            } else {
                None
            };
            match later {
                Some(later) => {
                    self.next = self.next.max(later);
                    self.current = None;
                }
                None => return Ok(out),
            }
        }
    }
}

/// The whole record at `offset` of `data`: its payload length and payload.
fn record_at(data: &[u8], offset: usize) -> Option<(usize, &[u8])> {
    let header = data.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let payload = data.get(offset + HEADER..offset + HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some((len, payload))
}

fn segments_in(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    Ok(firsts)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// Reads records from the start of `data`, handing each payload to `each`
/// with its index; returns the number read and the bytes they span (the
/// rest is damage or a record cut short).
fn scan(data: &[u8], mut each: impl FnMut(u64, &[u8])) -> (u64, usize) {
    let (mut at, mut k) = (0usize, 0u64);
    while let Some((len, payload)) = record_at(data, at) {
        each(k, payload);
        k += 1;
        at += HEADER + len;
    }
    (k, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let d = std::env::temp_dir().join(format!(
                "sentiric-outbox-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&d);
            Dir(d)
        }

        fn cfg(&self) -> OutboxConfig {
            OutboxConfig::new(&self.0)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn payloads(r: &Replay) -> Vec<(u64, String)> {
        r.pending
            .iter()
            .map(|p| (p.seq, String::from_utf8_lossy(&p.bytes).into_owned()))
            .collect()
    }

    fn segments(d: &Dir) -> usize {
        fs::read_dir(&d.0)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count()
    }

    #[test]
    fn what_is_synced_and_unconfirmed_comes_back_in_order() {
        let d = Dir::new("order");
        let (mut o, r) = Outbox::open(d.cfg()).unwrap();
        assert!(r.pending.is_empty());
        for p in ["a", "b", "c", "d"] {
            o.append(p.as_bytes()).unwrap();
        }
        o.sync().unwrap();
        // b and d confirmed: the watermark stays at a, which is not.
        o.confirm(1).unwrap();
        o.confirm(3).unwrap();
        assert_eq!(o.len(), 4);
        o.sync().unwrap();
        drop(o);
        let (mut o, r) = Outbox::open(d.cfg()).unwrap();
        assert_eq!(
            payloads(&r),
            [
                (0, "a".into()),
                (1, "b".into()),
                (2, "c".into()),
                (3, "d".into())
            ]
        );
        // a confirmed: the watermark moves over a and b (confirmed, but
        // only in memory last time: published again, deduplicated).
        o.confirm(0).unwrap();
        o.confirm(1).unwrap();
        assert_eq!(o.len(), 2);
        o.sync().unwrap();
        drop(o);
        let (o, r) = Outbox::open(d.cfg()).unwrap();
        assert_eq!(payloads(&r), [(2, "c".into()), (3, "d".into())]);
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn a_reader_sees_whole_records_and_changes_nothing() {
        let d = Dir::new("read");
        let (mut o, _) = Outbox::open(d.cfg()).unwrap();
        for p in ["a", "b"] {
            o.append(p.as_bytes()).unwrap();
        }
        o.sync().unwrap();
        o.confirm(0).unwrap();
        let seg = segment_path(&d.0, 0);
        // Half of a record being written.
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(b"\x09\x00\x00\x00")
            .unwrap();
        let before = fs::metadata(&seg).unwrap().len();
        let all = read(&d.0).unwrap();
        assert_eq!(
            all.iter()
                .map(|r| (r.seq, r.bytes.clone()))
                .collect::<Vec<_>>(),
            [(0, b"a".to_vec()), (1, b"b".to_vec())]
        );
        assert_eq!(fs::metadata(&seg).unwrap().len(), before);
    }

    #[test]
    fn written_without_a_sync_is_in_the_file() {
        let d = Dir::new("written");
        let (mut o, _) = Outbox::open(d.cfg()).unwrap();
        o.append(b"w").unwrap();
        o.write().unwrap();
        assert_eq!(o.bytes(), 9);
        // Another process (a restart after a kill) reads it.
        let (_, r) = Outbox::open(d.cfg()).unwrap();
        assert_eq!(payloads(&r), [(0, "w".into())]);
    }

    #[test]
    fn a_tail_read_one_record_at_a_time_hands_out_each_once_in_order() {
        let d = Dir::new("tail-one");
        let (mut o, _) = Outbox::open(d.cfg()).unwrap();
        let rec = |i: u64| format!("record {i}").into_bytes();
        let mut t = Tail::new(&d.0, 0);
        let mut got = Vec::new();
        // Reads of one and of a few, with writes landing in between.
        for i in 0..3000u64 {
            o.append(&rec(i)).unwrap();
            if i % 100 == 99 {
                o.write().unwrap();
            }
            if i % 3 == 0 {
                got.extend(t.read(1).unwrap());
            } else if i % 7 == 0 {
                got.extend(t.read(5).unwrap());
            }
        }
        o.write().unwrap();
        loop {
            let more = t.read(1).unwrap();
            if more.is_empty() {
                break;
            }
            got.extend(more);
        }
        assert_eq!(got.len(), 3000);
        for (i, r) in got.iter().enumerate() {
            assert_eq!((r.seq, &r.bytes), (i as u64, &rec(i as u64)));
        }
        // What it has passed is not all kept.
        assert!(t.buf.len() - t.start < 64, "{} {}", t.buf.len(), t.start);
    }

    #[test]
    fn a_tail_follows_the_writer_across_segments_from_a_record_on() {
        let d = Dir::new("tail");
        let mut cfg = d.cfg();
        cfg.segment_bytes = 64;
        let (mut o, _) = Outbox::open(cfg).unwrap();
        let rec = |i: u64| format!("{i:024}").into_bytes();
        for i in 0..3 {
            o.append(&rec(i)).unwrap();
        }
        o.write().unwrap();
        let mut t = Tail::new(&d.0, 1);
        let got = t.read(100).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(got[0].bytes, rec(1));
        assert!(t.read(100).unwrap().is_empty());
        // Half a record written: not handed out until whole.
        let seg = segment_path(&d.0, 2);
        for i in 3..7 {
            o.append(&rec(i)).unwrap();
        }
        o.write().unwrap();
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .ok()
            .map(|mut f| f.write_all(b"\x18\x00"));
        let got = t.read(2).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
        let got = t.read(100).unwrap();
        assert_eq!(
            got.iter()
                .map(|r| (r.seq, r.bytes.clone()))
                .collect::<Vec<_>>(),
            [(5, rec(5)), (6, rec(6))]
        );
        // Segments confirmed and deleted under it: it goes on.
        for i in 0..6 {
            o.confirm(i).unwrap();
        }
        o.append(&rec(7)).unwrap();
        o.write().unwrap();
        assert_eq!(
            t.read(100)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [7]
        );
    }

    #[test]
    fn appended_but_not_synced_is_not_on_disk() {
        let d = Dir::new("unsynced");
        let (mut o, _) = Outbox::open(d.cfg()).unwrap();
        o.append(b"kept").unwrap();
        o.sync().unwrap();
        o.append(b"lost").unwrap();
        drop(o);
        let (mut o, r) = Outbox::open(d.cfg()).unwrap();
        assert_eq!(payloads(&r), [(0, "kept".into())]);
        // Numbering goes on from what is on disk.
        assert_eq!(o.append(b"next").unwrap(), 1);
    }

    #[test]
    fn a_record_cut_short_ends_the_log_and_is_cut_off() {
        for damage in [
            &b"\x05\x00"[..],                           // half a header
            &b"\x05\x00\x00\x00\x00\x00\x00\x00ab"[..], // short payload
            &b"\x02\x00\x00\x00\xde\xad\xbe\xefab"[..], // CRC mismatch
            &b"\xff\xff\xff\xff\x00\x00\x00\x00"[..],   // absurd length
        ] {
            let d = Dir::new("torn");
            let (mut o, _) = Outbox::open(d.cfg()).unwrap();
            for p in ["one", "two", "three"] {
                o.append(p.as_bytes()).unwrap();
            }
            o.sync().unwrap();
            drop(o);
            let seg = segment_path(&d.0, 0);
            let whole = fs::metadata(&seg).unwrap().len();
            OpenOptions::new()
                .append(true)
                .open(&seg)
                .unwrap()
                .write_all(damage)
                .unwrap();
            let (mut o, r) = Outbox::open(d.cfg()).unwrap();
            assert_eq!(r.pending.len(), 3, "{damage:?}");
            assert_eq!(r.truncated, damage.len() as u64);
            assert_eq!(fs::metadata(&seg).unwrap().len(), whole);
            // Appends go on after the good records.
            assert_eq!(o.append(b"four").unwrap(), 3);
            o.sync().unwrap();
            drop(o);
            let (_, r) = Outbox::open(d.cfg()).unwrap();
            assert_eq!(
                r.pending.last().map(|p| p.bytes.clone()),
                Some(b"four".to_vec())
            );
            assert_eq!(r.truncated, 0);
        }
    }

    #[test]
    fn segments_roll_and_go_once_confirmed() {
        let d = Dir::new("roll");
        let mut cfg = d.cfg();
        cfg.segment_bytes = 64;
        let (mut o, _) = Outbox::open(cfg.clone()).unwrap();
        // 8 + 24 bytes a record: two to a segment.
        let seqs: Vec<u64> = (0..7)
            .map(|i| o.append(format!("{i:024}").as_bytes()).unwrap())
            .collect();
        o.sync().unwrap();
        assert_eq!(segments(&d), 4);
        let before = o.bytes();
        for s in &seqs[..5] {
            o.confirm(*s).unwrap();
        }
        // Records 0-3 fill the first two segments: gone. The third holds
        // 4 (confirmed) and 5 (not): kept.
        assert_eq!(segments(&d), 2);
        assert_eq!(o.bytes(), before - 4 * 32);
        o.sync().unwrap();
        drop(o);
        let (mut o, r) = Outbox::open(cfg).unwrap();
        assert_eq!(r.pending.iter().map(|p| p.seq).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(o.append(b"x").unwrap(), 7);
    }

    #[test]
    fn full_refuses_until_confirms_free_room() {
        let d = Dir::new("full");
        let mut cfg = d.cfg();
        cfg.segment_bytes = 64;
        cfg.max_bytes = 128;
        let (mut o, _) = Outbox::open(cfg).unwrap();
        let mut seqs = vec![];
        for i in 0..4 {
            seqs.push(o.append(format!("{i:024}").as_bytes()).unwrap());
        }
        assert!(o.is_full(24));
        match o.append(&[0; 24]) {
            Err(OutboxError::Full {
                bytes: 128,
                limit: 128,
            }) => {}
            other => panic!("{other:?}"),
        }
        o.sync().unwrap();
        o.confirm(seqs[0]).unwrap();
        o.confirm(seqs[1]).unwrap();
        assert!(!o.is_full(24));
        assert_eq!(o.append(&[1; 24]).unwrap(), 4);
        assert!(matches!(
            o.append(&vec![0; MAX_RECORD + 1]),
            Err(OutboxError::TooLarge(_))
        ));
    }

    #[test]
    fn damage_in_an_earlier_segment_is_counted_and_the_rest_read() {
        let d = Dir::new("damaged");
        let mut cfg = d.cfg();
        cfg.segment_bytes = 64;
        let (mut o, _) = Outbox::open(cfg.clone()).unwrap();
        for i in 0..4 {
            o.append(format!("{i:024}").as_bytes()).unwrap();
        }
        o.sync().unwrap();
        drop(o);
        // Flip a payload byte of record 1, the first segment's second.
        let seg = segment_path(&d.0, 0);
        let mut data = fs::read(&seg).unwrap();
        data[32 + 8] ^= 1;
        fs::write(&seg, data).unwrap();
        let (mut o, r) = Outbox::open(cfg).unwrap();
        assert_eq!(r.damaged, 1);
        assert_eq!(
            r.pending.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [0, 2, 3]
        );
        // A tail reads past it too, into the next segment.
        let got: Vec<u64> = Tail::new(&d.0, 0)
            .read(10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(got, [0, 2, 3]);
        // The lost record does not hold the watermark back.
        for seq in [3, 0, 2] {
            o.confirm(seq).unwrap();
        }
        assert!(o.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Sync,
        /// Confirm the n-th unconfirmed synced record (modulo).
        Confirm(usize),
        Reopen,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1u8..40).prop_map(Op::Append),
            2 => Just(Op::Sync),
            3 => (0usize..64).prop_map(Op::Confirm),
            1 => Just(Op::Reopen),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Against a model: a reopened outbox gives back every synced
        /// record not confirmed, with its bytes, in order, and nothing
        /// that was never synced; numbering never goes back past a
        /// synced record.
        #[test]
        fn nothing_synced_and_unconfirmed_is_lost(ops in proptest::collection::vec(op(), 1..120)) {
            let d = Dir::new("model");
            let mut cfg = d.cfg();
            cfg.segment_bytes = 96;
            let (mut o, _) = Outbox::open(cfg.clone()).unwrap();
            let mut synced: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut unsynced: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut confirmed: BTreeSet<u64> = BTreeSet::new();
            let mut last_seq = None;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let bytes = vec![n; usize::from(n)];
                        let seq = o.append(&bytes).unwrap();
                        proptest::prop_assert!(last_seq.is_none_or(|l| seq > l));
                        last_seq = Some(seq);
                        unsynced.push((seq, bytes));
                    }
                    Op::Sync => {
                        o.sync().unwrap();
                        synced.extend(unsynced.drain(..));
                    }
                    Op::Confirm(k) => {
                        let open: Vec<u64> = synced
                            .keys()
                            .filter(|s| !confirmed.contains(s))
                            .copied()
                            .collect();
                        if !open.is_empty() {
                            let seq = open[k % open.len()];
                            o.confirm(seq).unwrap();
                            confirmed.insert(seq);
                        }
                    }
                    Op::Reopen => {
                        drop(o);
                        let (reopened, r) = Outbox::open(cfg.clone()).unwrap();
                        o = reopened;
                        // Appended records a segment's roll wrote early
                        // may be back too; the others were never synced,
                        // never published, and their numbers may be used
                        // again.
                        for (seq, bytes) in unsynced.drain(..) {
                            if r.pending.iter().any(|p| p.seq == seq) {
                                synced.insert(seq, bytes);
                            }
                        }
                        last_seq = synced.keys().next_back().copied();
                        let seqs: Vec<u64> = r.pending.iter().map(|p| p.seq).collect();
                        let mut sorted = seqs.clone();
                        sorted.sort_unstable();
                        sorted.dedup();
                        proptest::prop_assert_eq!(&seqs, &sorted);
                        for p in &r.pending {
                            proptest::prop_assert_eq!(synced.get(&p.seq), Some(&p.bytes));
                        }
                        for (seq, _) in synced.iter().filter(|(s, _)| !confirmed.contains(s)) {
                            proptest::prop_assert!(seqs.contains(seq), "lost {}", seq);
                        }
                        // What was replayed is to be published (and
                        // confirmed) again.
                        for seq in seqs {
                            confirmed.remove(&seq);
                        }
                    }
                }
            }
        }
    }
}
