//! Audio tag headers: the legacy SoundFormat byte (AAC with its AACPacketType, MP3, others
//! reported as `Other`) and the Enhanced RTMP `ExAudioTagHeader` for the `mp4a`/`.mp3` FourCCs.

use super::modex::skip_mod_ex;
use super::tag::FlvError;

const FORMAT_MP3: u8 = 2;
const FORMAT_EX_HEADER: u8 = 9;
const FORMAT_AAC: u8 = 10;

// Enhanced RTMP AudioPacketType values.
const APT_SEQUENCE_START: u8 = 0;
const APT_CODED_FRAMES: u8 = 1;
const APT_MULTITRACK: u8 = 5;

/// An audio codec. `Other` holds the legacy SoundFormat (9 for enhanced FourCCs we do not map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Other(u8),
}

impl AudioCodec {
    /// The MP4 sample entry name for the codecs we carry (`mp4a`, `.mp3`), else a stand-in.
    pub fn name(&self) -> String {
        match self {
            AudioCodec::Aac => "mp4a".into(),
            AudioCodec::Mp3 => ".mp3".into(),
            AudioCodec::Other(f) => format!("flv-sound-format-{f}"),
        }
    }
}

/// A parsed audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTag<'a> {
    pub codec: AudioCodec,
    /// AAC AudioSpecificConfig (AACPacketType 0, or enhanced SequenceStart).
    pub sequence_header: bool,
    /// The 2-bit SoundRate index: 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz (AAC always
    /// says 3; the real rate is in the AudioSpecificConfig). 3 for enhanced headers.
    pub sound_rate: u8,
    /// SoundSize bit: 16-bit samples.
    pub sixteen_bit: bool,
    pub stereo: bool,
    /// Enhanced RTMP header.
    pub enhanced: bool,
    /// Not a coded frame nor a sequence header (multichannel config, multitrack, unknown).
    pub unsupported: bool,
    /// The codec payload: AudioSpecificConfig or raw AAC frame, MP3 frame, ...
    pub payload: &'a [u8],
}

impl AudioTag<'_> {
    /// Sample rate the SoundRate bits name, in Hz.
    pub fn sound_rate_hz(&self) -> u32 {
        [5512, 11025, 22050, 44100][usize::from(self.sound_rate & 3)]
    }
}

fn short(len: usize, detail: &'static str) -> FlvError {
    FlvError::ShortBody {
        what: "audio",
        len,
        detail,
    }
}

/// Parses the audio tag header at the start of `body`.
pub fn parse_audio(body: &[u8]) -> Result<AudioTag<'_>, FlvError> {
    let first = *body.first().ok_or_else(|| short(0, "no header byte"))?;
    let format = first >> 4;
    if format == FORMAT_EX_HEADER {
        return parse_enhanced(body);
    }
    let mut tag = AudioTag {
        codec: match format {
            FORMAT_AAC => AudioCodec::Aac,
            FORMAT_MP3 => AudioCodec::Mp3,
            f => AudioCodec::Other(f),
        },
        sequence_header: false,
        sound_rate: (first >> 2) & 3,
        sixteen_bit: first & 2 != 0,
        stereo: first & 1 != 0,
        enhanced: false,
        unsupported: false,
        payload: &body[1..],
    };
    if tag.codec == AudioCodec::Aac {
        let (&packet_type, rest) = body[1..]
            .split_first()
            .ok_or_else(|| short(body.len(), "AACPacketType missing"))?;
        tag.sequence_header = packet_type == 0;
        tag.unsupported = packet_type > 1;
        tag.payload = rest;
    }
    Ok(tag)
}

fn parse_enhanced(body: &[u8]) -> Result<AudioTag<'_>, FlvError> {
    let (packet_type, rest) = skip_mod_ex("audio", body)?;
    let mut tag = AudioTag {
        codec: AudioCodec::Other(FORMAT_EX_HEADER),
        sequence_header: false,
        sound_rate: 3,
        sixteen_bit: true,
        stereo: true,
        enhanced: true,
        unsupported: true,
        payload: rest,
    };
    if packet_type == APT_MULTITRACK {
        return Ok(tag);
    }
    if rest.len() < 4 {
        return Err(short(body.len(), "FourCC missing"));
    }
    tag.codec = match &rest[..4] {
        b"mp4a" => AudioCodec::Aac,
        b".mp3" => AudioCodec::Mp3,
        _ => AudioCodec::Other(FORMAT_EX_HEADER),
    };
    tag.payload = &rest[4..];
    tag.sequence_header = packet_type == APT_SEQUENCE_START;
    tag.unsupported = !matches!(packet_type, APT_SEQUENCE_START | APT_CODED_FRAMES);
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_aac_header_and_frame() {
        let t = parse_audio(&[0xaf, 0, 0x12, 0x10]).unwrap();
        assert_eq!(t.codec, AudioCodec::Aac);
        assert!(t.sequence_header && t.stereo && t.sixteen_bit && !t.enhanced);
        assert_eq!(t.sound_rate_hz(), 44100);
        assert_eq!(t.payload, &[0x12, 0x10]);
        let t = parse_audio(&[0xae, 1, 9]).unwrap();
        assert!(!t.sequence_header && !t.stereo);
        assert_eq!(t.payload, &[9]);
    }

    #[test]
    fn legacy_mp3_and_others() {
        let t = parse_audio(&[0x2a, 0xff, 0xfb]).unwrap();
        assert_eq!(t.codec, AudioCodec::Mp3);
        assert_eq!(t.sound_rate, 2);
        assert!(!t.sequence_header);
        assert_eq!(t.payload, &[0xff, 0xfb]);
        assert_eq!(parse_audio(&[0x72, 1]).unwrap().codec, AudioCodec::Other(7));
    }

    #[test]
    fn enhanced_mp4a_and_opus() {
        let mut b = vec![0x90 | APT_SEQUENCE_START];
        b.extend_from_slice(b"mp4a\x12\x10");
        let t = parse_audio(&b).unwrap();
        assert_eq!(t.codec, AudioCodec::Aac);
        assert!(t.sequence_header && t.enhanced && !t.unsupported);
        assert_eq!(t.payload, &[0x12, 0x10]);
        let mut b = vec![0x90 | APT_CODED_FRAMES];
        b.extend_from_slice(b"Opus\x01");
        let t = parse_audio(&b).unwrap();
        assert_eq!(t.codec, AudioCodec::Other(9));
        assert!(!t.sequence_header);
    }

    #[test]
    fn short_bodies_are_errors() {
        assert!(parse_audio(&[]).is_err());
        assert!(parse_audio(&[0xaf]).is_err());
        assert!(parse_audio(&[0x90, b'm']).is_err());
        assert!(parse_audio(&[0x97, 3, 0]).is_err());
    }
}
