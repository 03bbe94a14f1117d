//! AMF0 (Adobe Action Message Format 0): the one value type, decoder and encoder of the crate.
//!
//! Used for FLV script data (`onMetaData`, see `flv::script`) and for RTMP commands (see
//! `rtmp::amf`). Decoding works on peer bytes, so it is bounded: nesting stops at [`MAX_DEPTH`]
//! (a recursive decoder without a limit overflows the stack on a few KiB of `0x03` markers, and a
//! stack overflow aborts the process), and one [`Decoder`] yields at most [`MAX_VALUES`] values
//! (so a message cannot blow up into a huge tree). Counts in the input are never used to
//! preallocate: every element consumes input. Properties keep their wire order, so metadata we
//! rewrite reads like the publisher's. Errors name the byte offset; nothing here panics.

/// Deepest nesting of objects/arrays accepted; real metadata and commands are 2-3 levels deep.
pub const MAX_DEPTH: usize = 32;

/// Most values (nested ones included) one [`Decoder`] yields. A long recording's keyframe index
/// in `onMetaData` holds a few thousand; anything near this is hostile.
pub const MAX_VALUES: usize = 100_000;

/// AMF0 type markers (the byte before each value).
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
}

use marker::*;

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

/// Where and why decoding stopped; the caller adds which message or file it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AMF0 at byte {offset}: {reason}")]
pub struct Amf0Error {
    pub offset: usize,
    pub reason: String,
}

/// Reads values one after another from a byte slice, within the depth and value bounds.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    decoded: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            decoded: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Decodes the next top-level value.
    pub fn value(&mut self) -> Result<Amf0Value, Amf0Error> {
        self.value_at(0)
    }

    fn err(&self, reason: impl Into<String>) -> Amf0Error {
        Amf0Error {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Amf0Error> {
        let left = self.buf.len().saturating_sub(self.pos);
        if n > left {
            return Err(self.err(format!("{what} needs {n} bytes, only {left} left")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Amf0Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }

    /// Publishers send odd bytes in titles; keep what is readable rather than fail.
    fn string(&mut self, len: usize, what: &str) -> Result<String, Amf0Error> {
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    fn short_string(&mut self, what: &str) -> Result<String, Amf0Error> {
        let n = self.u16(what)?;
        self.string(usize::from(n), what)
    }

    fn long_string(&mut self, what: &str) -> Result<String, Amf0Error> {
        let n = self.u32(what)?;
        // A length beyond usize (16-bit targets) cannot fit in the input either.
        self.string(usize::try_from(n).unwrap_or(usize::MAX), what)
    }

    fn value_at(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("values nested deeper than {MAX_DEPTH}")));
        }
        if self.decoded >= MAX_VALUES {
            return Err(self.err(format!("more than {MAX_VALUES} values in one message")));
        }
        self.decoded += 1;
        let marker = self.u8("type marker")?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64("number")?),
            BOOLEAN => Amf0Value::Boolean(self.u8("boolean")? != 0),
            STRING => Amf0Value::String(self.short_string("string")?),
            LONG_STRING => Amf0Value::String(self.long_string("long string")?),
            XML_DOCUMENT => Amf0Value::XmlDocument(self.long_string("XML document")?),
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
                    items.push(self.value_at(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            UNSUPPORTED => Amf0Value::Unsupported,
            REFERENCE => Amf0Value::Reference(self.u16("reference")?),
            DATE => {
                let millis = self.f64("date")?;
                let timezone = i16::from_be_bytes(self.array("date time zone")?);
                Amf0Value::Date { millis, timezone }
            }
            other => {
                self.pos -= 1;
                return Err(self.err(format!("unsupported AMF0 type marker 0x{other:02x}")));
            }
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Properties, Amf0Error> {
        let mut props = Vec::new();
        loop {
            // Some encoders end the top-level metadata array with the body instead of a marker.
            if self.at_end() {
                return Ok(props);
            }
            let key = self.short_string("property name")?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value_at(depth + 1)?;
            props.push((key, value));
        }
    }
}

/// Decodes every value in `bytes` (a script tag body or an RTMP command payload).
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut d = Decoder::new(bytes);
    let mut values = Vec::new();
    while !d.at_end() {
        values.push(d.value()?);
    }
    Ok(values)
}

/// Encodes `values` one after another.
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

/// The longest prefix of `s` that fits in `max` bytes, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn encode_short_string(s: &str, out: &mut Vec<u8>) {
    // Names are 16-bit length prefixed; an overlong one is cut rather than written corrupt.
    let s = prefix(s, usize::from(u16::MAX));
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_long_string(s: &str, out: &mut Vec<u8>) {
    let s = prefix(s, u32::MAX as usize);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A count field; decoders ignore it for ECMA arrays, and no real list reaches 2^32.
fn count(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
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
            encode_long_string(s, out);
        }
        Amf0Value::XmlDocument(s) => {
            out.push(XML_DOCUMENT);
            encode_long_string(s, out);
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
            out.extend_from_slice(&count(p.len()));
            encode_properties(p, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            let n = items.len().min(u32::MAX as usize);
            out.extend_from_slice(&count(n));
            for item in &items[..n] {
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
    use rml_rtmp::rml_amf0 as rml;

    fn every_type() -> Vec<Amf0Value> {
        vec![
            Amf0Value::Number(-1.5),
            Amf0Value::Boolean(true),
            Amf0Value::String("caf\u{e9} \u{1f3a5}".into()),
            Amf0Value::String("x".repeat(70_000)),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::Unsupported,
            Amf0Value::Reference(3),
            Amf0Value::Date {
                millis: 1.7e12,
                timezone: -60,
            },
            Amf0Value::XmlDocument("<a/>".into()),
            Amf0Value::Object(vec![
                ("z".into(), Amf0Value::Number(1.0)),
                ("a".into(), Amf0Value::String("b".into())),
            ]),
            Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Boolean(false))]),
            Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null]),
            Amf0Value::TypedObject {
                class: "C".into(),
                properties: vec![("p".into(), Amf0Value::Null)],
            },
        ]
    }

    #[test]
    fn round_trip_keeps_order_and_types() {
        let values = every_type();
        assert_eq!(decode_all(&encode_all(&values)).unwrap(), values);
    }

    #[test]
    fn long_string_is_chosen_by_length() {
        let bytes = encode_all(&[Amf0Value::String("y".repeat(65_536))]);
        assert_eq!(bytes[0], LONG_STRING);
        assert_eq!(&bytes[1..5], &65_536u32.to_be_bytes());
        let bytes = encode_all(&[Amf0Value::String("y".repeat(65_535))]);
        assert_eq!(bytes[0], STRING);
        assert_eq!(&bytes[1..3], &[0xff, 0xff]);
    }

    /// Another implementation (rml_amf0, what rml_rtmp's client session uses) reads what we
    /// write, and we read what it writes.
    #[test]
    fn interoperates_with_rml_amf0() {
        let ours = vec![
            Amf0Value::String("_result".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![
                ("fmsVer".into(), Amf0Value::String("FMS/3,0,1,123".into())),
                ("capabilities".into(), Amf0Value::Number(31.0)),
            ]),
            Amf0Value::Null,
            Amf0Value::Boolean(true),
            Amf0Value::StrictArray(vec![Amf0Value::Number(2.5)]),
        ];
        let theirs = vec![
            rml::Amf0Value::Utf8String("_result".into()),
            rml::Amf0Value::Number(1.0),
            rml::Amf0Value::Object(
                [
                    (
                        "fmsVer".to_string(),
                        rml::Amf0Value::Utf8String("FMS/3,0,1,123".into()),
                    ),
                    ("capabilities".to_string(), rml::Amf0Value::Number(31.0)),
                ]
                .into_iter()
                .collect(),
            ),
            rml::Amf0Value::Null,
            rml::Amf0Value::Boolean(true),
            rml::Amf0Value::StrictArray(vec![rml::Amf0Value::Number(2.5)]),
        ];
        let mut ours_bytes = std::io::Cursor::new(encode_all(&ours));
        assert_eq!(rml::deserialize(&mut ours_bytes).unwrap(), theirs);
        let theirs_bytes = rml::serialize(&theirs).unwrap();
        let mut decoded = decode_all(&theirs_bytes).unwrap();
        // rml_amf0 keeps objects in a HashMap, so its property order is arbitrary.
        if let Amf0Value::Object(p) = &mut decoded[2] {
            p.sort_by(|a, b| b.0.cmp(&a.0));
        }
        assert_eq!(decoded, ours);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        for step in [&[OBJECT, 0, 1, b'a'][..], &[STRICT_ARRAY, 0, 0, 0, 1]] {
            let bytes = step.repeat(100_000);
            let e = decode_all(&bytes).unwrap_err();
            assert!(e.reason.contains("nested deeper"), "{e}");
            assert_eq!(e.offset, step.len() * (MAX_DEPTH + 1));
        }
        let ok = [&[STRICT_ARRAY, 0, 0, 0, 1][..]]
            .repeat(MAX_DEPTH)
            .concat()
            .into_iter()
            .chain([NULL])
            .collect::<Vec<_>>();
        assert!(decode_all(&ok).is_ok());
    }

    #[test]
    fn values_per_message_are_bounded() {
        let mut bytes = vec![STRICT_ARRAY];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend(std::iter::repeat_n(NULL, MAX_VALUES + 10));
        let e = decode_all(&bytes).unwrap_err();
        assert!(e.reason.contains("values in one message"), "{e}");
        // The array itself is value 1, so the element at index MAX_VALUES - 1 is refused.
        assert_eq!(e.offset, 5 + MAX_VALUES - 1);
        // The bound is per decoder: top-level values count too.
        let nulls = vec![NULL; MAX_VALUES];
        assert_eq!(decode_all(&nulls).unwrap().len(), MAX_VALUES);
        assert!(decode_all(&vec![NULL; MAX_VALUES + 1]).is_err());
    }

    #[test]
    fn errors_name_the_offset() {
        let e = decode_all(&[STRING, 0, 10, b'a']).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.to_string().contains("byte 3"), "{e}");
        let e = decode_all(&[NULL, 0x11]).unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(e.reason.contains("0x11"), "{e}");
        // A huge count with no elements is an error, not an allocation.
        let mut huge = vec![STRICT_ARRAY];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_all(&huge).unwrap_err().offset, 5);
        let mut long = vec![LONG_STRING];
        long.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_all(&long).is_err());
    }

    #[test]
    fn corrupted_input_decodes_or_errors_without_panic() {
        let mut values = every_type();
        values.retain(|v| v.as_str().is_none_or(|s| s.len() < 100));
        let body = encode_all(&values);
        for n in 0..body.len() {
            let _ = decode_all(&body[..n]);
            for flip in [0xff, 0x01, 0x80] {
                let mut c = body.clone();
                c[n] ^= flip;
                let _ = decode_all(&c);
            }
        }
    }
}
