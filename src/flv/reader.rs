//! Streaming FLV tag reader that tells a torn tail from a clean end.
//!
//! A chunk cut short by a crash ends inside a tag or its PreviousTagSize. The reader never
//! trusts a size field for allocation: a tag is returned only once its header, body and
//! trailing PreviousTagSize have all been read, so a DataSize running past the end of the file
//! shows up as a torn tail ([`FlvReader::torn_tail`]), not as a huge buffer or a half frame.
//!
//! Only the current tag's body is held in memory (one reused buffer), so a two-pass remux can
//! walk a large file with a bounded footprint. Pass a buffered reader (`BufReader`): the
//! header and size fields are read with small reads.
//!
//! A PreviousTagSize that does not match the tag before it is not fatal here: the tag itself
//! was framed by its own DataSize, so reading goes on and the mismatch is counted
//! ([`FlvReader::bad_previous_sizes`], [`TagInfo::previous_size_ok`]) for the caller to warn
//! about. [`complete_prefix_len`] (crash salvage) is stricter and cuts before such a tag,
//! because bytes we did not frame consistently are what a crash leaves behind.

use std::io::{self, Read};

use super::tag::{
    FILE_HEADER_LEN, FlvError, FlvHeader, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, TagHeader, TagType,
};

/// One tag as returned by [`FlvReader::next_tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    pub header: TagHeader,
    /// File offset of the first body byte.
    pub body_offset: u64,
    /// Whether the PreviousTagSize after this tag equals 11 + DataSize.
    pub previous_size_ok: bool,
}

impl TagInfo {
    /// File offset of the tag header.
    pub fn tag_offset(&self) -> u64 {
        self.body_offset - TAG_HEADER_LEN as u64
    }

    /// File offset just past this tag's PreviousTagSize.
    pub fn end_offset(&self) -> u64 {
        self.body_offset + u64::from(self.header.data_size) + PREVIOUS_TAG_SIZE_LEN as u64
    }
}

/// Reads an FLV file header, then tags one at a time.
#[derive(Debug)]
pub struct FlvReader<R> {
    inner: R,
    header: FlvHeader,
    position: u64,
    body: Vec<u8>,
    has_current: bool,
    torn_tail: Option<u64>,
    bad_previous_sizes: u64,
    done: bool,
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read> FlvReader<R> {
    /// Reads and checks the file header and PreviousTagSize0. Anything that is not an FLV
    /// (wrong signature or version, empty input) is [`FlvError::NotFlv`]; an FLV header cut
    /// short is [`FlvError::TruncatedHeader`].
    pub fn new(mut inner: R) -> Result<Self, FlvError> {
        let io_err = |source| FlvError::Io { offset: 0, source };
        let mut fixed = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut inner, &mut fixed).map_err(io_err)?;
        if n == 0 {
            return Err(FlvError::NotFlv("the file is empty".into()));
        }
        if n < 3 || &fixed[..3] != b"FLV" {
            return Err(FlvError::NotFlv(format!(
                "it does not start with \"FLV\" (first bytes {:02x?})",
                &fixed[..n.min(3)]
            )));
        }
        if n < FILE_HEADER_LEN {
            return Err(FlvError::TruncatedHeader(n as u64));
        }
        let (header, header_size) = FlvHeader::parse(&fixed)?;
        // Skip any extra header bytes (never written by us) plus PreviousTagSize0.
        let rest = u64::from(header_size) - FILE_HEADER_LEN as u64 + PREVIOUS_TAG_SIZE_LEN as u64;
        let skipped = io::copy(&mut (&mut inner).take(rest), &mut io::sink()).map_err(io_err)?;
        let position = FILE_HEADER_LEN as u64 + skipped;
        if skipped < rest {
            return Err(FlvError::TruncatedHeader(position));
        }
        Ok(FlvReader {
            inner,
            header,
            position,
            body: Vec::new(),
            has_current: false,
            torn_tail: None,
            bad_previous_sizes: 0,
            done: false,
        })
    }

    pub fn header(&self) -> FlvHeader {
        self.header
    }

    /// The next complete tag, with its body read into the reader (see [`Self::body`]).
    /// `Ok(None)` at a clean end, and also at a torn tail, after which [`Self::torn_tail`]
    /// gives the end offset of the last complete tag. An unknown tag type is an error: it
    /// means the framing is lost.
    pub fn next_tag(&mut self) -> Result<Option<TagInfo>, FlvError> {
        self.has_current = false;
        if self.done {
            return Ok(None);
        }
        let start = self.position;
        let io_err = |source| FlvError::Io {
            offset: start,
            source,
        };
        let mut hb = [0u8; TAG_HEADER_LEN];
        let n = read_full(&mut self.inner, &mut hb).map_err(io_err)?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if n < TAG_HEADER_LEN {
            return Ok(self.torn(start));
        }
        let header = TagHeader::parse(&hb).map_err(|byte| FlvError::UnknownTagType {
            tag_type: byte & 0x1f,
            byte,
            offset: start,
        })?;
        let size = u64::from(header.data_size);
        self.body.clear();
        // `take` + `read_to_end` grows the buffer with the bytes that actually arrive, so a
        // lying DataSize cannot make us allocate more than the file holds.
        let got = (&mut self.inner)
            .take(size)
            .read_to_end(&mut self.body)
            .map_err(io_err)?;
        if (got as u64) < size {
            return Ok(self.torn(start));
        }
        let mut pb = [0u8; PREVIOUS_TAG_SIZE_LEN];
        if read_full(&mut self.inner, &mut pb).map_err(io_err)? < PREVIOUS_TAG_SIZE_LEN {
            return Ok(self.torn(start));
        }
        let previous_size_ok = u64::from(u32::from_be_bytes(pb)) == size + TAG_HEADER_LEN as u64;
        if !previous_size_ok {
            self.bad_previous_sizes += 1;
        }
        let info = TagInfo {
            header,
            body_offset: start + TAG_HEADER_LEN as u64,
            previous_size_ok,
        };
        self.position = info.end_offset();
        self.has_current = true;
        Ok(Some(info))
    }

    fn torn(&mut self, last_complete_end: u64) -> Option<TagInfo> {
        self.done = true;
        self.torn_tail = Some(last_complete_end);
        self.body.clear();
        None
    }

    /// The body of the tag just returned by [`Self::next_tag`].
    pub fn body(&self) -> &[u8] {
        if self.has_current { &self.body } else { &[] }
    }

    /// Copies the body of the tag just returned into `buf` (replacing its contents).
    pub fn read_body(&mut self, buf: &mut Vec<u8>) -> Result<(), FlvError> {
        if !self.has_current {
            return Err(FlvError::NoCurrentTag);
        }
        buf.clear();
        buf.extend_from_slice(&self.body);
        Ok(())
    }

    /// The first `n` bytes of the current body (fewer if the body is shorter): codec headers.
    pub fn read_body_prefix(&mut self, n: usize) -> Result<&[u8], FlvError> {
        if !self.has_current {
            return Err(FlvError::NoCurrentTag);
        }
        Ok(&self.body[..n.min(self.body.len())])
    }

    /// `Some(end offset of the last complete tag)` once the input ended inside a tag.
    pub fn torn_tail(&self) -> Option<u64> {
        self.torn_tail
    }

    /// Tags so far whose trailing PreviousTagSize did not match.
    pub fn bad_previous_sizes(&self) -> u64 {
        self.bad_previous_sizes
    }

    /// File offset just past the last complete tag read (its PreviousTagSize included).
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// The end offset of the last complete, consistently framed tag of a (possibly torn) FLV:
/// what crash salvage truncates to. Stops before a tag with an unknown type or a wrong
/// PreviousTagSize (stale or zeroed blocks after a crash), and at a torn tail.
pub fn complete_prefix_len<R: Read>(r: R) -> Result<u64, FlvError> {
    complete_prefix(r).map(|p| p.len)
}

/// The complete prefix of a (possibly torn) FLV: see [`complete_prefix_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletePrefix {
    pub len: u64,
    /// The latest timestamp of an audio or video tag in it (ms): where its media ends.
    pub last_media_timestamp: Option<u32>,
}

/// [`complete_prefix_len`], and where the media in that prefix ends.
pub fn complete_prefix<R: Read>(r: R) -> Result<CompletePrefix, FlvError> {
    let mut reader = FlvReader::new(r)?;
    let mut last_media_timestamp: Option<u32> = None;
    loop {
        let before = reader.position();
        let len = match reader.next_tag() {
            Ok(Some(info)) if info.previous_size_ok => {
                if info.header.tag_type != TagType::Script {
                    let t = info.header.timestamp;
                    last_media_timestamp = Some(last_media_timestamp.map_or(t, |m| m.max(t)));
                }
                continue;
            }
            Ok(Some(_)) | Err(FlvError::UnknownTagType { .. }) => before,
            Ok(None) => reader.position(),
            Err(e) => return Err(e),
        };
        return Ok(CompletePrefix {
            len,
            last_media_timestamp,
        });
    }
}
