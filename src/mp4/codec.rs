//! Sample entries: one codec configuration of a track (the FLV's sequence header, or for MP3 the
//! first frame header), turned into the `stsd` entry an MP4 player needs and an RFC 6381 codec
//! string for the manifest.

use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{Atom, Audio, Av01, Av1c, Avc1, Avcc, Codec, Esds, Hvc1, Hvcc, Mp4a, Visual};
use thiserror::Error;

use super::params::{self, ParamError};

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("{what}: {source}")]
    Record {
        what: &'static str,
        source: mp4_atom::Error,
    },
    #[error("{what}: no {nal} in the configuration record")]
    Missing {
        what: &'static str,
        nal: &'static str,
    },
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("{0} is not a codec this recorder writes")]
    Unsupported(String),
}

impl CodecError {
    fn no_sps(what: &'static str) -> CodecError {
        CodecError::Missing { what, nal: "SPS" }
    }
}

/// Decodes the body of a decoder configuration record (`what` names it in the error).
fn decode_record<T: Atom>(what: &'static str, record: &[u8]) -> Result<T, CodecError> {
    T::decode_body(&mut &record[..]).map_err(|source| CodecError::Record { what, source })
}

/// A track's codec configuration: everything needed to write one `stsd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// Video: the decoder configuration and the picture size it declares.
    Video {
        config: VideoConfig,
        width: u16,
        height: u16,
    },
    /// AAC with its AudioSpecificConfig.
    Aac {
        config: Vec<u8>,
        object_type: u8,
        sample_rate: u32,
        channels: u16,
    },
    /// MPEG audio (MP3), described by its first frame header.
    Mp3 {
        sample_rate: u32,
        channels: u16,
        samples_per_frame: u32,
    },
}

/// A video codec's decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoConfig {
    /// H.264: AVCDecoderConfigurationRecord (all SPS/PPS).
    Avc(Avcc),
    /// HEVC: HEVCDecoderConfigurationRecord (VPS/SPS/PPS/SEI arrays).
    Hevc(Hvcc),
    /// AV1: AV1CodecConfigurationRecord.
    Av1(Av1c),
}

impl SampleEntry {
    /// From an AVCDecoderConfigurationRecord (the body of an FLV AVC sequence header).
    pub fn avc(record: &[u8]) -> Result<SampleEntry, CodecError> {
        const WHAT: &str = "AVC decoder configuration record";
        let config: Avcc = decode_record(WHAT, record)?;
        let sps = config.sequence_parameter_sets.first();
        let size = params::h264_dimensions(sps.ok_or(CodecError::no_sps(WHAT))?)?;
        Ok(SampleEntry::video(VideoConfig::Avc(config), size))
    }

    /// From an HEVCDecoderConfigurationRecord.
    pub fn hevc(record: &[u8]) -> Result<SampleEntry, CodecError> {
        const WHAT: &str = "HEVC decoder configuration record";
        let config: Hvcc = decode_record(WHAT, record)?;
        let sps = (config.arrays.iter())
            .filter(|a| a.nal_unit_type == 33)
            .flat_map(|a| a.nalus.first())
            .next();
        let size = params::hevc_dimensions(sps.ok_or(CodecError::no_sps(WHAT))?)?;
        Ok(SampleEntry::video(VideoConfig::Hevc(config), size))
    }

    /// From an AV1CodecConfigurationRecord. The picture size comes from its sequence header
    /// OBU; `width`/`height` (the stream's metadata) are the fallback when it carries none.
    pub fn av1(record: &[u8], width: u16, height: u16) -> Result<SampleEntry, CodecError> {
        let config: Av1c = decode_record("AV1 codec configuration record", record)?;
        let size = params::av1_dimensions(&config.config_obus)
            .unwrap_or((u32::from(width), u32::from(height)));
        Ok(SampleEntry::video(VideoConfig::Av1(config), size))
    }

    fn video(config: VideoConfig, (width, height): (u32, u32)) -> SampleEntry {
        SampleEntry::Video {
            config,
            width: width as u16,
            height: height as u16,
        }
    }

    /// From an AAC AudioSpecificConfig.
    pub fn aac(asc: &[u8]) -> Result<SampleEntry, CodecError> {
        let c = params::aac_config(asc)?;
        Ok(SampleEntry::Aac {
            config: asc.to_vec(),
            object_type: c.object_type,
            sample_rate: c.sample_rate,
            channels: c.channels,
        })
    }

    /// From the first bytes of an MP3 frame.
    pub fn mp3(frame: &[u8]) -> Result<SampleEntry, CodecError> {
        let h = params::mp3_header(frame)?;
        Ok(SampleEntry::Mp3 {
            sample_rate: h.sample_rate,
            channels: h.channels,
            samples_per_frame: h.samples_per_frame,
        })
    }

    pub fn is_video(&self) -> bool {
        matches!(self, SampleEntry::Video { .. })
    }

    /// The media timescale this entry wants: 90 kHz for video (every millisecond is a whole
    /// number of ticks), the sample rate for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            SampleEntry::Aac { sample_rate, .. } | SampleEntry::Mp3 { sample_rate, .. } => {
                *sample_rate
            }
            _ => 90_000,
        }
    }

    /// Duration of one audio frame in timescale ticks (used for the last sample).
    pub fn frame_ticks(&self) -> Option<u32> {
        match self {
            SampleEntry::Aac { .. } => Some(1024),
            SampleEntry::Mp3 {
                samples_per_frame, ..
            } => Some(*samples_per_frame),
            _ => None,
        }
    }

    pub fn dimensions(&self) -> Option<(u16, u16)> {
        match self {
            SampleEntry::Video { width, height, .. } => Some((*width, *height)),
            _ => None,
        }
    }

    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            SampleEntry::Aac { sample_rate, .. } | SampleEntry::Mp3 { sample_rate, .. } => {
                Some(*sample_rate)
            }
            _ => None,
        }
    }

    pub fn channels(&self) -> Option<u16> {
        match self {
            SampleEntry::Aac { channels, .. } | SampleEntry::Mp3 { channels, .. } => {
                Some(*channels)
            }
            _ => None,
        }
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        match self {
            SampleEntry::Video {
                config: VideoConfig::Avc(config),
                ..
            } => format!(
                "avc1.{:02x}{:02x}{:02x}",
                config.avc_profile_indication,
                config.profile_compatibility,
                config.avc_level_indication
            ),
            SampleEntry::Video {
                config: VideoConfig::Hevc(config),
                ..
            } => hevc_codec_string(config),
            SampleEntry::Video {
                config: VideoConfig::Av1(config),
                ..
            } => format!(
                "av01.{}.{:02}{}.{:02}",
                config.seq_profile,
                config.seq_level_idx_0,
                if config.seq_tier_0 { 'H' } else { 'M' },
                match (config.high_bitdepth, config.twelve_bit) {
                    (true, true) => 12,
                    (true, false) => 10,
                    _ => 8,
                }
            ),
            SampleEntry::Aac { object_type, .. } => format!("mp4a.40.{object_type}"),
            SampleEntry::Mp3 { .. } => "mp4a.6b".to_string(),
        }
    }

    /// The `stsd` entry.
    pub fn to_codec(&self, track_id: u32) -> Codec {
        let visual = |width: u16, height: u16| Visual {
            data_reference_index: 1,
            width,
            height,
            ..Visual::default()
        };
        let audio = |sample_rate: u32, channels: u16| Audio {
            data_reference_index: 1,
            channel_count: channels,
            sample_size: 16,
            // The 16.16 field cannot hold rates above 65535; the timescale carries the truth.
            sample_rate: (sample_rate.min(65535) as u16).into(),
        };
        let esds = |object_type_indication: u8, specific: Option<Vec<u8>>| Esds {
            es_desc: EsDescriptor {
                es_id: track_id as u16,
                dec_config: DecoderConfig {
                    object_type_indication,
                    stream_type: 5,
                    dec_specific: specific.map(|raw| DecoderSpecific {
                        raw,
                        ..DecoderSpecific::default()
                    }),
                    ..DecoderConfig::default()
                },
                sl_config: SLConfig {},
                ..EsDescriptor::default()
            },
        };
        match self {
            SampleEntry::Video {
                config,
                width,
                height,
            } => {
                let visual = visual(*width, *height);
                match config {
                    VideoConfig::Avc(avcc) => Codec::Avc1(Avc1 {
                        visual,
                        avcc: avcc.clone(),
                        ..Avc1::default()
                    }),
                    VideoConfig::Hevc(hvcc) => Codec::Hvc1(Hvc1 {
                        visual,
                        hvcc: hvcc.clone(),
                        ..Hvc1::default()
                    }),
                    VideoConfig::Av1(av1c) => Codec::Av01(Av01 {
                        visual,
                        av1c: av1c.clone(),
                        ..Av01::default()
                    }),
                }
            }
            SampleEntry::Aac {
                config,
                sample_rate,
                channels,
                ..
            } => Codec::Mp4a(Mp4a {
                audio: audio(*sample_rate, *channels),
                esds: esds(0x40, Some(config.clone())),
                btrt: None,
                taic: None,
            }),
            SampleEntry::Mp3 {
                sample_rate,
                channels,
                ..
            } => Codec::Mp4a(Mp4a {
                audio: audio(*sample_rate, *channels),
                // 0x6B: MPEG-1 audio (ISO/IEC 11172-3), which players read as MP3.
                esds: esds(0x6B, None),
                btrt: None,
                taic: None,
            }),
        }
    }
}

fn hevc_codec_string(c: &Hvcc) -> String {
    let space = match c.general_profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    // The compatibility flags are written bit-reversed (ISO/IEC 14496-15 annex E).
    let flags = u32::from_be_bytes(c.general_profile_compatibility_flags).reverse_bits();
    let tier = if c.general_tier_flag { 'H' } else { 'L' };
    let mut s = format!(
        "hvc1.{space}{}.{flags:X}.{tier}{}",
        c.general_profile_idc, c.general_level_idc
    );
    let constraints = &c.general_constraint_indicator_flags;
    let keep = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in &constraints[..keep] {
        s.push_str(&format!(".{b:X}"));
    }
    s
}
