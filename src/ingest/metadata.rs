//! The onMetaData a chunk begins with: the publisher's fields (minus those that describe the
//! whole live stream, like `duration: 0`, which players would take as the chunk's), plus ours:
//! sequence, previous chunk, UTC start and offset in the stream, which remux carries into the
//! manifest.

use crate::flv::script::{self, Amf0Value, Properties};
use crate::manifest;

/// Our fields for one chunk.
#[derive(Debug, Clone)]
pub struct ChunkFields {
    pub sequence: u32,
    pub previous: Option<String>,
    pub utc_start: String,
    pub stream_offset_ms: u64,
    /// Set on the first chunk after a break in the recording that the chain continues over.
    pub gap: Option<manifest::Gap>,
}

/// Publisher fields that would lie about a chunk.
const DROPPED: [&str; 3] = ["duration", "filesize", "datasize"];

/// The body of the chunk's onMetaData script tag. Publisher metadata that does not decode is
/// left out (and logged once per chunk): it is advisory, the frames are what matter.
pub fn chunk_metadata(publisher: Option<&[u8]>, fields: &ChunkFields) -> Vec<u8> {
    let mut props: Properties = match publisher.map(script::decode_metadata) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            log::warn!("publisher's onMetaData does not decode ({e}); the chunk gets ours only");
            Vec::new()
        }
        None => Vec::new(),
    };
    props.retain(|(k, _)| !DROPPED.contains(&k.as_str()));
    script::set(
        &mut props,
        manifest::META_SEQUENCE,
        Amf0Value::Number(f64::from(fields.sequence)),
    );
    script::set(
        &mut props,
        manifest::META_PREVIOUS,
        Amf0Value::String(fields.previous.clone().unwrap_or_default()),
    );
    script::set(
        &mut props,
        manifest::META_UTC_START,
        Amf0Value::String(fields.utc_start.clone()),
    );
    script::set(
        &mut props,
        manifest::META_STREAM_OFFSET_MS,
        Amf0Value::Number(fields.stream_offset_ms as f64),
    );
    if let Some(gap) = &fields.gap {
        script::set(
            &mut props,
            manifest::META_GAP_MS,
            Amf0Value::Number(gap.duration_ms as f64),
        );
        script::set(
            &mut props,
            manifest::META_GAP_REASON,
            Amf0Value::String(gap.reason.clone()),
        );
    }
    script::encode_metadata(&props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_publisher_fields_drops_live_duration_adds_ours() {
        let publisher = script::encode_metadata(&[
            ("duration".into(), Amf0Value::Number(0.0)),
            ("width".into(), Amf0Value::Number(1280.0)),
            ("encoder".into(), Amf0Value::String("Lavf".into())),
        ]);
        let fields = ChunkFields {
            sequence: 3,
            previous: Some("prev".into()),
            utc_start: "2026-11-26T03:27:59.123Z".into(),
            stream_offset_ms: 20_000,
            gap: Some(manifest::Gap {
                duration_ms: 4_200,
                reason: "reconnect".into(),
            }),
        };
        let props = script::decode_metadata(&chunk_metadata(Some(&publisher), &fields)).unwrap();
        assert_eq!(script::get(&props, "duration"), None);
        let text = |s: &str| Amf0Value::String(s.into());
        for (key, want) in [
            ("width", Amf0Value::Number(1280.0)),
            ("encoder", text("Lavf")),
            (manifest::META_SEQUENCE, Amf0Value::Number(3.0)),
            (manifest::META_PREVIOUS, text("prev")),
            (manifest::META_STREAM_OFFSET_MS, Amf0Value::Number(20_000.0)),
            (manifest::META_GAP_MS, Amf0Value::Number(4_200.0)),
            (manifest::META_GAP_REASON, text("reconnect")),
        ] {
            assert_eq!(script::get(&props, key), Some(&want), "{key}");
        }
    }

    #[test]
    fn undecodable_publisher_metadata_is_replaced_by_ours() {
        let fields = ChunkFields {
            sequence: 1,
            previous: None,
            utc_start: "x".into(),
            stream_offset_ms: 0,
            gap: None,
        };
        let props =
            script::decode_metadata(&chunk_metadata(Some(b"\x02\xff\xff"), &fields)).unwrap();
        assert_eq!(props.len(), 4);
    }
}
