//! AMF0 for RTMP commands: a bounded decoder of our own and encoding through `rml_amf0`.
//!
//! `rml_amf0::deserialize` recurses once per nested object with no depth limit, so a few KiB of
//! crafted `0x03` markers overflow the stack, which aborts the process (a stack overflow is not a
//! panic that `catch_unwind` could stop). Decoding peer bytes therefore happens here, with a nesting
//! limit, into `rml_amf0::Amf0Value`. Encoding our own replies still uses `rml_amf0::serialize`.

use std::collections::HashMap;

use rml_amf0::Amf0Value;

use super::error::{ProtocolError, guard};

/// Deeper nesting than this is refused; real commands and metadata nest two or three levels.
const MAX_DEPTH: usize = 32;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;

/// Where and why AMF0 decoding stopped; the caller adds which message it was.
#[derive(Debug, PartialEq, Eq)]
pub struct AmfError {
    pub offset: usize,
    pub reason: String,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, AmfError> {
        Err(AmfError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        if self.bytes.len() - self.pos < n {
            return self.fail(format!(
                "needs {n} bytes, only {} left",
                self.bytes.len() - self.pos
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        let raw = self.take(len)?;
        // Lossy: a publisher's odd byte in a title must not drop the connection.
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn short_string(&mut self) -> Result<String, AmfError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        if depth > MAX_DEPTH {
            return self.fail(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let marker = self.u8()?;
        match marker {
            NUMBER => Ok(Amf0Value::Number(self.f64()?)),
            BOOLEAN => Ok(Amf0Value::Boolean(self.u8()? != 0)),
            STRING => Ok(Amf0Value::Utf8String(self.short_string()?)),
            LONG_STRING | XML_DOCUMENT => {
                let len = self.u32()? as usize;
                Ok(Amf0Value::Utf8String(self.utf8(len)?))
            }
            OBJECT => Ok(Amf0Value::Object(self.properties(depth)?)),
            TYPED_OBJECT => {
                let _class_name = self.short_string()?;
                Ok(Amf0Value::Object(self.properties(depth)?))
            }
            ECMA_ARRAY => {
                // The count is advisory; the end marker is what real encoders rely on.
                let _count = self.u32()?;
                Ok(Amf0Value::Object(self.properties(depth)?))
            }
            STRICT_ARRAY => {
                let count = self.u32()?;
                // No preallocation from a peer-supplied count; each value consumes input.
                let mut values = Vec::new();
                for _ in 0..count {
                    values.push(self.value(depth + 1)?);
                }
                Ok(Amf0Value::StrictArray(values))
            }
            DATE => {
                let millis = self.f64()?;
                let _timezone = self.u16()?;
                Ok(Amf0Value::Number(millis))
            }
            NULL => Ok(Amf0Value::Null),
            UNDEFINED | UNSUPPORTED => Ok(Amf0Value::Undefined),
            REFERENCE => {
                let _index = self.u16()?;
                Ok(Amf0Value::Undefined)
            }
            other => {
                self.pos -= 1;
                self.fail(format!("unsupported AMF0 marker 0x{other:02x}"))
            }
        }
    }

    fn properties(&mut self, depth: usize) -> Result<HashMap<String, Amf0Value>, AmfError> {
        let mut props = HashMap::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.bytes.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth + 1)?;
            props.insert(key, value);
        }
    }
}

/// Decodes every AMF0 value in `bytes`.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < bytes.len() {
        values.push(reader.value(0)?);
    }
    Ok(values)
}

/// If `bytes` starts with an AMF0 string, returns it and the number of bytes it took.
pub fn leading_string(bytes: &[u8]) -> Option<(String, usize)> {
    let mut reader = Reader { bytes, pos: 0 };
    match reader.u8().ok()? {
        STRING => {
            let s = reader.short_string().ok()?;
            Some((s, reader.pos))
        }
        _ => None,
    }
}

/// An RTMP command message (type 20, or type 17 after its format byte) split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub command_object: Amf0Value,
    pub arguments: Vec<Amf0Value>,
}

impl Command {
    /// The `index`-th argument after the command object, if it is a string.
    pub fn string_arg(&self, index: usize) -> Option<&str> {
        match self.arguments.get(index) {
            Some(Amf0Value::Utf8String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn number_arg(&self, index: usize) -> Option<f64> {
        match self.arguments.get(index) {
            Some(Amf0Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// A property of the command object (the `connect` parameters), if it is a string.
    pub fn object_string(&self, key: &str) -> Option<&str> {
        match &self.command_object {
            Amf0Value::Object(props) => match props.get(key) {
                Some(Amf0Value::Utf8String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn object_number(&self, key: &str) -> Option<f64> {
        match &self.command_object {
            Amf0Value::Object(props) => match props.get(key) {
                Some(Amf0Value::Number(n)) => Some(*n),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Splits a command payload: name, transaction id, command object, then the arguments.
pub fn decode_command(payload: &[u8]) -> Result<Command, AmfError> {
    let mut values = decode_all(payload)?.into_iter();
    let name = match values.next() {
        Some(Amf0Value::Utf8String(s)) => s,
        Some(other) => {
            return Err(AmfError {
                offset: 0,
                reason: format!("command name is {other:?}, not a string"),
            });
        }
        None => {
            return Err(AmfError {
                offset: 0,
                reason: "empty command".to_string(),
            });
        }
    };
    // Some clients omit the transaction id or send null for notifications; treat that as 0.
    let transaction_id = match values.next() {
        Some(Amf0Value::Number(n)) => n,
        _ => 0.0,
    };
    let command_object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command {
        name,
        transaction_id,
        command_object,
        arguments: values.collect(),
    })
}

/// Encodes our own reply values.
pub fn encode(what: &'static str, values: &[Amf0Value]) -> Result<Vec<u8>, ProtocolError> {
    let values = values.to_vec();
    guard(what, || rml_amf0::serialize(&values))?.map_err(|e| ProtocolError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Builds an AMF0 object from `(key, value)` pairs.
pub fn object(pairs: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

pub fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_rml_amf0_encodes() {
        let values = vec![
            string("connect"),
            Amf0Value::Number(1.0),
            object(&[
                ("app", string("live")),
                ("objectEncoding", Amf0Value::Number(0.0)),
            ]),
            Amf0Value::Null,
            Amf0Value::Boolean(true),
            Amf0Value::StrictArray(vec![Amf0Value::Number(2.5), string("x")]),
        ];
        let bytes = encode("test", &values).unwrap();
        assert_eq!(decode_all(&bytes).unwrap(), values);
        let cmd = decode_command(&bytes).unwrap();
        assert_eq!(cmd.name, "connect");
        assert_eq!(cmd.transaction_id, 1.0);
        assert_eq!(cmd.object_string("app"), Some("live"));
        assert_eq!(cmd.arguments.len(), 3);
    }

    #[test]
    fn ecma_array_long_string_and_date() {
        let mut bytes = vec![
            ECMA_ARRAY,
            0,
            0,
            0,
            1,
            0,
            1,
            b'k',
            LONG_STRING,
            0,
            0,
            0,
            2,
            b'h',
            b'i',
        ];
        bytes.extend_from_slice(&[0, 0, OBJECT_END, DATE]);
        bytes.extend_from_slice(&1000f64.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let values = decode_all(&bytes).unwrap();
        assert_eq!(values[0], object(&[("k", string("hi"))]));
        assert_eq!(values[1], Amf0Value::Number(1000.0));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        let err = decode_all(&bytes).unwrap_err();
        assert!(err.reason.contains("nested deeper"), "{err:?}");
    }

    #[test]
    fn truncated_input_reports_offset() {
        let err = decode_all(&[STRING, 0, 10, b'a']).unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(decode_all(&[0x11]).unwrap_err().reason.contains("0x11"));
        assert!(decode_command(&[]).is_err());
    }

    #[test]
    fn leading_string_strips_set_data_frame() {
        let bytes = encode("t", &[string("@setDataFrame"), string("onMetaData")]).unwrap();
        let (s, used) = leading_string(&bytes).unwrap();
        assert_eq!(s, "@setDataFrame");
        assert_eq!(leading_string(&bytes[used..]).unwrap().0, "onMetaData");
        assert_eq!(leading_string(&[NUMBER]), None);
    }
}
