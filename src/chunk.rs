//! The chunk splitter: frames in, "start a new chunk here" out. Pure; no files, no clocks.
//!
//! Ingest feeds every message of one publish session in arrival order; for each one the
//! splitter answers what to do with it ([`Action`]): remember it for the next chunk's header,
//! write it into the open chunk, or start a new chunk with it. It also rebases timestamps so
//! every chunk starts at 0, and says when (UTC) each chunk starts ([`Splitter::chunk_utc_ms`]).
//!
//! Time: the shell passes the UTC time of the session's wall-clock origin once
//! ([`Splitter::with_utc_origin`]) and, with each message, the wall time since then
//! ([`Splitter::push_at`]): the message's arrival. Media time is the publisher's timestamps.
//!
//! Rules:
//! - The first media frame (audio or video) opens chunk 1. Sequence headers and metadata are
//!   not frames: they are remembered and written at the head of every chunk
//!   ([`Splitter::header_tags`]).
//! - A sequence header that arrives after media started and differs from the current one
//!   (codec or configuration bytes), or is the first of its kind, makes the next frame start a
//!   new chunk; an identical repeat is only remembered.
//! - A chunk ends right before the first video keyframe whose timestamp reaches the chunk
//!   start + `target_ms`, or, once the chunk holds `max_bytes` or `max_frames`, before the next
//!   keyframe; never mid-GOP. Until the stream has shown a video frame, audio frames are the
//!   split points.
//! - A chunk's UTC start: the first chunk's is its first frame's arrival. Each later chunk's is
//!   the previous chunk's UTC start plus the media time between their first frames, so
//!   `utc_start - stream_offset` stays the same across a session and a chunk starts where the
//!   one before it ends; but where that is more than [`MAX_CLOCK_SKEW_MS`] away from the
//!   frame's arrival (the publisher's clock jumped, or it sends faster or slower than real
//!   time), the arrival is taken instead. It never goes below the previous chunk's.
//! - Aligned to the clock (`align_to_clock`): the duration rule counts on the UTC clock instead.
//!   A chunk ends right before the first split point whose UTC time (the chunk's UTC start plus
//!   its media time since the chunk's first frame) reaches the next multiple of `target_ms`
//!   after the chunk's UTC start (multiples since the Unix epoch: 5-minute chunks end at :00,
//!   :05, ... of every hour, whatever the stream). So the first chunk is shorter, and every
//!   later one starts within one GOP after a multiple. The size, frame, hard-cap and pacing
//!   rules apply unchanged. A chunk that started early because its UTC start was taken from
//!   the arrival (above) ends at the next multiple, however close.
//! - Hard caps: once a chunk holds twice `max_bytes` or twice `max_frames`, the next frame starts
//!   a new chunk whether or not it is a keyframe ([`SplitReason::HardLimit`]); such a chunk starts
//!   on a frame that needs earlier ones, and the remux says so in its manifest. A publisher that
//!   sends one keyframe and then only inter frames would otherwise grow one chunk (and the remux's
//!   sample tables) without end. Non-frame messages past the hard byte cap are dropped.
//! - Pacing: every chunk start a publisher can cause with a few bytes (a sequence header change,
//!   a timestamp jump back or forward, a keyframe past the duration or size) spends one of
//!   `start_burst` tokens, refilled one per `start_interval_ms` of wall time passed in
//!   ([`Splitter::push_at`]); each start repeats the header tags (up to the caps below), so
//!   without this ~60 bytes per change could fill the disk. Without a token the split waits for a
//!   later split point; a changed sequence header is then written into the open chunk (the remux
//!   turns it into a second sample description) and only remembered for the next chunk's head.
//!   The first chunk, a resume and the hard caps are never paced.
//! - Header caps: metadata larger than [`MAX_METADATA_BYTES`] and sequence headers larger than
//!   [`MAX_SEQUENCE_HEADER_BYTES`] are dropped and counted; the latter is reported through
//!   [`Splitter::take_refused`] so the shell can end the session (the frames after it could not
//!   be decoded).
//! - Once a frame has gone back in time (below the previous frame of its kind and below the
//!   chunk start: the publisher restarted its clock), the next split point below the chunk
//!   start also starts a new chunk ([`SplitReason::Discontinuity`]); otherwise the rest of the stream
//!   would pile up at 0.
//! - Timestamps are relative to the chunk's first frame; a message older than that (audio
//!   that arrives just after the keyframe that opened the chunk) gets 0 and is counted
//!   ([`Splitter::clamped`]). Composition offsets live in the video body and are untouched.
//! - Video and audio messages that are not frames (command frames, end of sequence, E-RTMP
//!   metadata, multitrack, bodies that do not parse) are written into the open chunk as they
//!   are (the remux skips them) and never split; before the first chunk they are dropped
//!   and counted ([`Splitter::dropped`]).

use crate::flv::script;
use crate::flv::tag::{FILE_PREAMBLE_LEN, tag_len};
use crate::flv::{AudioCodec, TagType, VideoCodec, VideoPacket, parse_audio, parse_video};

/// Encoded length of the AMF0 string "@setDataFrame" (marker, 16-bit length, 13 bytes).
const SET_DATA_FRAME_LEN: usize = 1 + 2 + 13;

/// Largest `onMetaData` body kept. ffmpeg's and OBS's are under 1 KiB; 64 KiB leaves room for
/// custom fields while a chunk head stays small next to its media.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Largest sequence header (AVC/HEVC/AV1/VP9 configuration, AAC/Opus/... config) kept. Real
/// ones are under a few KiB (an HEVC one with VPS, SPS, PPS and SEI is the largest we have
/// seen); 1 MiB is far above any encoder's and still bounds what every chunk head repeats.
pub const MAX_SEQUENCE_HEADER_BYTES: usize = 1024 * 1024;
/// The hard caps are this many times the soft ones (`max_bytes`, `max_frames`).
pub const HARD_CAP_FACTOR: u64 = 2;

/// When to cut. The limits apply together; whichever is reached first splits at the next
/// keyframe, and twice a size limit splits at the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    /// Chunk duration to aim for, in ms of media time.
    pub target_ms: u64,
    /// FLV bytes after which the next keyframe starts a new chunk.
    pub max_bytes: u64,
    /// Frames (audio and video) after which the next keyframe starts a new chunk.
    pub max_frames: u64,
    /// Chunk starts in a row a publisher may cause before they are paced.
    pub start_burst: u32,
    /// Wall time (ms) that refills one chunk start once the burst is spent; 0: no pacing.
    pub start_interval_ms: u64,
    /// Duration splits at multiples of `target_ms` on the UTC clock instead of `target_ms`
    /// after each chunk's start.
    pub align_to_clock: bool,
}

impl SplitConfig {
    /// `target_ms` and `max_bytes` with the default frame cap and pacing.
    pub fn new(target_ms: u64, max_bytes: u64) -> SplitConfig {
        SplitConfig {
            target_ms,
            max_bytes,
            max_frames: DEFAULT_MAX_FRAMES,
            start_burst: DEFAULT_START_BURST,
            start_interval_ms: DEFAULT_START_INTERVAL_MS,
            align_to_clock: false,
        }
    }

    fn hard_bytes(&self) -> u64 {
        self.max_bytes.saturating_mul(HARD_CAP_FACTOR)
    }

    fn hard_frames(&self) -> u64 {
        self.max_frames.saturating_mul(HARD_CAP_FACTOR)
    }
}

/// Default soft frame cap: an hour of 60 fps video with 48 kHz AAC (~107 frames a second) is
/// 385,000 frames, so normal chunks never reach it; the hard cap (twice this) bounds the remux's
/// sample tables.
pub const DEFAULT_MAX_FRAMES: u64 = 400_000;
/// Default burst of paced chunk starts: a file pushed at full speed (many chunk lengths a
/// second) still gets its chunks cut on time for this many.
pub const DEFAULT_START_BURST: u32 = 30;
/// Default refill: one paced chunk start per 2 s of wall time.
pub const DEFAULT_START_INTERVAL_MS: u64 = 2_000;
/// How far a chunk's UTC start reckoned in media time may be from its first frame's arrival
/// before the arrival is taken instead. Above what batching and network jitter move an arrival
/// (ingest hands frames to the recorder in batches of up to 100 ms), far below what a
/// publisher that restarted its clock or pushes a file at full speed makes of it.
pub const MAX_CLOCK_SKEW_MS: i64 = 1_000;

/// A header the splitter dropped for its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Metadata { bytes: usize },
    SequenceHeader { bytes: usize },
}

/// One message of a publish session, as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A script data body: the publisher's `onMetaData`, with or without the RTMP
    /// `@setDataFrame` prefix (which is stripped). Script data that is not a decodable
    /// `onMetaData` is dropped and counted.
    Metadata(&'a [u8]),
    /// An audio tag body; `timestamp` is the stream's ms timestamp as received.
    Audio { timestamp: u64, body: &'a [u8] },
    /// A video tag body; `timestamp` is the decode timestamp in ms as received.
    Video { timestamp: u64, body: &'a [u8] },
}

impl<'a> Message<'a> {
    /// The FLV tag this message is written as.
    pub fn tag_type(&self) -> TagType {
        match self {
            Message::Metadata(_) => TagType::Script,
            Message::Audio { .. } => TagType::Audio,
            Message::Video { .. } => TagType::Video,
        }
    }

    pub fn body(&self) -> &'a [u8] {
        match *self {
            Message::Metadata(body) | Message::Audio { body, .. } | Message::Video { body, .. } => {
                body
            }
        }
    }
}

/// Why a chunk started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitReason {
    StreamStart,
    Duration,
    Size,
    VideoConfigChanged,
    AudioConfigChanged,
    /// A keyframe (audio-only: an audio frame) with a timestamp below the chunk start.
    Discontinuity,
    /// The chunk holds `max_frames` frames: split at the next keyframe.
    Frames,
    /// The chunk reached a hard cap (twice `max_bytes` or `max_frames`): split at the next frame,
    /// keyframe or not.
    HardLimit,
    /// The first split point after the shell asked for one ([`Splitter::cut_at_next_split_point`]):
    /// recording resumes after frames were lost (the disk was full).
    Resume,
}

impl SplitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitReason::StreamStart => "stream-start",
            SplitReason::Duration => "duration",
            SplitReason::Size => "size",
            SplitReason::VideoConfigChanged => "video-config-changed",
            SplitReason::AudioConfigChanged => "audio-config-changed",
            SplitReason::Discontinuity => "discontinuity",
            SplitReason::Frames => "frames",
            SplitReason::HardLimit => "hard-limit",
            SplitReason::Resume => "resume",
        }
    }

    /// Whether a publisher can cause this split cheaply, so it spends a pacing token.
    fn paced(self) -> bool {
        !matches!(
            self,
            SplitReason::StreamStart | SplitReason::Resume | SplitReason::HardLimit
        )
    }
}

/// What to do with the message just pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to write now: metadata or a sequence header, remembered for the next chunk's
    /// header (or a non-frame message before the first chunk, dropped).
    Remember,
    /// Write this message into the open chunk at `timestamp` (ms since the chunk's first frame).
    Write { timestamp: u32 },
    /// Close the open chunk (if any); open a new one, write [`Splitter::header_tags`] first (at
    /// timestamp 0), then this message at `timestamp` (always 0: it is the chunk's first frame).
    StartChunk { timestamp: u32, reason: SplitReason },
}

/// A tag a chunk begins with, written at timestamp 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTag<'a> {
    pub tag_type: TagType,
    pub body: &'a [u8],
}

/// A remembered sequence header: the tag body, and what identifies the configuration.
#[derive(Debug, Clone)]
struct Config<C> {
    codec: C,
    payload_start: usize,
    body: Vec<u8>,
}

impl<C: PartialEq> Config<C> {
    fn same(&self, codec: &C, payload: &[u8]) -> bool {
        self.codec == *codec && &self.body[self.payload_start..] == payload
    }
}

/// What kind of media a message is, for the splitting rules.
enum Kind<C> {
    /// A sequence header with its codec and payload offset in the body.
    Config(C, usize),
    /// A frame; `keyframe` is always true for audio (every audio frame is decodable alone).
    Frame { keyframe: bool },
    /// Written if a chunk is open, otherwise dropped.
    Other,
}

/// The chunk splitter state for one publish session.
#[derive(Debug, Clone)]
pub struct Splitter {
    config: SplitConfig,
    metadata: Option<Vec<u8>>,
    video: Option<Config<VideoCodec>>,
    audio: Option<Config<AudioCodec>>,
    /// A config change seen while a chunk is open: the next frame starts a chunk.
    pending: Option<SplitReason>,
    /// The shell asked for a new chunk at the next split point (keyframe).
    resume: bool,
    /// Stream timestamp of the open chunk's first frame; `None` before the first frame.
    chunk_start: Option<u64>,
    chunk_bytes: u64,
    chunk_frames: u64,
    /// Wall time of the last [`Splitter::push_at`] (ms).
    now_ms: u64,
    /// UTC (Unix ms) at wall time 0.
    utc_origin_ms: i64,
    /// UTC start (Unix ms) of the open chunk.
    chunk_utc: Option<i64>,
    /// The open chunk's length by the duration rule: `target_ms`, or with `align_to_clock` up
    /// to the next multiple of it on the UTC clock (set when the chunk starts, not per frame).
    chunk_target_ms: u64,
    /// Pacing budget in ms of wall time: a paced start costs `start_interval_ms`.
    allowance_ms: u64,
    allowance_at_ms: u64,
    refused: Option<Refused>,
    seen_video_frame: bool,
    last_video: Option<u64>,
    last_audio: Option<u64>,
    /// A frame went back in time below the chunk start since the chunk opened.
    jumped_back: bool,
    clamped: u64,
    dropped: u64,
    chunks: u64,
}

impl Splitter {
    pub fn new(config: SplitConfig) -> Splitter {
        Splitter {
            config,
            metadata: None,
            video: None,
            audio: None,
            pending: None,
            resume: false,
            chunk_start: None,
            chunk_bytes: 0,
            chunk_frames: 0,
            now_ms: 0,
            utc_origin_ms: 0,
            chunk_utc: None,
            chunk_target_ms: config.target_ms,
            allowance_ms: u64::from(config.start_burst).saturating_mul(config.start_interval_ms),
            allowance_at_ms: 0,
            refused: None,
            seen_video_frame: false,
            last_video: None,
            last_audio: None,
            jumped_back: false,
            clamped: 0,
            dropped: 0,
            chunks: 0,
        }
    }

    /// The UTC time (Unix ms) at which the wall time passed to [`Self::push_at`] is zero:
    /// where chunks' UTC starts, and with `align_to_clock` their ends, are reckoned from.
    pub fn with_utc_origin(mut self, unix_ms: i64) -> Splitter {
        self.utc_origin_ms = unix_ms;
        self
    }

    /// [`Self::push`] at wall time `now` (since the UTC origin, e.g. the session's start; it
    /// never goes back): the time the pacing counts in, and the message's arrival.
    pub fn push_at(&mut self, now: std::time::Duration, msg: &Message<'_>) -> Action {
        self.now_ms = self
            .now_ms
            .max(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        self.push(msg)
    }

    /// Takes the next message, at the wall time of the last [`Self::push_at`].
    pub fn push(&mut self, msg: &Message<'_>) -> Action {
        match *msg {
            Message::Metadata(body) if body.len() > MAX_METADATA_BYTES => {
                self.refuse(Refused::Metadata { bytes: body.len() })
            }
            Message::Metadata(body) => {
                // RTMP sends `@setDataFrame, onMetaData, {..}`; a file holds `onMetaData, {..}`.
                // Other script data (cue points, text) is not chunk metadata.
                let body = match script::script_name(body).as_deref() {
                    Some("@setDataFrame") => &body[SET_DATA_FRAME_LEN.min(body.len())..],
                    _ => body,
                };
                if script::decode_metadata(body).is_ok() {
                    self.metadata = Some(body.to_vec());
                } else {
                    self.dropped += 1;
                }
                Action::Remember
            }
            Message::Video { timestamp, body } => {
                let kind = match parse_video(body) {
                    Ok(v) if v.command => Kind::Other,
                    Ok(v) => match v.packet {
                        VideoPacket::SequenceHeader => {
                            Kind::Config(v.codec, body.len() - v.payload.len())
                        }
                        VideoPacket::Frame { .. } => Kind::Frame {
                            keyframe: v.keyframe,
                        },
                        _ => Kind::Other,
                    },
                    Err(_) => Kind::Other,
                };
                match kind {
                    Kind::Config(c, at) => {
                        let reason = SplitReason::VideoConfigChanged;
                        self.sequence_header(|s| &mut s.video, reason, (c, at), timestamp, body)
                    }
                    Kind::Frame { keyframe } => {
                        self.seen_video_frame = true;
                        let previous = self.last_video.replace(timestamp);
                        self.frame(timestamp, previous, body.len(), keyframe)
                    }
                    Kind::Other => self.other(timestamp, body.len()),
                }
            }
            Message::Audio { timestamp, body } => {
                let kind = match parse_audio(body) {
                    Ok(a) if a.sequence_header => {
                        Kind::Config(a.codec, body.len() - a.payload.len())
                    }
                    Ok(a) if !a.unsupported => Kind::Frame { keyframe: true },
                    _ => Kind::Other,
                };
                match kind {
                    Kind::Config(c, at) => {
                        let reason = SplitReason::AudioConfigChanged;
                        self.sequence_header(|s| &mut s.audio, reason, (c, at), timestamp, body)
                    }
                    // Audio frames are split points while the stream has no video, or when its
                    // video has been silent for a whole chunk length (a camera that died while
                    // the microphone goes on): chunks must not grow without end waiting for a
                    // keyframe that never comes.
                    Kind::Frame { .. } => {
                        let video_gone = self.last_video.is_none_or(|v| {
                            timestamp.saturating_sub(v) >= self.config.target_ms.max(1)
                        });
                        let split_point = !self.seen_video_frame || video_gone;
                        let previous = self.last_audio.replace(timestamp);
                        self.frame(timestamp, previous, body.len(), split_point)
                    }
                    Kind::Other => self.other(timestamp, body.len()),
                }
            }
        }
    }

    /// `previous`: the last timestamp of the same media kind, to tell a jump back in the
    /// publisher's clock from audio that merely arrives a little ahead of video.
    fn frame(
        &mut self,
        timestamp: u64,
        previous: Option<u64>,
        body_len: usize,
        split_point: bool,
    ) -> Action {
        let Some(start) = self.chunk_start else {
            return self.start_chunk(timestamp, body_len, SplitReason::StreamStart);
        };
        if timestamp < start && previous.is_some_and(|p| timestamp < p) {
            self.jumped_back = true;
        }
        if self.chunk_bytes >= self.config.hard_bytes()
            || self.chunk_frames >= self.config.hard_frames()
        {
            return self.start_chunk(timestamp, body_len, SplitReason::HardLimit);
        }
        let jumped_back = self.jumped_back;
        let target = self.chunk_target_ms;
        let max_bytes = self.config.max_bytes;
        let bytes = self.chunk_bytes;
        let max_frames = self.config.max_frames;
        let frames = self.chunk_frames;
        let resume = split_point && std::mem::take(&mut self.resume);
        let reason = self.pending.take().or_else(|| {
            if !split_point {
                return None;
            }
            if resume {
                return Some(SplitReason::Resume);
            }
            if timestamp < start {
                if jumped_back {
                    return Some(SplitReason::Discontinuity);
                }
            } else if timestamp - start >= target {
                return Some(SplitReason::Duration);
            }
            if bytes >= max_bytes {
                return Some(SplitReason::Size);
            }
            (frames >= max_frames).then_some(SplitReason::Frames)
        });
        match reason {
            Some(r) if self.take_start(r) => self.start_chunk(timestamp, body_len, r),
            // Paced: the split waits for a later split point (its condition still holds then).
            Some(_) | None => {
                self.chunk_frames += 1;
                self.write(start, timestamp, body_len)
            }
        }
    }

    /// A sequence header changed while a chunk is open: the next frame starts a chunk when
    /// pacing allows one; otherwise the header goes into the open chunk, ahead of its frames.
    /// A sequence header of the track `slot` picks (`codec`, and where its payload starts in
    /// `body`): refused when oversized; one that changes the track's configuration ends the
    /// open chunk for `reason`.
    fn sequence_header<C: PartialEq>(
        &mut self,
        slot: fn(&mut Self) -> &mut Option<Config<C>>,
        reason: SplitReason,
        (codec, start): (C, usize),
        timestamp: u64,
        body: &[u8],
    ) -> Action {
        if body.len() > MAX_SEQUENCE_HEADER_BYTES {
            return self.refuse(Refused::SequenceHeader { bytes: body.len() });
        }
        let open = self.chunk_start.is_some();
        if remember_config(slot(self), codec, start, body, open) {
            return self.config_changed(reason, timestamp, body.len());
        }
        Action::Remember
    }

    fn config_changed(&mut self, reason: SplitReason, timestamp: u64, body_len: usize) -> Action {
        if self.pending.is_some() || self.start_available() {
            self.pending.get_or_insert(reason);
            return Action::Remember;
        }
        match self.chunk_start {
            Some(start) if self.chunk_bytes < self.config.hard_bytes() => {
                self.write(start, timestamp, body_len)
            }
            // Past the hard cap the next frame starts a chunk anyway, with this header.
            _ => Action::Remember,
        }
    }

    fn refuse(&mut self, refused: Refused) -> Action {
        self.dropped += 1;
        self.refused = Some(refused);
        Action::Remember
    }

    /// The pacing budget now, refilled by the wall time since it was last looked at.
    fn refill(&mut self) -> u64 {
        let cap = u64::from(self.config.start_burst).saturating_mul(self.config.start_interval_ms);
        let elapsed = self.now_ms.saturating_sub(self.allowance_at_ms);
        self.allowance_at_ms = self.now_ms;
        self.allowance_ms = self.allowance_ms.saturating_add(elapsed).min(cap);
        self.allowance_ms
    }

    fn start_available(&mut self) -> bool {
        let interval = self.config.start_interval_ms;
        interval == 0 || self.refill() >= interval
    }

    /// Spends a pacing token for a split of this reason; false if none is left.
    fn take_start(&mut self, reason: SplitReason) -> bool {
        if !reason.paced() || self.config.start_interval_ms == 0 {
            return true;
        }
        if !self.start_available() {
            return false;
        }
        self.allowance_ms -= self.config.start_interval_ms;
        true
    }

    fn other(&mut self, timestamp: u64, body_len: usize) -> Action {
        match self.chunk_start {
            Some(start) if self.chunk_bytes < self.config.hard_bytes() => {
                self.write(start, timestamp, body_len)
            }
            _ => {
                self.dropped += 1;
                Action::Remember
            }
        }
    }

    fn write(&mut self, start: u64, timestamp: u64, body_len: usize) -> Action {
        if timestamp < start {
            self.clamped += 1;
        }
        self.chunk_bytes += tag_len(body_len);
        let rel = timestamp.saturating_sub(start);
        Action::Write {
            timestamp: u32::try_from(rel).unwrap_or(u32::MAX),
        }
    }

    fn start_chunk(&mut self, timestamp: u64, body_len: usize, reason: SplitReason) -> Action {
        let arrival = self
            .utc_origin_ms
            .saturating_add(i64::try_from(self.now_ms).unwrap_or(i64::MAX));
        self.chunk_utc = Some(match (self.chunk_utc, self.chunk_start) {
            (Some(utc), Some(start)) => {
                let media = i64::try_from(timestamp).unwrap_or(i64::MAX)
                    - i64::try_from(start).unwrap_or(i64::MAX);
                let reckoned = utc.saturating_add(media);
                let chosen = if reckoned.abs_diff(arrival) <= MAX_CLOCK_SKEW_MS.unsigned_abs() {
                    reckoned
                } else {
                    arrival
                };
                chosen.max(utc)
            }
            _ => arrival,
        });
        self.chunk_target_ms = match (self.config.align_to_clock, self.chunk_utc) {
            (true, Some(utc)) => until_next_multiple(utc, self.config.target_ms),
            _ => self.config.target_ms,
        };
        self.chunk_start = Some(timestamp);
        self.pending = None;
        self.resume = false;
        self.jumped_back = false;
        self.chunks += 1;
        self.chunk_frames = 1;
        self.chunk_bytes = FILE_PREAMBLE_LEN
            + self
                .header_tags()
                .iter()
                .map(|t| tag_len(t.body.len()))
                .sum::<u64>()
            + tag_len(body_len);
        Action::StartChunk {
            timestamp: 0,
            reason,
        }
    }

    /// The tags a new chunk begins with, in order: the latest metadata (the publisher's; the
    /// shell adds its own fields via `flv::script`), the video sequence header, the audio
    /// sequence header (those present). All at timestamp 0.
    pub fn header_tags(&self) -> Vec<HeaderTag<'_>> {
        let mut tags = Vec::with_capacity(3);
        if let Some(m) = &self.metadata {
            tags.push(HeaderTag {
                tag_type: TagType::Script,
                body: m,
            });
        }
        if let Some(v) = &self.video {
            tags.push(HeaderTag {
                tag_type: TagType::Video,
                body: &v.body,
            });
        }
        if let Some(a) = &self.audio {
            tags.push(HeaderTag {
                tag_type: TagType::Audio,
                body: &a.body,
            });
        }
        tags
    }

    /// Makes the next split point (a video keyframe; audio-only: an audio frame) start a new
    /// chunk ([`SplitReason::Resume`]), whatever its timestamp: the shell lost the open chunk's
    /// tail (the disk filled) and starts over cleanly once it can write again.
    pub fn cut_at_next_split_point(&mut self) {
        self.resume = true;
    }

    /// UTC start (Unix ms) of the open chunk (see the rules above); `None` before the first.
    pub fn chunk_utc_ms(&self) -> Option<i64> {
        self.chunk_utc
    }

    /// Stream media time (ms, as received) of the open chunk's first frame.
    pub fn chunk_start_timestamp(&self) -> Option<u64> {
        self.chunk_start
    }

    /// FLV bytes of the open chunk so far: file header, header tags, written tags and their
    /// PreviousTagSize fields. The metadata counted is the publisher's body; the fields the
    /// shell adds make the file slightly larger.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// Frames (audio and video) in the open chunk so far.
    pub fn chunk_frames(&self) -> u64 {
        self.chunk_frames
    }

    /// The header dropped for its size since the last call, if any.
    pub fn take_refused(&mut self) -> Option<Refused> {
        self.refused.take()
    }

    /// Messages given timestamp 0 because they were older than their chunk's first frame.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Messages dropped: non-frame audio/video before the first frame (or past the hard byte
    /// cap), script data that is not a decodable `onMetaData`, and headers over their caps.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Chunks started so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }
}

/// Media time from UTC `utc_ms` to the next multiple of `period_ms` after it (a whole period
/// when `utc_ms` is one); 0 for a period of 0.
fn until_next_multiple(utc_ms: i64, period_ms: u64) -> u64 {
    match i64::try_from(period_ms) {
        Ok(0) => 0,
        Ok(period) => (period - utc_ms.rem_euclid(period)).unsigned_abs(),
        // Longer than the epoch is old: no multiple is ever reached.
        Err(_) => u64::MAX,
    }
}

/// Stores a sequence header; true if it differs from the current one (or is the first) while a
/// chunk is open.
fn remember_config<C: PartialEq>(
    slot: &mut Option<Config<C>>,
    codec: C,
    payload_start: usize,
    body: &[u8],
    chunk_open: bool,
) -> bool {
    let payload = &body[payload_start..];
    if slot.as_ref().is_some_and(|c| c.same(&codec, payload)) {
        return false;
    }
    // A first header after media started changes the configuration too: the open chunk's
    // header lacks it, so its frames must go to a chunk that has it.
    let changed = chunk_open;
    *slot = Some(Config {
        codec,
        payload_start,
        body: body.to_vec(),
    });
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{FlvReader, FlvWriter};
    use std::io::Cursor;
    use std::time::Duration;

    /// No frame cap and no pacing: the rules those add are tested on their own.
    fn cfg(target_ms: u64, max_bytes: u64) -> SplitConfig {
        SplitConfig {
            target_ms,
            max_bytes,
            max_frames: u64::MAX,
            start_burst: 0,
            start_interval_ms: 0,
            align_to_clock: false,
        }
    }

    fn vseq(config: &[u8]) -> Vec<u8> {
        let mut b = vec![0x17, 0, 0, 0, 0];
        b.extend_from_slice(config);
        b
    }
    fn vframe(key: bool, ct: i32) -> Vec<u8> {
        let c = ct.to_be_bytes();
        vec![
            if key { 0x17 } else { 0x27 },
            1,
            c[1],
            c[2],
            c[3],
            0,
            0,
            0,
            2,
            0x65,
            0x88,
        ]
    }
    fn aseq(config: &[u8]) -> Vec<u8> {
        let mut b = vec![0xaf, 0];
        b.extend_from_slice(config);
        b
    }
    fn aframe() -> Vec<u8> {
        vec![0xaf, 1, 0x21, 0x10, 0x04]
    }
    fn v(timestamp: u64, body: &[u8]) -> Message<'_> {
        Message::Video { timestamp, body }
    }
    fn a(timestamp: u64, body: &[u8]) -> Message<'_> {
        Message::Audio { timestamp, body }
    }
    fn start(reason: SplitReason) -> Action {
        Action::StartChunk {
            timestamp: 0,
            reason,
        }
    }
    fn write(timestamp: u32) -> Action {
        Action::Write { timestamp }
    }

    #[test]
    fn first_frame_opens_the_chunk_after_remembered_headers() {
        let mut s = Splitter::new(cfg(10_000, u64::MAX));
        let meta = crate::flv::script::encode_metadata(&[]);
        let (vs, as_) = (vseq(&[1, 0x64, 0, 0x1f]), aseq(&[0x12, 0x10]));
        assert_eq!(s.push(&Message::Metadata(&meta)), Action::Remember);
        assert_eq!(s.push(&v(0, &vs)), Action::Remember);
        assert_eq!(s.push(&a(0, &as_)), Action::Remember);
        assert_eq!(s.chunk_start_timestamp(), None);
        let tags = s.header_tags();
        let kinds: Vec<_> = tags.iter().map(|t| t.tag_type).collect();
        assert_eq!(kinds, [TagType::Script, TagType::Video, TagType::Audio]);
        assert_eq!(tags[1].body, &vs[..]);
        assert_eq!(tags[2].body, &as_[..]);
        // Audio first: it opens the chunk, whatever the media.
        assert_eq!(s.push(&a(100, &aframe())), start(SplitReason::StreamStart));
        assert_eq!(s.chunk_start_timestamp(), Some(100));
        assert_eq!(s.push(&v(110, &vframe(true, 66))), write(10));
        assert_eq!(s.chunks(), 1);
    }

    #[test]
    fn metadata_is_kept_without_set_data_frame_and_other_script_data_is_dropped() {
        use crate::flv::script::{Amf0Value, encode_metadata, encode_value};
        let props = vec![("width".to_string(), Amf0Value::Number(1280.0))];
        let file_form = encode_metadata(&props);
        let mut rtmp_form = Vec::new();
        encode_value(&Amf0Value::String("@setDataFrame".into()), &mut rtmp_form);
        rtmp_form.extend_from_slice(&file_form);
        let mut cue = Vec::new();
        encode_value(&Amf0Value::String("onCuePoint".into()), &mut cue);
        encode_value(&Amf0Value::Object(vec![]), &mut cue);
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        assert_eq!(s.push(&Message::Metadata(&rtmp_form)), Action::Remember);
        assert_eq!(s.header_tags()[0].body, &file_form[..]);
        assert_eq!(s.push(&Message::Metadata(&cue)), Action::Remember);
        assert_eq!(s.push(&Message::Metadata(b"\xff")), Action::Remember);
        assert_eq!(s.header_tags()[0].body, &file_form[..]);
        assert_eq!(s.dropped(), 2);
    }

    /// Pushes each step's message and checks the splitter's answer.
    fn play(s: &mut Splitter, steps: &[(Message<'_>, Action)]) {
        for (i, (msg, want)) in steps.iter().enumerate() {
            assert_eq!(s.push(msg), *want, "step {i}: {msg:?}");
        }
    }

    #[test]
    fn duration_splits_before_the_first_keyframe_past_the_target() {
        let (key, audio, seq) = (vframe(true, 0), aframe(), vseq(&[1]));
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        play(
            &mut s,
            &[
                (v(0, &seq), Action::Remember),
                (v(500, &key), start(SplitReason::StreamStart)),
                // A keyframe just short of the target, and an inter frame past it: no split.
                (v(1499, &key), write(999)),
                (v(1600, &vframe(false, 33)), write(1100)),
                // Audio never splits a stream that has video.
                (a(1700, &audio), write(1200)),
                // Command frames and sequence headers are not keyframes.
                (v(1800, &[0x57, 0]), write(1300)),
                (v(1800, &seq), Action::Remember),
                (v(1900, &key), start(SplitReason::Duration)),
            ],
        );
        assert_eq!(s.chunk_start_timestamp(), Some(1900));
        assert_eq!(s.push(&v(1933, &vframe(false, 0))), write(33));
    }

    /// Pushes `ms` of a real-time stream of 30 fps video with a keyframe every `gop_ms` (a
    /// multiple of 33), its first frame arriving at UTC `origin`; the UTC starts of its chunks.
    fn aligned_starts(origin: i64, gop_ms: u64, ms: u64, align_to_clock: bool) -> Vec<i64> {
        let mut s = Splitter::new(SplitConfig {
            align_to_clock,
            ..cfg(10_000, u64::MAX)
        })
        .with_utc_origin(origin);
        s.push(&v(0, &vseq(&[1])));
        let mut starts = Vec::new();
        // The publisher's clock starts at 4321: media time is not wall time.
        for i in 0..ms / 33 {
            let media = i * 33;
            let key = media % gop_ms < 33;
            let action = s.push_at(
                Duration::from_millis(media),
                &v(4321 + media, &vframe(key, 0)),
            );
            if let Action::StartChunk { .. } = action {
                starts.push(s.chunk_utc_ms().unwrap());
            }
        }
        starts
    }

    #[test]
    fn aligned_chunks_end_at_the_first_keyframe_at_or_after_each_multiple_of_the_duration() {
        // 12:00:03.400 UTC on some day; 10 s chunks, a keyframe every second.
        let day = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;
        let origin = day + 12 * 3_600_000 + 3_400;
        let starts = aligned_starts(origin, 990, 45_000, true);
        let offsets: Vec<i64> = starts.iter().map(|u| u - day - 12 * 3_600_000).collect();
        // The first chunk is shorter: it ends at the first keyframe at or after :10.
        assert_eq!(
            offsets,
            [3_400, 10_330, 20_230, 30_130, 40_030],
            "{offsets:?}"
        );

        // A stream that starts 37 s later cuts at the same clock times, within one GOP.
        let later = aligned_starts(origin + 37_000, 990, 45_000, true);
        let later: Vec<i64> = later.iter().map(|u| u - day - 12 * 3_600_000).collect();
        assert_eq!(later[0], 40_400);
        for (i, start) in later.iter().enumerate().skip(1) {
            let multiple = 40_000 + 10_000 * i as i64;
            assert!((multiple..multiple + 990).contains(start), "{later:?}");
        }

        // Without alignment, chunks are 10 s of media after the stream's first frame.
        let plain = aligned_starts(origin, 990, 45_000, false);
        let plain: Vec<i64> = plain.iter().map(|u| u - origin).collect();
        assert_eq!(plain, [0, 10_890, 21_780, 32_670, 43_560]);
    }

    #[test]
    fn a_chunks_utc_start_follows_media_time_unless_it_strays_from_the_arrival() {
        let mut s = Splitter::new(cfg(1_000, u64::MAX)).with_utc_origin(1_000_000);
        let key = vframe(true, 0);
        s.push_at(Duration::from_millis(50), &v(500, &key));
        assert_eq!(s.chunk_utc_ms(), Some(1_000_050));
        // Arrives 80 ms late (a batch): the start is reckoned in media time.
        s.push_at(Duration::from_millis(1_130), &v(1_500, &key));
        assert_eq!(s.chunk_utc_ms(), Some(1_001_050));
        // Pushed at full speed: media time runs 3 s ahead of the clock; the arrival is taken.
        s.push_at(Duration::from_millis(1_200), &v(5_500, &key));
        assert_eq!(s.chunk_utc_ms(), Some(1_001_200));
        // The publisher restarted its clock: media time goes back, the start never does.
        s.push_at(Duration::from_millis(1_300), &v(0, &key));
        s.push_at(Duration::from_millis(1_310), &v(10, &key));
        assert_eq!(s.chunk_utc_ms(), Some(1_001_300));
        assert_eq!(s.chunks(), 4);
    }

    #[test]
    fn aligned_chunks_keep_the_size_cap_and_a_start_on_a_multiple_runs_a_whole_period() {
        let mut s = Splitter::new(SplitConfig {
            align_to_clock: true,
            ..cfg(10_000, 2_000)
        })
        .with_utc_origin(20_000);
        // A real-time publisher: each frame arrives at its media time.
        let mut at = |ms: u64, body: &[u8]| {
            let action = s.push_at(Duration::from_millis(ms), &v(ms, body));
            (action, s.chunk_utc_ms())
        };
        let key = vframe(true, 0);
        let big = [key.clone(), vec![0; 2_000]].concat();
        let steps = [
            (0, &key, start(SplitReason::StreamStart), 20_000),
            // Started exactly on a multiple (:20): the chunk runs a whole period.
            (9_999, &key, write(9_999), 20_000),
            (10_000, &key, start(SplitReason::Duration), 30_000),
            // The size cap still splits at the next keyframe, between multiples...
            (12_000, &big, write(2_000), 30_000),
            (15_000, &key, start(SplitReason::Size), 35_000),
            // ...and that chunk ends at the first keyframe at or after :40.
            (19_999, &key, write(4_999), 35_000),
            (20_000, &key, start(SplitReason::Duration), 40_000),
        ];
        for (ms, body, action, utc) in steps {
            assert_eq!(at(ms, body), (action, Some(utc)), "at {ms} ms");
        }
        assert_eq!(until_next_multiple(-1, 10), 1);
        assert_eq!(until_next_multiple(5, 0), 0);
    }

    #[test]
    fn a_requested_cut_starts_a_chunk_at_the_next_keyframe_only() {
        let (key, inter, audio) = (vframe(true, 0), vframe(false, 0), aframe());
        let mut s = Splitter::new(cfg(10_000, u64::MAX));
        s.push(&v(0, &vseq(&[1])));
        s.push(&v(0, &key));
        s.cut_at_next_split_point();
        // Inter frames and audio are no split points; the next keyframe is, long before 10 s.
        // One request, one cut.
        play(
            &mut s,
            &[
                (v(33, &inter), write(33)),
                (a(40, &audio), write(40)),
                (v(66, &key), start(SplitReason::Resume)),
                (v(99, &key), write(33)),
            ],
        );
        assert_eq!(s.chunk_start_timestamp(), Some(66));
        assert_eq!(s.chunks(), 2);
    }

    /// Audio is a split point exactly while there is no recent video: in an audio-only
    /// stream, and once video has been silent for a chunk length; never beside live video.
    #[test]
    fn audio_splits_only_while_video_is_absent_or_silent_for_a_chunk_length() {
        let (key, inter, audio, seq) = (vframe(true, 0), vframe(false, 0), aframe(), vseq(&[1]));
        play(
            &mut Splitter::new(cfg(1000, u64::MAX)),
            &[
                // Audio only: audio splits.
                (a(0, &audio), start(SplitReason::StreamStart)),
                (a(999, &audio), write(999)),
                (a(1000, &audio), start(SplitReason::Duration)),
                // MP3 frames are frames too.
                (a(2000, &[0x2f, 0xff, 0xfb]), start(SplitReason::Duration)),
                // Video shows up (its first sequence header is new configuration: the next
                // frame splits), and from then on only video splits.
                (v(2010, &seq), Action::Remember),
                (v(2010, &key), start(SplitReason::VideoConfigChanged)),
                (v(3000, &inter), write(990)),
                (a(3100, &audio), write(1090)),
                (v(3100, &key), start(SplitReason::Duration)),
                (v(3600, &inter), write(500)),
                // Video stops at 3600; audio goes on. Within a chunk length of the last video
                // frame audio is no split point, after it audio is.
                (a(4500, &audio), write(1400)),
                (a(4600, &audio), start(SplitReason::Duration)),
                (a(5500, &audio), write(900)),
                (a(5600, &audio), start(SplitReason::Duration)),
                // Video comes back with a keyframe: it splits on video again.
                (v(5700, &key), write(100)),
                (a(6650, &audio), write(1050)),
                (v(6700, &key), start(SplitReason::Duration)),
            ],
        );
    }

    #[test]
    fn changed_sequence_headers_start_a_chunk_identical_ones_do_not() {
        let mut s = Splitter::new(cfg(60_000, u64::MAX));
        s.push(&v(0, &vseq(&[1, 2])));
        s.push(&a(0, &aseq(&[0x12, 0x10])));
        // Before media a different header simply replaces the old one.
        assert_eq!(s.push(&v(0, &vseq(&[1, 3]))), Action::Remember);
        assert_eq!(
            s.push(&v(0, &vframe(true, 0))),
            start(SplitReason::StreamStart)
        );
        assert_eq!(s.header_tags()[0].body, &vseq(&[1, 3])[..]);
        assert_eq!(s.push(&v(40, &vseq(&[1, 3]))), Action::Remember);
        assert_eq!(s.push(&a(40, &aseq(&[0x12, 0x10]))), Action::Remember);
        assert_eq!(s.push(&v(66, &vframe(false, 0))), write(66));
        // Different video config: the next frame, even audio, starts a chunk with it.
        assert_eq!(s.push(&v(100, &vseq(&[1, 4]))), Action::Remember);
        assert_eq!(
            s.push(&a(100, &aframe())),
            start(SplitReason::VideoConfigChanged)
        );
        assert_eq!(s.header_tags()[0].body, &vseq(&[1, 4])[..]);
        assert_eq!(s.push(&v(133, &vframe(true, 0))), write(33));
        // Audio config change.
        assert_eq!(s.push(&a(150, &aseq(&[0x11, 0x90]))), Action::Remember);
        assert_eq!(
            s.push(&v(166, &vframe(false, 0))),
            start(SplitReason::AudioConfigChanged)
        );
        assert_eq!(s.header_tags()[1].body, &aseq(&[0x11, 0x90])[..]);
        // Same config bytes but another codec is a change too.
        let mut hevc = vec![0x80 | 0x10, b'h', b'v', b'c', b'1'];
        hevc.extend_from_slice(&[1, 4]);
        assert_eq!(s.push(&v(200, &hevc)), Action::Remember);
        assert_eq!(
            s.push(&v(233, &vframe(true, 0))),
            start(SplitReason::VideoConfigChanged)
        );
    }

    #[test]
    fn size_splits_at_the_next_keyframe_never_mid_gop() {
        let mut s = Splitter::new(cfg(u64::MAX, 200));
        assert_eq!(
            s.push(&v(0, &vframe(true, 0))),
            start(SplitReason::StreamStart)
        );
        let mut t = 0;
        while s.chunk_bytes() < 200 {
            t += 33;
            assert_eq!(s.push(&v(t, &vframe(false, 0))), write(t as u32));
        }
        t += 33;
        assert_eq!(s.push(&v(t, &vframe(false, 0))), write(t as u32));
        assert_eq!(s.push(&a(t, &aframe())), write(t as u32));
        assert_eq!(
            s.push(&v(t + 33, &vframe(true, 0))),
            start(SplitReason::Size)
        );
        assert_eq!(s.chunk_bytes(), 13 + 11 + 11 + 4);
    }

    #[test]
    fn late_audio_is_clamped_to_zero_and_counted() {
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        s.push(&v(0, &vframe(true, 0)));
        assert_eq!(
            s.push(&v(1000, &vframe(true, 0))),
            start(SplitReason::Duration)
        );
        assert_eq!(s.push(&a(990, &aframe())), write(0));
        assert_eq!(s.push(&a(1013, &aframe())), write(13));
        assert_eq!(s.clamped(), 1);
    }

    #[test]
    fn audio_slightly_ahead_of_the_first_keyframe_is_not_a_discontinuity() {
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        assert_eq!(s.push(&a(20, &aframe())), start(SplitReason::StreamStart));
        assert_eq!(s.push(&v(0, &vframe(true, 0))), write(0));
        assert_eq!(s.clamped(), 1);
        assert_eq!(s.chunks(), 1);
    }

    #[test]
    fn timestamps_jumping_back_start_a_new_chunk_at_the_next_keyframe() {
        let mut s = Splitter::new(cfg(10_000, u64::MAX));
        s.push(&v(50_000, &vframe(true, 0)));
        assert_eq!(s.push(&v(50_033, &vframe(false, 0))), write(33));
        // The publisher restarts its clock: inter frames clamp, the keyframe rebases.
        assert_eq!(s.push(&v(10, &vframe(false, 0))), write(0));
        assert_eq!(
            s.push(&v(43, &vframe(true, 0))),
            start(SplitReason::Discontinuity)
        );
        assert_eq!(s.push(&v(76, &vframe(false, 0))), write(33));
        assert_eq!(s.clamped(), 1);
        // Absurd values never panic; relative times saturate.
        assert_eq!(s.push(&v(u64::MAX, &vframe(false, 0))), write(u32::MAX));
        assert_eq!(s.push(&v(0, &vframe(false, 0))), write(0));
    }

    #[test]
    fn non_frames_are_dropped_before_the_first_chunk_and_written_after() {
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        for body in [&[][..], &[0x57, 0], &[0x17, 2, 0, 0, 0], &[0x17], &[0xaf]] {
            assert_eq!(s.push(&v(0, body)), Action::Remember, "{body:?}");
        }
        assert_eq!(s.dropped(), 5);
        assert!(s.header_tags().is_empty());
        s.push(&v(0, &vframe(true, 0)));
        assert_eq!(s.push(&v(5000, &[0x17, 2, 0, 0, 0])), write(5000));
        assert_eq!(s.push(&a(5000, &[0xaf])), write(5000));
        assert_eq!(s.push(&v(5000, &[])), write(5000));
        assert_eq!(s.chunks(), 1);
    }

    /// Every frame but the first is an inter frame: the soft caps never find a split point,
    /// the hard caps (twice them) split at a non-key frame.
    #[test]
    fn hard_caps_split_without_a_keyframe() {
        // (soft max_bytes, soft max_frames, frames in the first chunk)
        let cases: [(u64, u64, u64); 2] = [
            // 2 * 1000 bytes: header 13 + 11-byte bodies as 26-byte tags.
            (1000, u64::MAX, (2000u64 - 13).div_ceil(26)),
            (u64::MAX, 50, 100),
        ];
        for (max_bytes, max_frames, first_len) in cases {
            let mut s = Splitter::new(SplitConfig {
                max_frames,
                ..cfg(u64::MAX, max_bytes)
            });
            let mut starts = Vec::new();
            for i in 0..(first_len * 3) {
                let action = s.push(&v(i * 33, &vframe(i == 0, 0)));
                if let Action::StartChunk { reason, .. } = action {
                    starts.push((i, reason));
                }
            }
            assert_eq!(
                starts,
                [
                    (0, SplitReason::StreamStart),
                    (first_len, SplitReason::HardLimit),
                    (2 * first_len, SplitReason::HardLimit)
                ],
                "max_bytes {max_bytes}, max_frames {max_frames}"
            );
        }
    }

    #[test]
    fn the_frame_cap_splits_at_the_next_keyframe() {
        let mut s = Splitter::new(SplitConfig {
            max_frames: 10,
            ..cfg(u64::MAX, u64::MAX)
        });
        assert_eq!(
            s.push(&v(0, &vframe(true, 0))),
            start(SplitReason::StreamStart)
        );
        for i in 1..15 {
            assert_eq!(s.push(&v(i * 33, &vframe(false, 0))), write(i as u32 * 33));
        }
        assert_eq!(s.chunk_frames(), 15);
        assert_eq!(
            s.push(&v(15 * 33, &vframe(true, 0))),
            start(SplitReason::Frames)
        );
    }

    /// A publisher alternating two video configurations before every frame, 100 frames a
    /// second of wall time: pacing lets the burst through, then one chunk per interval; the
    /// headers in between are written into the open chunk.
    #[test]
    fn config_change_floods_are_paced_and_written_inline() {
        let mut s = Splitter::new(SplitConfig {
            start_burst: 3,
            start_interval_ms: 2000,
            ..cfg(u64::MAX, u64::MAX)
        });
        let configs = [vseq(&[1, 0x64, 0, 0x1f]), vseq(&[1, 0x64, 0, 0x28])];
        let mut starts = Vec::new();
        let mut inline = 0;
        for i in 0..1000u64 {
            let now = Duration::from_millis(i * 10);
            match s.push_at(now, &v(i * 10, &configs[(i % 2) as usize])) {
                Action::Write { .. } => inline += 1,
                Action::Remember => {}
                other => panic!("a header got {other:?}"),
            }
            if let Action::StartChunk { reason, .. } = s.push_at(now, &v(i * 10, &vframe(false, 0)))
            {
                starts.push((i, reason));
            }
        }
        let times: Vec<u64> = starts.iter().map(|(i, _)| *i).collect();
        // Stream start, the burst of 3 at once, then one per 200 frames (2 s at 10 ms).
        assert_eq!(times, [0, 1, 2, 3, 201, 401, 601, 801]);
        assert!(
            starts[1..]
                .iter()
                .all(|(_, r)| *r == SplitReason::VideoConfigChanged)
        );
        assert_eq!(inline, 1000 - 1 - 7);
    }

    /// A timestamp that leaps forward by a chunk length on every keyframe: duration splits
    /// are paced like config changes.
    #[test]
    fn timestamp_leaps_are_paced() {
        let mut s = Splitter::new(SplitConfig {
            start_burst: 2,
            start_interval_ms: 1000,
            ..cfg(1000, u64::MAX)
        });
        let mut starts = 0;
        for i in 0..100u64 {
            let now = Duration::from_millis(i * 100);
            if matches!(
                s.push_at(now, &v(i * 1000, &vframe(true, 0))),
                Action::StartChunk { .. }
            ) {
                starts += 1;
            }
        }
        // The first chunk, the burst of 2, then one per second over 9.9 s.
        assert_eq!(starts, 1 + 2 + 9);
    }

    #[test]
    fn oversized_headers_are_dropped_and_reported() {
        use crate::flv::script::{Amf0Value, encode_metadata};
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        let small = encode_metadata(&[("a".to_string(), Amf0Value::Number(1.0))]);
        let big = encode_metadata(&[(
            "a".to_string(),
            Amf0Value::String("x".repeat(MAX_METADATA_BYTES)),
        )]);
        s.push(&Message::Metadata(&small));
        assert_eq!(s.push(&Message::Metadata(&big)), Action::Remember);
        assert_eq!(
            s.take_refused(),
            Some(Refused::Metadata { bytes: big.len() })
        );
        assert_eq!(s.header_tags()[0].body, &small[..]);
        let huge = vseq(&vec![0; MAX_SEQUENCE_HEADER_BYTES]);
        assert_eq!(s.push(&v(0, &huge)), Action::Remember);
        assert_eq!(
            s.take_refused(),
            Some(Refused::SequenceHeader { bytes: huge.len() })
        );
        assert_eq!(s.take_refused(), None);
        assert_eq!(s.header_tags().len(), 1);
        assert_eq!(s.dropped(), 2);
        let fits = vseq(&vec![0; MAX_SEQUENCE_HEADER_BYTES - 5]);
        s.push(&v(0, &fits));
        assert_eq!(s.take_refused(), None);
        assert_eq!(s.header_tags().len(), 2);
    }

    /// Small deterministic generator for the long synthetic streams.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[derive(Debug, Clone)]
    struct Pushed {
        ts: u64,
        body: Vec<u8>,
        video: bool,
        keyframe: bool,
        /// A sequence header: the splitter remembers it rather than writes it.
        header: bool,
    }

    impl Pushed {
        fn header(ts: u64, body: Vec<u8>, video: bool) -> Pushed {
            Pushed {
                ts,
                body,
                video,
                keyframe: false,
                header: true,
            }
        }

        fn frame(ts: u64, body: Vec<u8>, video: bool, keyframe: bool) -> Pushed {
            Pushed {
                ts,
                body,
                video,
                keyframe,
                header: false,
            }
        }
    }

    /// A publisher: 30 fps video with GOPs of varying length, B-frame-like composition
    /// offsets, AAC audio every ~23 ms interleaved up to 60 ms ahead of or behind video,
    /// repeated identical sequence headers, rare config changes and command frames.
    /// Each entry: (is a sequence header, message).
    fn build_stream(seed: u64, seconds: u64) -> Vec<Pushed> {
        let mut rng = Lcg(seed);
        let mut out = Vec::new();
        let vcfg = |n: u8| vseq(&[1, 0x64, 0, 0x1f, n]);
        out.push(Pushed::header(0, vcfg(0), true));
        out.push(Pushed::header(0, aseq(&[0x12, 0x10]), false));
        let mut gop_left = 0;
        let mut vts = 1_000u64;
        let mut ats = 1_000u64 + rng.below(60);
        let end = vts + seconds * 1000;
        let mut cfg_n = 0;
        while vts < end {
            // Emit audio that is due, from 60 ms ahead of video to 60 ms behind it.
            while ats + rng.below(120) < vts + 60 {
                let mut body = aframe();
                body.extend((0..rng.below(300)).map(|i| i as u8));
                out.push(Pushed::frame(ats, body, false, false));
                ats += 21 + rng.below(4);
            }
            if rng.below(400) == 0 {
                out.push(Pushed::header(vts, vcfg(cfg_n), true));
            }
            if rng.below(3000) == 0 {
                cfg_n = cfg_n.wrapping_add(1);
                out.push(Pushed::header(vts, vcfg(cfg_n), true));
                gop_left = 0;
            }
            if vts > 2_000 && rng.below(500) == 0 {
                out.push(Pushed::frame(vts, vec![0x57, 1], true, false));
            }
            let key = gop_left == 0;
            if key {
                gop_left = 15 + rng.below(120);
            }
            gop_left -= 1;
            let ct = [66, 100, 33, 0][rng.below(4) as usize];
            let mut body = vframe(key, ct);
            body.extend((0..rng.below(if key { 3000 } else { 800 })).map(|i| i as u8));
            out.push(Pushed::frame(vts, body, true, key));
            vts += 33 + rng.below(2);
        }
        out
    }

    #[derive(Debug)]
    struct Chunk {
        reason: SplitReason,
        start_ts: u64,
        file: Vec<u8>,
        /// (stream ts, chunk ts, index into the stream, bytes before this message)
        msgs: Vec<(u64, u32, usize, u64)>,
        headers: usize,
    }

    fn run(stream: &[Pushed], config: SplitConfig) -> (Splitter, Vec<Chunk>, u64) {
        let mut s = Splitter::new(config);
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut writer: Option<FlvWriter<Vec<u8>>> = None;
        let mut media = 0u64;
        for (i, p) in stream.iter().enumerate() {
            let msg = if p.video {
                v(p.ts, &p.body)
            } else {
                a(p.ts, &p.body)
            };
            let before = s.chunk_bytes();
            let ty = if p.video {
                TagType::Video
            } else {
                TagType::Audio
            };
            match s.push(&msg) {
                Action::Remember => continue,
                Action::Write { timestamp } => {
                    let w = writer.as_mut().expect("write without a chunk");
                    w.write_tag(ty, timestamp, &p.body).unwrap();
                    chunks
                        .last_mut()
                        .unwrap()
                        .msgs
                        .push((p.ts, timestamp, i, before));
                }
                Action::StartChunk { timestamp, reason } => {
                    if let (Some(w), Some(c)) = (writer.take(), chunks.last_mut()) {
                        c.file = w.into_inner();
                    }
                    let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
                    let headers = s.header_tags();
                    for h in &headers {
                        w.write_tag(h.tag_type, 0, h.body).unwrap();
                    }
                    w.write_tag(ty, timestamp, &p.body).unwrap();
                    chunks.push(Chunk {
                        reason,
                        start_ts: s.chunk_start_timestamp().unwrap(),
                        file: Vec::new(),
                        msgs: vec![(p.ts, timestamp, i, before)],
                        headers: headers.len(),
                    });
                    writer = Some(w);
                }
            }
            media += 1;
            assert_eq!(
                s.chunk_bytes(),
                writer.as_ref().unwrap().bytes_written(),
                "msg {i}"
            );
        }
        if let (Some(w), Some(c)) = (writer.take(), chunks.last_mut()) {
            c.file = w.into_inner();
        }
        (s, chunks, media)
    }

    fn check_stream(seed: u64, config: SplitConfig) -> Vec<Chunk> {
        let stream = build_stream(seed, 20 * 60);
        let frames = stream.iter().filter(|p| !p.header).count() as u64;
        let (s, chunks, written) = run(&stream, config);
        // Every media message lands in exactly one chunk, in arrival order.
        assert_eq!(written, frames);
        let order: Vec<usize> = chunks
            .iter()
            .flat_map(|c| c.msgs.iter().map(|m| m.2))
            .collect();
        let expected: Vec<usize> = stream
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.header)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(order, expected);
        let mut clamps = 0;
        for (n, c) in chunks.iter().enumerate() {
            assert_eq!(c.msgs[0].1, 0, "chunk {n} starts at 0");
            assert_eq!(c.start_ts, c.msgs[0].0);
            for &(ts, rel, _, _) in &c.msgs {
                assert_eq!(u64::from(rel), ts.saturating_sub(c.start_ts));
                clamps += u64::from(ts < c.start_ts);
            }
            let first = &stream[c.msgs[0].2];
            match c.reason {
                SplitReason::StreamStart => assert_eq!(n, 0),
                SplitReason::Duration | SplitReason::Size => {
                    assert!(
                        first.video && first.keyframe,
                        "chunk {n} opens on a keyframe"
                    );
                    let prev = &chunks[n - 1];
                    if c.reason == SplitReason::Duration {
                        assert!(first.ts >= prev.start_ts.saturating_add(config.target_ms));
                    } else {
                        assert!(c.msgs[0].3 >= config.max_bytes);
                    }
                }
                SplitReason::VideoConfigChanged => {}
                r => panic!("unexpected {r:?}"),
            }
            // No keyframe inside the chunk met a split condition (the split is at the first).
            for &(ts, _, i, before) in &c.msgs[1..] {
                let p = &stream[i];
                if p.video && p.keyframe {
                    assert!(
                        ts < c.start_ts.saturating_add(config.target_ms)
                            && before < config.max_bytes,
                        "chunk {n} missed a split at stream message {i}"
                    );
                }
            }
            // The bytes are a valid FLV: headers at 0, then exactly the messages.
            let mut r = FlvReader::new(Cursor::new(&c.file)).unwrap();
            let mut tags = 0;
            while let Some(info) = r.next_tag().unwrap() {
                if tags < c.headers {
                    assert_eq!(info.header.timestamp, 0);
                } else {
                    let (_, rel, i, _) = c.msgs[tags - c.headers];
                    assert_eq!(info.header.timestamp, rel);
                    assert_eq!(r.body(), &stream[i].body[..]);
                }
                tags += 1;
            }
            assert_eq!(tags, c.headers + c.msgs.len());
            assert_eq!(r.torn_tail(), None);
        }
        assert_eq!(s.clamped(), clamps);
        assert!(clamps > 0, "the synthetic interleaving produces late audio");
        chunks
    }

    #[test]
    fn long_streams_split_by_duration() {
        for seed in 1..=3 {
            let chunks = check_stream(seed, cfg(10_000, u64::MAX));
            assert!(chunks.len() > 20 * 6 / 2, "{}", chunks.len());
            assert!(chunks.iter().any(|c| c.reason == SplitReason::Duration));
        }
    }

    #[test]
    fn long_streams_split_by_size() {
        let chunks = check_stream(7, cfg(u64::MAX, 300_000));
        assert!(
            chunks
                .iter()
                .filter(|c| c.reason == SplitReason::Size)
                .count()
                > 10
        );
        let chunks = check_stream(8, cfg(30_000, 600_000));
        for r in [SplitReason::Size, SplitReason::Duration] {
            assert!(chunks.iter().any(|c| c.reason == r), "{r:?}");
        }
    }

    /// A tool's stdout followed by its stderr (where ffprobe reports decode errors).
    fn tool(cmd: &mut std::process::Command) -> String {
        let out = crate::flv::tests::run_tool(cmd);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// A real H.264 (B-frames) + AAC FLV from ffmpeg, split into 1 s chunks the way ingest
    /// does it: every chunk is a file ffmpeg decodes without complaint, starting on a keyframe.
    #[test]
    fn splits_ffmpeg_stream_into_decodable_chunks() {
        use crate::flv::script::{self, Amf0Value};
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.flv");
        crate::flv::tests::ffmpeg_h264_aac_flv(&src, "4");
        let bytes = std::fs::read(&src).unwrap();
        let mut r = FlvReader::new(Cursor::new(&bytes)).unwrap();
        let mut s = Splitter::new(cfg(1000, u64::MAX));
        let mut files: Vec<FlvWriter<Vec<u8>>> = Vec::new();
        while let Some(info) = r.next_tag().unwrap() {
            let ts = u64::from(info.header.timestamp);
            let body = r.body();
            let msg = match info.header.tag_type {
                TagType::Script => Message::Metadata(body),
                TagType::Audio => a(ts, body),
                TagType::Video => v(ts, body),
            };
            match s.push(&msg) {
                Action::Remember => {}
                Action::Write { timestamp } => files
                    .last_mut()
                    .unwrap()
                    .write_tag(info.header.tag_type, timestamp, body)
                    .unwrap(),
                Action::StartChunk { timestamp, .. } => {
                    let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
                    for h in s.header_tags() {
                        let body = if h.tag_type == TagType::Script {
                            let mut props = script::decode_metadata(h.body).unwrap();
                            script::set(
                                &mut props,
                                "rtmpRecorderSequence",
                                Amf0Value::Number((files.len() + 1) as f64),
                            );
                            script::encode_metadata(&props)
                        } else {
                            h.body.to_vec()
                        };
                        w.write_tag(h.tag_type, 0, &body).unwrap();
                    }
                    w.write_tag(info.header.tag_type, timestamp, body).unwrap();
                    files.push(w);
                }
            }
        }
        assert_eq!(
            files.len(),
            4,
            "keyframes every 30 frames at 30 fps, 1 s target"
        );
        for (n, w) in files.into_iter().enumerate() {
            let path = dir.path().join(format!("chunk{n}.flv"));
            std::fs::write(&path, w.into_inner()).unwrap();
            let probe = crate::flv::tests::video_packets(&path);
            let lines: Vec<&str> = probe.lines().collect();
            assert_eq!(lines.len(), 30, "chunk {n}: {probe}");
            assert!(
                lines[0].ends_with(",K_"),
                "chunk {n} opens on a keyframe: {}",
                lines[0]
            );
            let first_dts: i64 = lines[0].split(',').nth(1).unwrap().parse().unwrap();
            assert_eq!(first_dts, 0, "chunk {n} starts at 0");
            // Full decode of both streams (no muxer involved): a missing sequence header or a
            // broken reference shows up as an error line or a short frame count.
            let log = tool(
                Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-count_frames",
                        "-show_entries",
                        "stream=codec_type,nb_read_frames",
                        "-of",
                        "csv=p=0",
                    ])
                    .arg(&path),
            );
            let mut lines = log.lines();
            assert_eq!(lines.next(), Some("video,30"), "chunk {n}: {log}");
            let audio: u32 = lines
                .next()
                .and_then(|l| l.strip_prefix("audio,"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            assert!(
                (40..=50).contains(&audio),
                "chunk {n}: ~43 AAC frames per second: {log}"
            );
            assert_eq!(lines.next(), None, "chunk {n} decodes cleanly: {log}");
            let meta = tool(
                Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-show_entries",
                        "format_tags=rtmpRecorderSequence",
                        "-of",
                        "csv=p=0",
                    ])
                    .arg(&path),
            );
            assert_eq!(meta.trim(), (n + 1).to_string());
        }
    }
}
