//! The Enhanced RTMP ModEx prefix, which audio and video tag headers share: packet type 7 says
//! an optional extension (with its own size) comes first and the real packet type follows it.

use super::tag::FlvError;

/// The packet type that announces a ModEx prefix, in audio and video headers alike.
pub(super) const PACKET_TYPE_MOD_EX: u8 = 7;

/// Reads the packet type from the low nibble of `body[0]` (which must exist) and skips any ModEx
/// prefixes, whose extensions we do not need. Returns the real packet type and the bytes after
/// it. `what` ("audio", "video") names the tag in errors.
pub(super) fn skip_mod_ex<'a>(
    what: &'static str,
    body: &'a [u8],
) -> Result<(u8, &'a [u8]), FlvError> {
    let short = |detail| FlvError::ShortBody {
        what,
        len: body.len(),
        detail,
    };
    let mut packet_type = body[0] & 0x0f;
    let mut rest = &body[1..];
    while packet_type == PACKET_TYPE_MOD_EX {
        let (&len0, tail) = rest
            .split_first()
            .ok_or_else(|| short("ModEx size missing"))?;
        let (size, tail) = if len0 == 0xff {
            if tail.len() < 2 {
                return Err(short("ModEx 16-bit size missing"));
            }
            (
                usize::from(u16::from_be_bytes([tail[0], tail[1]])) + 1,
                &tail[2..],
            )
        } else {
            (usize::from(len0) + 1, tail)
        };
        if tail.len() < size + 1 {
            return Err(short("ModEx data cut short"));
        }
        packet_type = tail[size] & 0x0f;
        rest = &tail[size + 1..];
    }
    Ok((packet_type, rest))
}
