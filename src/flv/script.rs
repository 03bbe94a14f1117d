//! AMF0 script data (`onMetaData`): decode into ordered (name, value) pairs and encode back.
//!
//! Publishers' metadata is kept in the order it came, so a chunk's `onMetaData` reads like
//! the publisher's with our fields appended. Decoding never panics and never trusts a count
//! for allocation: every element consumes input, and nesting is capped at [`MAX_DEPTH`].

use super::tag::FlvError;

/// Deepest nesting of objects/arrays accepted; real metadata is 2-3 levels deep.
pub const MAX_DEPTH: usize = 32;

const NUMBER: u8 = 0;
const BOOLEAN: u8 = 1;
const STRING: u8 = 2;
const OBJECT: u8 = 3;
const NULL: u8 = 5;
const UNDEFINED: u8 = 6;
const REFERENCE: u8 = 7;
const ECMA_ARRAY: u8 = 8;
const OBJECT_END: u8 = 9;
const STRICT_ARRAY: u8 = 10;
const DATE: u8 = 11;
const LONG_STRING: u8 = 12;
const UNSUPPORTED: u8 = 13;
const XML_DOCUMENT: u8 = 15;
const TYPED_OBJECT: u8 = 16;

/// Ordered name/value pairs of an object or ECMA array.
pub type Properties = Vec<(String, Amf0Value)>;

/// One AMF0 value. Long strings decode to `String` (encode picks the long form by length).
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Properties),
    Null,
    Undefined,
    /// Index of an earlier complex value; kept as is, not resolved.
    Reference(u16),
    EcmaArray(Properties),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; the time-zone field is reserved (0) but kept.
    Date {
        millis: f64,
        timezone: i16,
    },
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class: String,
        properties: Properties,
    },
}

impl Amf0Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::XmlDocument(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&Properties> {
        match self {
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => Some(p),
            _ => None,
        }
    }
}

/// Looks a property up by name (first match).
pub fn get<'a>(props: &'a [(String, Amf0Value)], name: &str) -> Option<&'a Amf0Value> {
    props.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Replaces the value of `name` in place, or appends it if absent.
pub fn set(props: &mut Properties, name: &str, value: Amf0Value) {
    match props.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = value,
        None => props.push((name.to_string(), value)),
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn err(&self, reason: impl Into<String>) -> FlvError {
        FlvError::Amf {
            pos: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FlvError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(format!("{what} runs past the end ({n} bytes wanted)")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, FlvError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, FlvError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, FlvError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &str) -> Result<f64, FlvError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    /// Publishers send odd bytes in titles; keep what is readable rather than fail.
    fn string(&mut self, len: usize, what: &str) -> Result<String, FlvError> {
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    fn short_string(&mut self, what: &str) -> Result<String, FlvError> {
        let n = self.u16(what)?;
        self.string(usize::from(n), what)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, FlvError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH}")));
        }
        let marker = self.u8("type marker")?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64("number")?),
            BOOLEAN => Amf0Value::Boolean(self.u8("boolean")? != 0),
            STRING => Amf0Value::String(self.short_string("string")?),
            LONG_STRING => {
                let n = self.u32("long string length")?;
                Amf0Value::String(self.string(n as usize, "long string")?)
            }
            XML_DOCUMENT => {
                let n = self.u32("XML length")?;
                Amf0Value::XmlDocument(self.string(n as usize, "XML document")?)
            }
            OBJECT => Amf0Value::Object(self.properties(depth)?),
            TYPED_OBJECT => {
                let class = self.short_string("class name")?;
                Amf0Value::TypedObject {
                    class,
                    properties: self.properties(depth)?,
                }
            }
            ECMA_ARRAY => {
                // The count is a hint only; the end marker (or the end of input) ends it.
                self.u32("ECMA array count")?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            STRICT_ARRAY => {
                let n = self.u32("strict array count")?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            UNSUPPORTED => Amf0Value::Unsupported,
            REFERENCE => Amf0Value::Reference(self.u16("reference")?),
            DATE => {
                let millis = self.f64("date")?;
                let timezone = self.u16("date time zone")? as i16;
                Amf0Value::Date { millis, timezone }
            }
            other => {
                self.pos -= 1;
                return Err(self.err(format!("unsupported AMF0 type marker {other}")));
            }
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Properties, FlvError> {
        let mut props = Vec::new();
        loop {
            // Some encoders end the top-level array with the body instead of a marker.
            if self.at_end() {
                return Ok(props);
            }
            let key = self.short_string("property name")?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }
}

/// Decodes every value in a script tag body (e.g. `["onMetaData", {..}]`).
pub fn decode_values(body: &[u8]) -> Result<Vec<Amf0Value>, FlvError> {
    let mut d = Decoder { buf: body, pos: 0 };
    let mut values = Vec::new();
    while !d.at_end() {
        values.push(d.value(0)?);
    }
    Ok(values)
}

/// The name of a script tag (its first value, a string such as `onMetaData`), if any.
pub fn script_name(body: &[u8]) -> Option<String> {
    let mut d = Decoder { buf: body, pos: 0 };
    match d.value(0) {
        Ok(Amf0Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Decodes an `onMetaData` script body (also the RTMP form with a leading `@setDataFrame`)
/// into its properties, in order.
pub fn decode_metadata(body: &[u8]) -> Result<Properties, FlvError> {
    let mut d = Decoder { buf: body, pos: 0 };
    let mut name = d.value(0)?;
    if name.as_str() == Some("@setDataFrame") {
        name = d.value(0)?;
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
    match d.value(0)? {
        Amf0Value::EcmaArray(p) | Amf0Value::Object(p) => Ok(p),
        Amf0Value::TypedObject { properties, .. } => Ok(properties),
        other => Err(FlvError::Amf {
            pos: 0,
            reason: format!("onMetaData carries {other:?}, not an object"),
        }),
    }
}

/// Encodes an `onMetaData` script tag body: the name, then the properties as an ECMA array.
pub fn encode_metadata(props: &[(String, Amf0Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&Amf0Value::String("onMetaData".into()), &mut out);
    out.push(ECMA_ARRAY);
    out.extend_from_slice(&(props.len() as u32).to_be_bytes());
    encode_properties(props, &mut out);
    out
}

fn encode_short_string(s: &str, out: &mut Vec<u8>) {
    // Names are 16-bit length prefixed; cut an overlong one at a character boundary.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        encode_short_string(k, out);
        encode_value(v, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Appends the AMF0 encoding of `v` to `out`.
pub fn encode_value(v: &Amf0Value, out: &mut Vec<u8>) {
    match v {
        Amf0Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Amf0Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.push(STRING);
            encode_short_string(s, out);
        }
        Amf0Value::String(s) => {
            out.push(LONG_STRING);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Amf0Value::XmlDocument(s) => {
            out.push(XML_DOCUMENT);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Amf0Value::Object(p) => {
            out.push(OBJECT);
            encode_properties(p, out);
        }
        Amf0Value::TypedObject { class, properties } => {
            out.push(TYPED_OBJECT);
            encode_short_string(class, out);
            encode_properties(properties, out);
        }
        Amf0Value::EcmaArray(p) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            encode_properties(p, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode_value(item, out);
            }
        }
        Amf0Value::Null => out.push(NULL),
        Amf0Value::Undefined => out.push(UNDEFINED),
        Amf0Value::Unsupported => out.push(UNSUPPORTED),
        Amf0Value::Reference(r) => {
            out.push(REFERENCE);
            out.extend_from_slice(&r.to_be_bytes());
        }
        Amf0Value::Date { millis, timezone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.contains("nesting"), "{e}");
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
