//! The RTMP command layer over [`crate::amf0`]: splitting command messages into their parts,
//! and the small builders our replies are made of.
//!
//! Peer bytes are decoded by our bounded AMF0 decoder (see [`crate::amf0`] for why not
//! `rml_amf0`), and our replies are encoded by our encoder, which keeps property order
//! (`fmsVer` before `capabilities`, `level` before `code`, as FMS sends them).

use crate::amf0::{self, Amf0Error, Amf0Value, Decoder, get, marker};

/// If `bytes` starts with an AMF0 (short) string, returns it and the number of bytes it took.
pub fn leading_string(bytes: &[u8]) -> Option<(String, usize)> {
    if bytes.first() != Some(&marker::STRING) {
        return None;
    }
    let mut d = Decoder::new(bytes);
    match d.value() {
        Ok(Amf0Value::String(s)) => Some((s, d.offset())),
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
    fn object_value(&self, key: &str) -> Option<&Amf0Value> {
        get(self.command_object.properties()?, key)
    }

    /// The `index`-th argument after the command object, if it is a string.
    pub fn string_arg(&self, index: usize) -> Option<&str> {
        self.arguments.get(index).and_then(Amf0Value::as_str)
    }

    pub fn number_arg(&self, index: usize) -> Option<f64> {
        self.arguments.get(index).and_then(Amf0Value::as_f64)
    }

    /// A property of the command object (the `connect` parameters), if it is a string.
    pub fn object_string(&self, key: &str) -> Option<&str> {
        self.object_value(key).and_then(Amf0Value::as_str)
    }

    pub fn object_number(&self, key: &str) -> Option<f64> {
        self.object_value(key).and_then(Amf0Value::as_f64)
    }
}

/// Splits a command payload: name, transaction id, command object, then the arguments.
pub fn decode_command(payload: &[u8]) -> Result<Command, Amf0Error> {
    let mut values = amf0::decode_all(payload)?.into_iter();
    let name = match values.next() {
        Some(Amf0Value::String(s)) => s,
        Some(other) => {
            return Err(Amf0Error {
                offset: 0,
                reason: format!("command name is {other:?}, not a string"),
            });
        }
        None => {
            return Err(Amf0Error {
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
pub fn encode(values: &[Amf0Value]) -> Vec<u8> {
    amf0::encode_all(values)
}

/// Builds an AMF0 object from `(key, value)` pairs, in that order.
pub fn object(pairs: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

pub fn string(s: &str) -> Amf0Value {
    Amf0Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_command() {
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
        let bytes = encode(&values);
        let cmd = decode_command(&bytes).unwrap();
        assert_eq!(cmd.name, "connect");
        assert_eq!(cmd.transaction_id, 1.0);
        assert_eq!(cmd.object_string("app"), Some("live"));
        assert_eq!(cmd.object_number("objectEncoding"), Some(0.0));
        assert_eq!(cmd.object_string("objectEncoding"), None);
        assert_eq!(cmd.arguments, values[3..]);
        assert_eq!(cmd.string_arg(0), None);
    }

    #[test]
    fn command_object_may_be_an_ecma_array_and_arguments_long_strings() {
        let mut bytes = encode(&[
            string("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::EcmaArray(vec![("app".into(), string("live"))]),
        ]);
        bytes.extend_from_slice(&[marker::LONG_STRING, 0, 0, 0, 3]);
        bytes.extend_from_slice(b"key");
        let cmd = decode_command(&bytes).unwrap();
        assert_eq!(cmd.object_string("app"), Some("live"));
        assert_eq!(cmd.string_arg(0), Some("key"));
    }

    #[test]
    fn missing_transaction_id_is_zero_and_bad_names_fail() {
        let cmd = decode_command(&encode(&[string("onBWDone")])).unwrap();
        assert_eq!(
            (cmd.transaction_id, cmd.command_object),
            (0.0, Amf0Value::Null)
        );
        assert!(decode_command(&[]).is_err());
        let e = decode_command(&encode(&[Amf0Value::Number(1.0)])).unwrap_err();
        assert!(e.reason.contains("not a string"), "{e}");
        let e = decode_command(&[marker::STRING, 0, 10, b'a']).unwrap_err();
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn leading_string_strips_set_data_frame() {
        let bytes = encode(&[string("@setDataFrame"), string("onMetaData")]);
        let (s, used) = leading_string(&bytes).unwrap();
        assert_eq!(s, "@setDataFrame");
        assert_eq!(leading_string(&bytes[used..]).unwrap().0, "onMetaData");
        assert_eq!(leading_string(&[marker::NUMBER]), None);
        assert_eq!(leading_string(&[marker::STRING, 0, 5, b'a']), None);
    }
}
