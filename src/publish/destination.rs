//! Where published files go: `s3://bucket/prefix` or `file:///dir`, parsed from text. Pure.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    S3 { bucket: String, prefix: String },
    Dir(PathBuf),
}

impl Destination {
    pub fn parse(text: &str) -> Result<Destination, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{text:?}: no bucket name (use s3://bucket/prefix)"));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{text:?}: a file destination needs an absolute path (file:///dir)"
                ));
            }
            return Ok(Destination::Dir(PathBuf::from(path)));
        }
        Err(format!(
            "{text:?}: unknown destination (use s3://bucket/prefix or file:///dir)"
        ))
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Destination::Dir(dir) => write!(f, "file://{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            Destination::parse("s3://b/rec/x/").unwrap(),
            Destination::S3 {
                bucket: "b".into(),
                prefix: "rec/x".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://b").unwrap(),
            Destination::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Destination::parse("file:///srv/out").unwrap(),
            Destination::Dir("/srv/out".into())
        );
        assert!(Destination::parse("s3:///x").is_err());
        assert!(Destination::parse("file://rel").is_err());
        assert!(Destination::parse("http://x").is_err());
    }
}
