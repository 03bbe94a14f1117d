//! Reads the few facts a sample entry needs out of codec configuration bytes: picture size from
//! H.264/HEVC sequence parameter sets, sample rate and channels from an AAC AudioSpecificConfig
//! or an MP3 frame header. Only what the MP4 boxes need; everything else is copied verbatim.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("{what}: truncated")]
    Truncated { what: &'static str },
    #[error("{what}: {why}")]
    Invalid {
        what: &'static str,
        why: &'static str,
    },
}

fn truncated(what: &'static str) -> ParamError {
    ParamError::Truncated { what }
}

/// MSB-first bit reader over a NAL unit payload with emulation-prevention bytes removed.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Bits<'a> {
        Bits { data, pos: 0, what }
    }

    fn bit(&mut self) -> Result<u32, ParamError> {
        let byte = *self.data.get(self.pos / 8).ok_or(truncated(self.what))?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Result<u32, ParamError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> Result<(), ParamError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(truncated(self.what));
        }
        self.pos += n;
        Ok(())
    }

    fn ue(&mut self) -> Result<u32, ParamError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(ParamError::Invalid {
                    what: self.what,
                    why: "exp-Golomb code too long",
                });
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i32, ParamError> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

/// Removes emulation-prevention bytes (`00 00 03` -> `00 00`) from a NAL unit.
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Display size from an H.264 SPS NAL unit (with its one-byte NAL header).
pub fn h264_dimensions(sps: &[u8]) -> Result<(u32, u32), ParamError> {
    const WHAT: &str = "H.264 SPS";
    let rbsp = unescape(sps.get(1..).ok_or(truncated(WHAT))?);
    let mut r = Bits::new(&rbsp, WHAT);
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag: crops like 4:4:4 either way
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            // delta_scale is -128..=127 (7.4.2.1.1.1); anything else is not an
                            // SPS, and would overflow the sum below.
                            let delta = r.se()?;
                            if !(-128..=127).contains(&delta) {
                                return Err(ParamError::Invalid {
                                    what: WHAT,
                                    why: "scaling list delta out of range",
                                });
                            }
                            next = (last + delta + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(ParamError::Invalid {
                    what: WHAT,
                    why: "too many reference frames in POC cycle",
                });
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (left, right, top, bottom) = crop_offsets(&mut r)?;
    let (sub_w, sub_h) = crop_units(chroma_format_idc);
    let crop_x = sub_w;
    let crop_y = sub_h * (2 - frame_mbs_only);
    let width = (width_mbs * 16).saturating_sub(crop_x * (left + right));
    let height =
        ((2 - frame_mbs_only) * height_map_units * 16).saturating_sub(crop_y * (top + bottom));
    dims(width, height, WHAT)
}

/// The cropping (H.264) or conformance (HEVC) window: a presence flag, then left, right, top
/// and bottom offsets in crop units; all zero when absent.
fn crop_offsets(r: &mut Bits<'_>) -> Result<(u64, u64, u64, u64), ParamError> {
    if r.bit()? == 0 {
        return Ok((0, 0, 0, 0));
    }
    Ok((
        r.ue()?.into(),
        r.ue()?.into(),
        r.ue()?.into(),
        r.ue()?.into(),
    ))
}

/// Horizontal and vertical crop units (SubWidthC, SubHeightC) for a chroma_format_idc, the
/// same in H.264 and HEVC: monochrome, 4:4:4 and separate colour planes crop whole samples.
fn crop_units(chroma_format_idc: u32) -> (u64, u64) {
    match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    }
}

/// Display size from an HEVC SPS NAL unit (with its two-byte NAL header).
pub fn hevc_dimensions(sps: &[u8]) -> Result<(u32, u32), ParamError> {
    const WHAT: &str = "HEVC SPS";
    let rbsp = unescape(sps.get(2..).ok_or(truncated(WHAT))?);
    let mut r = Bits::new(&rbsp, WHAT);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)? as usize;
    r.skip(1)?; // temporal_id_nesting
    // profile_tier_level: the general part is 88 bits of profile and 8 of level.
    r.skip(96)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for i in 0..max_sub_layers_minus1 {
        profile_present[i] = r.bit()? == 1;
        level_present[i] = r.bit()? == 1;
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?;
    }
    for i in 0..max_sub_layers_minus1 {
        if profile_present[i] {
            r.skip(88)?;
        }
        if level_present[i] {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.bit()?; // separate_colour_plane_flag: crops like 4:4:4 either way
    }
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let (left, right, top, bottom) = crop_offsets(&mut r)?;
    let (sub_w, sub_h) = crop_units(chroma_format_idc);
    dims(
        width.saturating_sub(sub_w * (left + right)),
        height.saturating_sub(sub_h * (top + bottom)),
        WHAT,
    )
}

/// Picture size (the maximum frame size) from the sequence header OBU among AV1 `configOBUs`
/// (the tail of an AV1CodecConfigurationRecord).
pub fn av1_dimensions(config_obus: &[u8]) -> Result<(u32, u32), ParamError> {
    const WHAT: &str = "AV1 sequence header";
    const OBU_SEQUENCE_HEADER: u8 = 1;
    let mut rest = config_obus;
    while let Some(&header) = rest.first() {
        let kind = (header >> 3) & 0x0f;
        let mut at = 1 + usize::from(header & 0x04 != 0);
        let size = if header & 0x02 != 0 {
            let mut size = 0usize;
            let mut i = 0;
            loop {
                let b = *rest.get(at).ok_or(truncated(WHAT))?;
                size |= usize::from(b & 0x7f) << (7 * i);
                at += 1;
                i += 1;
                if b & 0x80 == 0 || i == 8 {
                    break;
                }
            }
            size
        } else {
            rest.len().saturating_sub(at)
        };
        let payload = rest.get(at..at + size).ok_or(truncated(WHAT))?;
        if kind == OBU_SEQUENCE_HEADER {
            return av1_sequence_header_dimensions(payload);
        }
        rest = &rest[at + size..];
    }
    Err(ParamError::Invalid {
        what: WHAT,
        why: "no sequence header OBU",
    })
}

fn av1_sequence_header_dimensions(obu: &[u8]) -> Result<(u32, u32), ParamError> {
    const WHAT: &str = "AV1 sequence header";
    let mut r = Bits::new(obu, WHAT);
    r.skip(4)?; // seq_profile, still_picture
    let reduced_still_picture_header = r.bit()? == 1;
    if reduced_still_picture_header {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if r.bit()? == 1 {
            // timing_info
            r.skip(64)?;
            if r.bit()? == 1 {
                // num_ticks_per_picture_minus_1, uvlc
                let mut zeros = 0;
                while r.bit()? == 0 {
                    zeros += 1;
                    if zeros >= 32 {
                        break;
                    }
                }
                if zeros < 32 {
                    r.skip(zeros)?;
                }
            }
            decoder_model_info_present = r.bit()? == 1;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.bit()? == 1;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model_info_present && r.bit()? == 1 {
                r.skip(2 * buffer_delay_length as usize + 1)?;
            }
            if initial_display_delay_present && r.bit()? == 1 {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = u64::from(r.bits(width_bits)?) + 1;
    let height = u64::from(r.bits(height_bits)?) + 1;
    dims(width, height, WHAT)
}

fn dims(width: u64, height: u64, what: &'static str) -> Result<(u32, u32), ParamError> {
    if width == 0 || height == 0 || width > 65535 || height > 65535 {
        return Err(ParamError::Invalid {
            what,
            why: "picture size out of range",
        });
    }
    Ok((width as u32, height as u32))
}

/// What an AAC AudioSpecificConfig says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// MPEG-4 audio object type (2 = AAC LC, 5 = SBR, 29 = PS).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u16,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

pub fn aac_config(asc: &[u8]) -> Result<AacConfig, ParamError> {
    const WHAT: &str = "AAC AudioSpecificConfig";
    let mut r = Bits::new(asc, WHAT);
    let mut object_type = r.bits(5)?;
    if object_type == 31 {
        object_type = 32 + r.bits(6)?;
    }
    let index = r.bits(4)? as usize;
    let sample_rate = if index == 15 {
        r.bits(24)?
    } else {
        *AAC_RATES.get(index).ok_or(ParamError::Invalid {
            what: WHAT,
            why: "reserved sampling frequency index",
        })?
    };
    let channel_config = r.bits(4)?;
    if sample_rate == 0 {
        return Err(ParamError::Invalid {
            what: WHAT,
            why: "sample rate 0",
        });
    }
    // Configuration 7 means 7.1 (8 channels); 0 defers to a program config element.
    let channels = match channel_config {
        7 => 8,
        c @ 1..=6 => c as u16,
        _ => 2,
    };
    Ok(AacConfig {
        object_type: object_type as u8,
        sample_rate,
        channels,
    })
}

/// What an MPEG audio (MP3) frame header says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Header {
    pub sample_rate: u32,
    pub channels: u16,
    /// PCM samples per frame: 1152 for MPEG-1 Layer III, 576 for MPEG-2/2.5.
    pub samples_per_frame: u32,
}

pub fn mp3_header(frame: &[u8]) -> Result<Mp3Header, ParamError> {
    const WHAT: &str = "MP3 frame header";
    let h: [u8; 4] = frame
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(truncated(WHAT))?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return Err(ParamError::Invalid {
            what: WHAT,
            why: "no frame sync",
        });
    }
    let version = (h[1] >> 3) & 3;
    let layer = (h[1] >> 1) & 3;
    let rate_index = ((h[2] >> 2) & 3) as usize;
    let base = [44100, 48000, 32000]
        .get(rate_index)
        .copied()
        .ok_or(ParamError::Invalid {
            what: WHAT,
            why: "reserved sample rate index",
        })?;
    let (sample_rate, mpeg1) = match version {
        3 => (base, true),
        2 => (base / 2, false),
        0 => (base / 4, false),
        _ => {
            return Err(ParamError::Invalid {
                what: WHAT,
                why: "reserved MPEG version",
            });
        }
    };
    let samples_per_frame = match (layer, mpeg1) {
        (3, _) => 384,     // Layer I
        (2, _) => 1152,    // Layer II
        (1, true) => 1152, // Layer III
        (1, false) => 576,
        _ => {
            return Err(ParamError::Invalid {
                what: WHAT,
                why: "reserved layer",
            });
        }
    };
    let channels = if (h[3] >> 6) == 3 { 1 } else { 2 };
    Ok(Mp3Header {
        sample_rate,
        channels,
        samples_per_frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_sps_720p_high() {
        // x264 High profile 1280x720 SPS (coded as 1280x736, cropped).
        let sps = [
            0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
        ];
        assert_eq!(h264_dimensions(&sps), Ok((1280, 720)));
    }

    #[test]
    fn h264_sps_scaling_delta_out_of_range_is_refused() {
        // Found by fuzz/ (codec_headers): a High profile SPS whose first scaling list carries a
        // delta_scale of 2^31 - 1 overflowed the list arithmetic.
        let sps = [
            0x01, 0x64, 0x00, 0x0a, 0xef, 0xe1, 0x00, 0x03, 0xac, 0x00, 0x00, 0x00, 0x00, 0xff,
            0xff, 0xff, 0x00, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            h264_dimensions(&sps),
            Err(ParamError::Invalid {
                what: "H.264 SPS",
                why: "scaling list delta out of range"
            })
        );
    }

    #[test]
    fn hevc_sps_360p() {
        // x265 Main profile 640x360 SPS (coded as 640x368 with a conformance window).
        let sps = [
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32,
            0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0xc1,
        ];
        assert_eq!(hevc_dimensions(&sps), Ok((640, 360)));
    }

    #[test]
    fn av1_sequence_header_640x360() {
        // configOBUs of an SVT-AV1 640x360 stream (a sequence header OBU with a size field).
        let obus = [
            0x0a, 0x0c, 0x02, 0x00, 0x00, 0x0d, 0x26, 0x27, 0xfb, 0x38, 0x05, 0xf0, 0x00, 0x80,
        ];
        assert_eq!(av1_dimensions(&obus), Ok((640, 360)));
        assert!(av1_dimensions(&obus[..6]).is_err());
        assert!(av1_dimensions(&[]).is_err());
    }

    #[test]
    fn truncated_sps_is_an_error() {
        assert!(h264_dimensions(&[0x67, 0x64]).is_err());
        assert!(hevc_dimensions(&[0x42]).is_err());
    }

    #[test]
    fn aac_configs() {
        assert_eq!(
            aac_config(&[0x11, 0x90]),
            Ok(AacConfig {
                object_type: 2,
                sample_rate: 48000,
                channels: 2
            })
        );
        assert_eq!(
            aac_config(&[0x12, 0x08]).map(|c| (c.sample_rate, c.channels)),
            Ok((44100, 1))
        );
        assert!(aac_config(&[0x17]).is_err());
    }

    #[test]
    fn mp3_headers() {
        // MPEG-1 Layer III, 44.1 kHz, joint stereo.
        assert_eq!(
            mp3_header(&[0xFF, 0xFB, 0x90, 0x44]),
            Ok(Mp3Header {
                sample_rate: 44100,
                channels: 2,
                samples_per_frame: 1152
            })
        );
        // MPEG-2 Layer III, 24 kHz, mono.
        assert_eq!(
            mp3_header(&[0xFF, 0xF3, 0x84, 0xC4]).map(|h| (
                h.sample_rate,
                h.channels,
                h.samples_per_frame
            )),
            Ok((24000, 1, 576))
        );
        assert!(mp3_header(&[0x00, 0x00, 0x00, 0x00]).is_err());
    }
}
