//! The write-ahead log: what makes a write to the store durable.
//!
//! sled keeps the store's data and serves every read; this log is what a
//! durable write waits for. Each write to sled is also encoded as one frame
//! and appended to an in-memory buffer, in the same critical section, so the
//! frames are in the order sled applied the writes. Group commit writes the
//! buffer to the current segment file and `fdatasync`s it: one device round
//! trip per batch of writes, the same as appending to any file, where a
//! flush of sled itself costs two or three (sled writes its buffer from its
//! own thread pool, waits with `sync_file_range`, and still needs an
//! `fdatasync`).
//!
//! A checkpoint makes sled's own files durable (`Db::flush`, `fdatasync` of
//! its `db` file, `fsync` of new blob files) and then removes the segments
//! it covers: it starts a new segment first, so every frame in the older
//! ones belongs to a write sled had applied before the flush began. Opening
//! a store replays the segments left by a process that did not close it
//! (killed, or a power loss), checkpoints, and starts a fresh segment; a
//! closed store has none.
//!
//! Replay has to be right over whatever sled itself recovered, which is a
//! prefix of the writes that may be shorter or longer than the log's:
//! - records are inserted where absent, and a stream's head only moves up,
//!   so replaying an append that sled already has changes nothing;
//! - an append whose previous record is missing belongs to a stream that a
//!   later deletion, recovered by sled but never acknowledged, removed: it
//!   is skipped rather than bringing back half a stream;
//! - a record sled already has must be the one the log has (a stream id is
//!   never written again after its stream was deleted); opening refuses a
//!   store where it is not;
//! - key/value writes are replayed in order, so each key ends with the
//!   value of its last logged write; a later write that sled recovered but
//!   the log never made durable was never acknowledged, and is undone.
//!
//! A frame is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`.
//! A crash while a batch is written leaves a torn frame at the end of the
//! last segment: that batch was never acknowledged, and replay stops there.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Seq, StreamId};

/// Name of the directory of segments inside the store directory.
pub(crate) const DIR_NAME: &str = "wal";

/// A segment this large is followed by a checkpoint: the bound on what a
/// store reopened after a crash replays.
pub(crate) const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

const FRAME_HEADER_LEN: usize = 8;

const TAG_APPEND: u8 = 1;
const TAG_DELETE_STREAM: u8 = 2;
const TAG_PUT: u8 = 3;
const TAG_REMOVE: u8 = 4;

/// One write, as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Records (checksummed values as stored) from seq `first` on.
    Append { stream: StreamId, first: Seq, values: Vec<Vec<u8>> },
    /// Every record and the head of a stream removed.
    DeleteStream { stream: StreamId },
    /// `key` set to `value` in the sled tree `tree`.
    Put { tree: Vec<u8>, key: Vec<u8>, value: Vec<u8> },
    /// `key` removed from the sled tree `tree`.
    Remove { tree: Vec<u8>, key: Vec<u8> },
}

/// Appends the frame of an append of `values` at `first` to `buffer`.
pub(crate) fn encode_append(buffer: &mut Vec<u8>, stream: StreamId, first: Seq, values: &[Vec<u8>]) {
    frame(buffer, |payload| {
        payload.push(TAG_APPEND);
        payload.extend_from_slice(&stream.to_le_bytes());
        payload.extend_from_slice(&first.to_le_bytes());
        put_len(payload, values.len());
        for value in values {
            put_bytes(payload, value);
        }
    });
}

/// Appends the frame of the deletion of `stream` to `buffer`.
pub(crate) fn encode_delete_stream(buffer: &mut Vec<u8>, stream: StreamId) {
    frame(buffer, |payload| {
        payload.push(TAG_DELETE_STREAM);
        payload.extend_from_slice(&stream.to_le_bytes());
    });
}

/// Appends the frame of `tree[key] = value` (or its removal, for `None`) to `buffer`.
pub(crate) fn encode_put(buffer: &mut Vec<u8>, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
    frame(buffer, |payload| {
        payload.push(if value.is_some() { TAG_PUT } else { TAG_REMOVE });
        put_bytes(payload, tree);
        put_bytes(payload, key);
        if let Some(value) = value {
            put_bytes(payload, value);
        }
    });
}

fn frame(buffer: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    write_payload(buffer);
    let payload = &buffer[start + FRAME_HEADER_LEN..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_len(payload: &mut Vec<u8>, len: usize) {
    // Lengths come from values held in memory and written to sled, which
    // caps them far below 4 GiB; a larger one would fail sled's write first.
    payload.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(payload: &mut Vec<u8>, bytes: &[u8]) {
    put_len(payload, bytes.len());
    payload.extend_from_slice(bytes);
}

/// The frames of one segment's bytes, up to the first that is torn or
/// damaged, and where that one starts (`None` if the bytes end cleanly:
/// at their end, or where only the zeros written ahead of frames remain).
pub(crate) fn decode_frames(bytes: &[u8]) -> (Vec<Op>, Option<usize>) {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match decode_frame(&bytes[at..]) {
            Some((op, len)) => {
                ops.push(op);
                at += len;
            }
            None if bytes[at..].iter().all(|&byte| byte == 0) => break,
            None => return (ops, Some(at)),
        }
    }
    (ops, None)
}

/// One frame at the start of `bytes` and its length, if it is whole and intact.
fn decode_frame(bytes: &[u8]) -> Option<(Op, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut reader = Reader(payload);
    let op = match reader.u8()? {
        TAG_APPEND => {
            let stream = reader.u64()?;
            let first = reader.u64()?;
            let count = reader.u32()?;
            let values = (0..count).map(|_| reader.bytes()).collect::<Option<Vec<_>>>()?;
            Op::Append { stream, first, values }
        }
        TAG_DELETE_STREAM => Op::DeleteStream { stream: reader.u64()? },
        TAG_PUT => Op::Put { tree: reader.bytes()?, key: reader.bytes()?, value: reader.bytes()? },
        TAG_REMOVE => Op::Remove { tree: reader.bytes()?, key: reader.bytes()? },
        _ => return None,
    };
    reader.0.is_empty().then_some((op, FRAME_HEADER_LEN + len))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        Some(self.take(len)?.to_vec())
    }
}

/// The segment files in `wal_dir`, oldest first, with their numbers.
pub(crate) fn segments(wal_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(wal_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let number = name.to_str().and_then(|name| name.strip_suffix(".log")).and_then(|stem| stem.parse().ok());
        match number {
            Some(number) => segments.push((number, entry.path())),
            None => tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a log segment"),
        }
    }
    segments.sort();
    Ok(segments)
}

/// The path of segment `number`.
pub(crate) fn segment_path(wal_dir: &Path, number: u64) -> PathBuf {
    wal_dir.join(format!("{number:020}.log"))
}

/// The segment the flusher appends to.
///
/// Frames are written over zeros written ahead of them, [`PREALLOCATE_BYTES`]
/// at a time: `fdatasync` of blocks the file already has writes the data
/// alone, where an append also writes the inode's new size (measured here,
/// ext4 on a virtio disk: 0.087 against 0.127 ms per synced 300-byte write).
/// Replay reads trailing zeros as the end of the log.
pub(crate) struct Segment {
    pub(crate) number: u64,
    file: File,
    /// Bytes of frames written.
    len: u64,
    /// Bytes the file holds, zeros after `len`.
    allocated: u64,
}

/// How much zeroed room a segment grows by when its frames reach its end.
const PREALLOCATE_BYTES: u64 = 256 * 1024;

impl Segment {
    /// Creates segment `number` in `wal_dir` and makes its directory entry durable.
    pub(crate) fn create(wal_dir: &Path, number: u64) -> io::Result<Segment> {
        let file = OpenOptions::new().write(true).create_new(true).open(segment_path(wal_dir, number))?;
        sync_dir(wal_dir)?;
        Ok(Segment { number, file, len: 0, allocated: 0 })
    }

    /// A segment over an open file, for tests that need a file that fails.
    #[cfg(test)]
    pub(crate) fn over(file: File) -> Segment {
        Segment { number: 1, file, len: 0, allocated: 0 }
    }

    /// Writes `bytes` after the frames already written and makes them durable.
    pub(crate) fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.len + bytes.len() as u64;
        if end > self.allocated {
            // One `fdatasync` below covers the zeros, the frames and the new size.
            let allocated = (end / PREALLOCATE_BYTES + 1) * PREALLOCATE_BYTES;
            let zeros = vec![0; usize::try_from(allocated - self.allocated).map_err(io::Error::other)?];
            self.file.write_all_at(&zeros, self.allocated)?;
            self.allocated = allocated;
        }
        self.file.write_all_at(bytes, self.len)?;
        self.file.sync_data()?;
        self.len = end;
        Ok(())
    }

    /// Bytes written to this segment.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Makes the entries of directory `dir` (files created or removed) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    fn every_kind() -> (Vec<u8>, Vec<Op>) {
        let mut buffer = Vec::new();
        encode_append(&mut buffer, 7, 3, &[b"three".to_vec(), Vec::new(), vec![0xff; 300]]);
        encode_delete_stream(&mut buffer, 9);
        encode_put(&mut buffer, b"kv:leases", b"key", Some(b"value"));
        encode_put(&mut buffer, b"meta", b"gone", None);
        let ops = vec![
            Op::Append { stream: 7, first: 3, values: vec![b"three".to_vec(), Vec::new(), vec![0xff; 300]] },
            Op::DeleteStream { stream: 9 },
            Op::Put { tree: b"kv:leases".to_vec(), key: b"key".to_vec(), value: b"value".to_vec() },
            Op::Remove { tree: b"meta".to_vec(), key: b"gone".to_vec() },
        ];
        (buffer, ops)
    }

    #[test]
    fn every_kind_of_frame_round_trips() {
        let (buffer, ops) = every_kind();
        assert_eq!(decode_frames(&buffer), (ops, None));
    }

    #[test]
    fn a_torn_last_frame_ends_the_log_where_it_starts() {
        let (buffer, ops) = every_kind();
        let last_start = buffer.len() - (FRAME_HEADER_LEN + 1 + 4 + 4 + 4 + 4);
        for cut in last_start + 1..buffer.len() {
            let (decoded, torn_at) = decode_frames(&buffer[..cut]);
            assert_eq!(decoded, ops[..3], "cut at {cut}");
            assert_eq!(torn_at, Some(last_start), "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_frame_ends_the_log_and_nothing_after_it_is_read() {
        let (mut buffer, ops) = every_kind();
        // A byte inside the first frame's first value.
        buffer[FRAME_HEADER_LEN + 1 + 8 + 8 + 4 + 4] ^= 0x01;
        assert_eq!(decode_frames(&buffer), (Vec::new(), Some(0)));
        // Zeros written ahead of frames end the log cleanly; anything after
        // them that is not zero makes them a damaged frame.
        let (mut buffer, _) = every_kind();
        let first_len = FRAME_HEADER_LEN + u32::from_le_bytes(buffer[..4].try_into().unwrap()) as usize;
        buffer.truncate(first_len);
        buffer.extend_from_slice(&[0; 64]);
        assert_eq!(decode_frames(&buffer), (ops[..1].to_vec(), None));
        buffer.push(1);
        assert_eq!(decode_frames(&buffer), (ops[..1].to_vec(), Some(first_len)));
    }

    #[test]
    fn a_segment_grows_by_zeros_ahead_of_its_frames_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), 3).unwrap();
        let (frames, ops) = every_kind();
        let mut expected = Vec::new();
        // Enough writes to grow past the first preallocation.
        let rounds = (PREALLOCATE_BYTES as usize / frames.len()) + 2;
        for _ in 0..rounds {
            segment.write_durably(&frames).unwrap();
            expected.extend(ops.iter().cloned());
        }
        assert_eq!(segment.len(), (frames.len() * rounds) as u64);
        let bytes = fs::read(segment_path(dir.path(), 3)).unwrap();
        assert_eq!(bytes.len() as u64, 2 * PREALLOCATE_BYTES, "zeros ahead of the frames");
        assert_eq!(decode_frames(&bytes), (expected, None));
    }
}
