//! The tests' one FLV reader, independent of the crate's own: walks the tags of a file (checking
//! each back pointer), tells media from sequence headers and script data, reads `onMetaData`, and
//! splices tags back into a file for hand-made fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

#[derive(Debug, Clone)]
pub struct Tag {
    pub kind: u8,
    /// DTS in ms (24 bits + extension byte).
    pub ts: u32,
    pub offset: u64,
    pub data: Vec<u8>,
}

impl Tag {
    pub fn is_video(&self) -> bool {
        self.kind == TAG_VIDEO
    }
    pub fn is_audio(&self) -> bool {
        self.kind == TAG_AUDIO
    }
    pub fn is_script(&self) -> bool {
        self.kind == TAG_SCRIPT
    }
    fn ex_header(&self) -> bool {
        self.is_video() && self.data.first().is_some_and(|b| b & 0x80 != 0)
    }
    /// Video frame type 1 (keyframe), legacy or enhanced header.
    pub fn is_keyframe(&self) -> bool {
        self.is_video() && self.data.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
    }
    /// AVC sequence header (legacy `AVCPacketType 0`) or enhanced `SequenceStart`.
    pub fn is_video_seq_header(&self) -> bool {
        self.is_video_packet_type(0)
    }
    /// AVC end of sequence (`AVCPacketType 2`, enhanced `SequenceEnd`): ffmpeg writes one at
    /// the end of a stream; it is not a frame.
    pub fn is_video_end_of_sequence(&self) -> bool {
        self.is_video_packet_type(2)
    }
    /// The enhanced VideoPacketType or the legacy AVCPacketType is `n` (0 and 2 mean the same
    /// in both).
    fn is_video_packet_type(&self, n: u8) -> bool {
        if !self.is_video() || self.data.len() < 2 {
            return false;
        }
        if self.ex_header() {
            self.data[0] & 0x0f == n
        } else {
            self.data[0] & 0x0f == 7 && self.data[1] == n
        }
    }
    /// The composition time offset (PTS - DTS) of an AVC/HEVC frame, 0 when absent.
    pub fn composition_time(&self) -> i32 {
        if !self.is_media() || !self.is_video() {
            return 0;
        }
        let d = &self.data;
        let at = if self.ex_header() {
            // Enhanced RTMP: only `CodedFrames` (1) of AVC/HEVC carries it, after the FourCC.
            let fourcc = d.get(1..5).unwrap_or(&[]);
            if d[0] & 0x0f != 1 || !(fourcc == b"avc1" || fourcc == b"hvc1") {
                return 0;
            }
            5
        } else if d[0] & 0x0f == 7 && d[1] == 1 {
            2
        } else {
            return 0;
        };
        match d.get(at..at + 3) {
            Some(b) => (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8,
            None => 0,
        }
    }
    pub fn is_aac_seq_header(&self) -> bool {
        self.is_audio() && self.data.len() >= 2 && self.data[0] >> 4 == 10 && self.data[1] == 0
    }
    /// A frame of media (not a sequence header, not script data).
    pub fn is_media(&self) -> bool {
        (self.is_video() && !self.is_video_seq_header() && !self.is_video_end_of_sequence())
            || (self.is_audio() && !self.is_aac_seq_header())
    }
    /// The script tag's name and value (`onMetaData`, object).
    pub fn script(&self) -> (String, Amf) {
        assert!(
            self.is_script(),
            "tag at {} is not script data",
            self.offset
        );
        let mut r = AmfReader {
            b: &self.data,
            pos: 0,
        };
        let name = match r.value() {
            Amf::Str(s) => s,
            other => panic!("script tag at {}: name is {other:?}", self.offset),
        };
        (name, r.value())
    }
}

#[derive(Debug)]
pub struct Flv {
    pub path: PathBuf,
    /// The FLV header and PreviousTagSize0, as in the file.
    pub header: Vec<u8>,
    pub flags: u8,
    pub tags: Vec<Tag>,
    /// Bytes after the last complete tag (a torn tail); 0 for a complete file.
    pub trailing: usize,
}

impl Flv {
    /// Walks every tag of `path`. Panics on a bad header or on a back pointer that does not
    /// match its tag (the file is corrupt, not just cut short).
    pub fn read(path: &Path) -> Flv {
        let b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Flv::parse(path, &b)
    }

    /// [`Flv::read`] on bytes in memory; `path` names them in panics.
    pub fn parse(path: &Path, b: &[u8]) -> Flv {
        assert!(
            b.len() >= 13 && &b[..3] == b"FLV" && b[3] == 1,
            "{}: not an FLV file",
            path.display()
        );
        let header_len = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) as usize;
        assert!(
            header_len >= 9,
            "{}: header length {header_len}",
            path.display()
        );
        let mut pos = header_len + 4;
        let mut tags = Vec::new();
        while pos + 11 <= b.len() {
            let size = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
            let end = pos + 11 + size + 4;
            if end > b.len() {
                break;
            }
            let back = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
            assert_eq!(
                back as usize,
                11 + size,
                "{}: tag at {pos}: previous-tag-size {back} != {}",
                path.display(),
                11 + size
            );
            let ts = u32::from_be_bytes([b[pos + 7], b[pos + 4], b[pos + 5], b[pos + 6]]);
            tags.push(Tag {
                kind: b[pos] & 0x1f,
                ts,
                offset: pos as u64,
                data: b[pos + 11..pos + 11 + size].to_vec(),
            });
            pos = end;
        }
        Flv {
            path: path.to_path_buf(),
            header: b[..header_len + 4].to_vec(),
            flags: b[4],
            tags,
            trailing: b.len() - pos,
        }
    }

    /// Byte offsets where each tag ends (after its back pointer).
    pub fn tag_ends(&self) -> Vec<usize> {
        self.tags
            .iter()
            .map(|t| t.offset as usize + 11 + t.data.len() + 4)
            .collect()
    }

    pub fn video(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter().filter(|t| t.is_video() && t.is_media())
    }

    pub fn media(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter().filter(|t| t.is_media())
    }

    /// The `onMetaData` object (first script tag with that name).
    pub fn metadata(&self) -> Option<BTreeMap<String, Amf>> {
        self.tags
            .iter()
            .filter(|t| t.is_script())
            .map(Tag::script)
            .find(|(name, _)| name == "onMetaData")
            .map(|(_, v)| v.into_map())
    }
}

/// AMF0 values, as much as script tags use.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Number(f64),
    Bool(bool),
    Str(String),
    Object(Vec<(String, Amf)>),
    Array(Vec<Amf>),
    Null,
    Date(f64),
}

impl Amf {
    pub fn into_map(self) -> BTreeMap<String, Amf> {
        match self {
            Amf::Object(kv) => kv.into_iter().collect(),
            other => panic!("onMetaData value is {other:?}, not an object"),
        }
    }
}

struct AmfReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl AmfReader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.pos + n <= self.b.len(), "AMF0 value runs past its tag");
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u16(&mut self) -> usize {
        let s = self.take(2);
        u16::from_be_bytes([s[0], s[1]]) as usize
    }
    fn u32(&mut self) -> usize {
        let s = self.take(4);
        u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize
    }
    fn f64(&mut self) -> f64 {
        let s = self.take(8);
        f64::from_be_bytes(s.try_into().expect("8 bytes"))
    }
    fn string(&mut self, len: usize) -> String {
        String::from_utf8_lossy(self.take(len)).into_owned()
    }
    fn props(&mut self) -> Vec<(String, Amf)> {
        let mut kv = Vec::new();
        loop {
            let n = self.u16();
            let key = self.string(n);
            if key.is_empty() && self.b.get(self.pos) == Some(&9) {
                self.pos += 1;
                return kv;
            }
            let v = self.value();
            kv.push((key, v));
        }
    }
    fn value(&mut self) -> Amf {
        let marker = self.take(1)[0];
        match marker {
            0 => Amf::Number(self.f64()),
            1 => Amf::Bool(self.take(1)[0] != 0),
            2 => {
                let n = self.u16();
                Amf::Str(self.string(n))
            }
            3 => Amf::Object(self.props()),
            5 | 6 => Amf::Null,
            8 => {
                let _count = self.u32();
                Amf::Object(self.props())
            }
            10 => {
                let n = self.u32();
                Amf::Array((0..n).map(|_| self.value()).collect())
            }
            11 => {
                let d = self.f64();
                self.take(2);
                Amf::Date(d)
            }
            12 => {
                let n = self.u32();
                Amf::Str(self.string(n))
            }
            m => panic!("AMF0 marker {m} not supported by the test walker"),
        }
    }
}

/// The header bytes (with PreviousTagSize0) and the tags of the FLV at `path`, for splicing.
pub fn split(path: &Path) -> (Vec<u8>, Vec<Tag>) {
    let flv = Flv::read(path);
    (flv.header, flv.tags)
}

/// An FLV file of `header` and `tags`, each tag with its back pointer (`offset` is not read).
pub fn join(header: &[u8], tags: &[Tag]) -> Vec<u8> {
    let mut out = header.to_vec();
    for t in tags {
        let size = (t.data.len() as u32).to_be_bytes();
        let ts = t.ts.to_be_bytes();
        out.extend_from_slice(&[
            t.kind, size[1], size[2], size[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0,
        ]);
        out.extend_from_slice(&t.data);
        out.extend_from_slice(&(11 + t.data.len() as u32).to_be_bytes());
    }
    out
}
