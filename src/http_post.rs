//! A plain `http://` JSON POST over one fresh connection (hyper's own client API over a tokio
//! socket), shared by the publish hook (`ingest::hook`) and the event webhook (`events`). Each
//! call is its own connection and the caller bounds it with a timeout: dropping the future ends
//! the request and the connection together, so nothing outlives the call.

use anyhow::{Context, Result, bail};
use axum::http::{Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where a POST goes: an `http://` URL, checked once when the option is read.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    host: String,
    port: u16,
}

impl Target {
    /// Reads `url`, the value of `option` (named in the errors).
    pub fn parse(option: &str, url: &str) -> Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{option} {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!(
                "{option} {url:?}: only http:// URLs are supported (run the receiver beside the recorder, or a TLS proxy there)"
            );
        }
        let host = uri
            .host()
            .with_context(|| format!("{option} {url:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        Ok(Target { uri, host, port })
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// POSTs `body` as `application/json` and reads at most `max_answer` bytes of the answer.
    pub async fn post_json(&self, body: Bytes, max_answer: usize) -> Result<(StatusCode, Bytes)> {
        let socket = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}", self.uri))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
            .await
            .context("HTTP handshake")?;
        // The connection is driven beside the request; dropping this future (the caller's
        // timeout) ends both.
        let driven = async {
            let path = self
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let authority = self
                .uri
                .authority()
                .map_or(String::new(), |a| a.to_string());
            let request = Request::post(path)
                .header(header::HOST, authority)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONNECTION, "close")
                .body(Full::new(body))
                .context("building the request")?;
            let response = sender
                .send_request(request)
                .await
                .context("sending the request")?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), max_answer)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
                .to_bytes();
            anyhow::Ok((status, bytes))
        };
        tokio::pin!(connection);
        tokio::pin!(driven);
        tokio::select! {
            r = &mut driven => r,
            c = &mut connection => {
                c.with_context(|| format!("HTTP connection to {}", self.uri))?;
                // The connection ended cleanly; the answer may be complete already.
                driven.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls() {
        assert!(Target::parse("--webhook", "http://127.0.0.1:8080/auth").is_ok());
        let e = Target::parse("--webhook", "https://auth.example/").unwrap_err();
        assert!(format!("{e:#}").contains("--webhook"));
        assert!(Target::parse("--webhook", "not a url").is_err());
    }
}
