//! FLV script data (`onMetaData`): the tag-body level on top of [`crate::amf0`].
//!
//! Publishers' metadata is kept in the order it came, so a chunk's `onMetaData` reads like
//! the publisher's with our fields appended. The AMF0 value type, the bounded decoder and the
//! encoder live in [`crate::amf0`]; they are re-exported here for the FLV callers.

use crate::amf0::{self, Amf0Error, Decoder};
pub use crate::amf0::{Amf0Value, MAX_DEPTH, Properties, encode_value, get, set};

use super::tag::FlvError;

fn flv_error(e: Amf0Error) -> FlvError {
    FlvError::Amf {
        pos: e.offset,
        reason: e.reason,
    }
}

/// Decodes every value in a script tag body (e.g. `["onMetaData", {..}]`).
pub fn decode_values(body: &[u8]) -> Result<Vec<Amf0Value>, FlvError> {
    amf0::decode_all(body).map_err(flv_error)
}

/// The name of a script tag (its first value, a string such as `onMetaData`), if any.
pub fn script_name(body: &[u8]) -> Option<String> {
    match Decoder::new(body).value() {
        Ok(Amf0Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Decodes an `onMetaData` script body (also the RTMP form with a leading `@setDataFrame`)
/// into its properties, in order. Bytes after the properties are ignored.
pub fn decode_metadata(body: &[u8]) -> Result<Properties, FlvError> {
    let mut d = Decoder::new(body);
    let mut name = d.value().map_err(flv_error)?;
    if name.as_str() == Some("@setDataFrame") {
        name = d.value().map_err(flv_error)?;
    }
    if name.as_str() != Some("onMetaData") {
        return Err(FlvError::Amf {
            pos: 0,
            reason: format!("script data is {name:?}, not onMetaData"),
        });
    }
    if d.at_end() {
        return Ok(Vec::new());
    }
    let at = d.offset();
    match d.value().map_err(flv_error)? {
        Amf0Value::EcmaArray(p) | Amf0Value::Object(p) => Ok(p),
        Amf0Value::TypedObject { properties, .. } => Ok(properties),
        other => Err(FlvError::Amf {
            pos: at,
            reason: format!("onMetaData carries {other:?}, not an object"),
        }),
    }
}

/// Encodes an `onMetaData` script tag body: the name, then the properties as an ECMA array.
pub fn encode_metadata(props: &[(String, Amf0Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&Amf0Value::String("onMetaData".into()), &mut out);
    // An ECMA array (not a plain object) is what FLV muxers write and players expect.
    encode_value(&Amf0Value::EcmaArray(props.to_vec()), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amf0::marker::{STRICT_ARRAY, STRING};

    fn sample() -> Properties {
        vec![
            ("duration".into(), Amf0Value::Number(0.0)),
            ("width".into(), Amf0Value::Number(1280.0)),
            ("stereo".into(), Amf0Value::Boolean(true)),
            (
                "encoder".into(),
                Amf0Value::String("obs-output module (libobs version 30.0.0)".into()),
            ),
            (
                "title".into(),
                Amf0Value::String("caf\u{e9} \u{1f3a5}".into()),
            ),
            ("long".into(), Amf0Value::String("x".repeat(70_000))),
            ("nothing".into(), Amf0Value::Null),
            ("undef".into(), Amf0Value::Undefined),
            (
                "when".into(),
                Amf0Value::Date {
                    millis: 1.7e12,
                    timezone: 0,
                },
            ),
            (
                "nested".into(),
                Amf0Value::Object(vec![
                    (
                        "a".into(),
                        Amf0Value::StrictArray(vec![
                            Amf0Value::Number(1.0),
                            Amf0Value::String("b".into()),
                        ]),
                    ),
                    (
                        "e".into(),
                        Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Boolean(false))]),
                    ),
                ]),
            ),
            (
                "typed".into(),
                Amf0Value::TypedObject {
                    class: "C".into(),
                    properties: vec![],
                },
            ),
            ("ref".into(), Amf0Value::Reference(3)),
            ("xml".into(), Amf0Value::XmlDocument("<a/>".into())),
        ]
    }

    #[test]
    fn metadata_round_trip_keeps_order_and_types() {
        let props = sample();
        let body = encode_metadata(&props);
        assert_eq!(script_name(&body).as_deref(), Some("onMetaData"));
        assert_eq!(decode_metadata(&body).unwrap(), props);
    }

    #[test]
    fn set_data_frame_prefix_and_object_form() {
        let mut body = Vec::new();
        encode_value(&Amf0Value::String("@setDataFrame".into()), &mut body);
        encode_value(&Amf0Value::String("onMetaData".into()), &mut body);
        let props = vec![("fps".to_string(), Amf0Value::Number(30.0))];
        encode_value(&Amf0Value::Object(props.clone()), &mut body);
        assert_eq!(decode_metadata(&body).unwrap(), props);
    }

    #[test]
    fn ecma_array_without_end_marker_is_accepted() {
        let mut body = encode_metadata(&[("a".into(), Amf0Value::Number(1.0))]);
        body.truncate(body.len() - 3);
        assert_eq!(
            decode_metadata(&body).unwrap(),
            vec![("a".to_string(), Amf0Value::Number(1.0))]
        );
    }

    #[test]
    fn set_replaces_or_appends() {
        let mut p = sample();
        let n = p.len();
        set(&mut p, "width", Amf0Value::Number(640.0));
        set(&mut p, "rtmpRecorderSequence", Amf0Value::Number(1.0));
        assert_eq!(p.len(), n + 1);
        assert_eq!(get(&p, "width").and_then(Amf0Value::as_f64), Some(640.0));
        assert_eq!(
            p.last().map(|(k, _)| k.as_str()),
            Some("rtmpRecorderSequence")
        );
    }

    #[test]
    fn hostile_input_errors_without_panic() {
        // Deep nesting is refused, not a stack overflow.
        let mut deep = vec![STRING, 0, 10];
        deep.extend_from_slice(b"onMetaData");
        for _ in 0..100_000 {
            deep.push(STRICT_ARRAY);
            deep.extend_from_slice(&1u32.to_be_bytes());
        }
        let e = decode_metadata(&deep).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
        // A huge count with no elements is an error, not an allocation.
        let mut huge = vec![STRICT_ARRAY];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_values(&huge).is_err());
        assert!(decode_metadata(&[]).is_err());
        assert!(decode_metadata(&[0x11]).is_err());
        assert!(decode_metadata(&[STRING, 0, 4, b'a', b'b']).is_err());
        // Every prefix and single-byte corruption of a valid body decodes or errors.
        let body = encode_metadata(&sample()[..4]);
        for n in 0..body.len() {
            let _ = decode_metadata(&body[..n]);
            let mut c = body.clone();
            c[n] ^= 0xff;
            let _ = decode_metadata(&c);
        }
    }
}
