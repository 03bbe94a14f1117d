//! One publisher connection, shaped like ffmpeg's: TCP connect, RTMP handshake, connect,
//! releaseStream + FCPublish, createStream + publish, `@setDataFrame onMetaData`, then every
//! audio/video tag (paced by its timestamp in real-time mode), then FCUnpublish + deleteStream and
//! a half-close; it waits for the server to close so the server has read everything before the
//! run's clock stops. rml_rtmp's client session produces the bytes, except for the three
//! FC/release commands it does not know (see [`side_command`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

use crate::source::Source;

const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Large enough that full speed sends big writes, small enough to stay well under socket buffers.
const WRITE_BUFFER: usize = 256 * 1024;

/// Where to publish: `rtmp://host[:port]/app`.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: String,
    pub app: String,
    pub tc_url: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| anyhow!("{url:?}: expected rtmp://host[:port]/app"))?;
        let (authority, app) = rest
            .split_once('/')
            .ok_or_else(|| anyhow!("{url:?}: no application name after the host"))?;
        let app = app.trim_end_matches('/');
        if authority.is_empty() || app.is_empty() {
            bail!("{url:?}: expected rtmp://host[:port]/app");
        }
        let address = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:1935")
        };
        Ok(Target {
            address,
            app: app.to_string(),
            tc_url: format!("rtmp://{authority}/{app}"),
        })
    }
}

pub struct Plan {
    pub source: Arc<Source>,
    pub repeat: u32,
    pub realtime: bool,
}

/// What one publisher did; counters are kept even when the stream failed part-way.
#[derive(Debug, Default)]
pub struct StreamReport {
    pub key: String,
    pub bytes_sent: u64,
    pub tags_sent: u64,
    pub frames_sent: u64,
    /// Real-time mode: the furthest a tag went out behind its due time.
    pub max_lag: Duration,
    pub elapsed: Duration,
    pub error: Option<String>,
}

pub async fn publish(target: Arc<Target>, key: String, plan: Arc<Plan>) -> StreamReport {
    let started = Instant::now();
    let mut report = StreamReport {
        key: key.clone(),
        ..StreamReport::default()
    };
    if let Err(e) = run(&target, &key, &plan, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    report.elapsed = started.elapsed();
    report
}

async fn run(target: &Target, key: &str, plan: &Plan, report: &mut StreamReport) -> Result<()> {
    let (stream, mut session) = timeout(SETUP_TIMEOUT, setup(target, key, plan, report))
        .await
        .map_err(|_| anyhow!("{key}: no publish within {SETUP_TIMEOUT:?}"))??;

    let (mut reader, writer) = stream.into_split();
    // The server's acks and pings are read and dropped: a publisher needs none of them, and
    // feeding them to the session would interleave its replies with the media we are writing.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    });
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);

    let sent = send_media(&mut session, &mut writer, plan, report).await;
    let sent = match sent {
        Ok(()) => finish(key, &mut session, &mut writer, report).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        drain.abort();
        return Err(e.context(format!("{key}: sending media")));
    }
    match timeout(CLOSE_TIMEOUT, drain).await {
        Err(_) => bail!("{key}: server kept the connection open {CLOSE_TIMEOUT:?} after our FIN"),
        Ok(Err(e)) => bail!("{key}: reader task: {e}"),
        Ok(Ok(Err(e))) => Err(anyhow!(e).context(format!("{key}: reading after publish"))),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

async fn setup(
    target: &Target,
    key: &str,
    plan: &Plan,
    report: &mut StreamReport,
) -> Result<(TcpStream, ClientSession)> {
    let mut stream = TcpStream::connect(&target.address)
        .await
        .with_context(|| format!("{key}: connecting to {}", target.address))?;
    stream.set_nodelay(true)?;
    let leftover = handshake(&mut stream, report)
        .await
        .with_context(|| format!("{key}: handshake"))?;

    let mut config = ClientSessionConfig::new();
    config.chunk_size = 4096;
    config.tc_url = Some(target.tc_url.clone());
    let (mut session, initial) = ClientSession::new(config).map_err(|e| anyhow!("{e:?}"))?;
    let mut conn = Conn {
        stream,
        buf: vec![0u8; 16 * 1024],
    };
    conn.send_results(initial, report).await?;

    let r = session
        .request_connection(target.app.clone())
        .map_err(|e| anyhow!("{e:?}"))?;
    conn.send_results(vec![r], report).await?;
    conn.await_event(&mut session, leftover, report, |e| match e {
        ClientSessionEvent::ConnectionRequestAccepted => Some(Ok(())),
        ClientSessionEvent::ConnectionRequestRejected { description } => {
            Some(Err(anyhow!("connect rejected: {description}")))
        }
        _ => None,
    })
    .await
    .with_context(|| format!("{key}: connect to app {:?}", target.app))?;

    // What ffmpeg and OBS send before createStream; servers answer or ignore them.
    for (name, txn) in [("releaseStream", 1001.0), ("FCPublish", 1002.0)] {
        conn.write(&side_command(name, txn, key)?, report).await?;
    }
    let r = session
        .request_publishing(key.to_string(), PublishRequestType::Live)
        .map_err(|e| anyhow!("{e:?}"))?;
    conn.send_results(vec![r], report).await?;
    conn.await_event(&mut session, Vec::new(), report, |e| match e {
        ClientSessionEvent::PublishRequestAccepted => Some(Ok(())),
        ClientSessionEvent::UnhandleableOnStatusCode { code } => {
            Some(Err(anyhow!("publish refused: {code}")))
        }
        _ => None,
    })
    .await
    .with_context(|| format!("{key}: publish"))?;

    let r = session
        .publish_metadata(&plan.source.metadata)
        .map_err(|e| anyhow!("{e:?}"))?;
    conn.send_results(vec![r], report).await?;
    Ok((conn.stream, session))
}

async fn handshake(stream: &mut TcpStream, report: &mut StreamReport) -> Result<Vec<u8>> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| anyhow!("{e:?}"))?;
    stream.write_all(&p0p1).await?;
    report.bytes_sent += p0p1.len() as u64;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| anyhow!("{e:?}"))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await?;
                report.bytes_sent += response_bytes.len() as u64;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream.write_all(&response_bytes).await?;
                report.bytes_sent += response_bytes.len() as u64;
                return Ok(remaining_bytes);
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8], report: &mut StreamReport) -> Result<()> {
        self.stream.write_all(bytes).await?;
        report.bytes_sent += bytes.len() as u64;
        Ok(())
    }

    async fn send_results(
        &mut self,
        results: Vec<ClientSessionResult>,
        report: &mut StreamReport,
    ) -> Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => {
                    self.stream.write_all(&p.bytes).await?;
                    report.bytes_sent += p.bytes.len() as u64;
                }
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Feeds server bytes to the session (answering what it answers) until `want` decides.
    async fn await_event(
        &mut self,
        session: &mut ClientSession,
        mut input: Vec<u8>,
        report: &mut StreamReport,
        want: impl Fn(&ClientSessionEvent) -> Option<Result<()>>,
    ) -> Result<()> {
        loop {
            if !input.is_empty() {
                let results = session
                    .handle_input(&input)
                    .map_err(|e| anyhow!("server sent something we cannot parse: {e:?}"))?;
                for event in self.send_results(results, report).await? {
                    if let Some(outcome) = want(&event) {
                        return outcome;
                    }
                }
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                bail!("server closed the connection");
            }
            input = self.buf[..n].to_vec();
        }
    }
}

async fn send_media(
    session: &mut ClientSession,
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    plan: &Plan,
    report: &mut StreamReport,
) -> Result<()> {
    let source = &plan.source;
    let start = Instant::now();
    for pass in 0..plan.repeat {
        let offset = pass.wrapping_mul(source.period_ms);
        for tag in &source.tags {
            // An encoder sends its codec configuration once; later passes continue the stream.
            if pass > 0 && tag.sequence_header {
                continue;
            }
            let ts = tag.timestamp.wrapping_add(offset);
            if plan.realtime {
                let due = start + Duration::from_millis(u64::from(ts));
                let now = Instant::now();
                if due > now {
                    writer.flush().await?;
                    sleep_until(due).await;
                } else {
                    report.max_lag = report.max_lag.max(now - due);
                }
            }
            let packet = if tag.video {
                session.publish_video_data(tag.data.clone(), RtmpTimestamp::new(ts), false)
            } else {
                session.publish_audio_data(tag.data.clone(), RtmpTimestamp::new(ts), false)
            }
            .map_err(|e| anyhow!("serializing tag at {ts} ms: {e:?}"))?;
            let ClientSessionResult::OutboundResponse(packet) = packet else {
                bail!("rml_rtmp returned no packet for a media tag");
            };
            writer.write_all(&packet.bytes).await?;
            report.bytes_sent += packet.bytes.len() as u64;
            report.tags_sent += 1;
            if tag.media_frame {
                report.frames_sent += 1;
            }
        }
    }
    Ok(())
}

async fn finish(
    key: &str,
    session: &mut ClientSession,
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    report: &mut StreamReport,
) -> Result<()> {
    let fc_unpublish = side_command("FCUnpublish", 1003.0, key)?;
    writer.write_all(&fc_unpublish).await?;
    report.bytes_sent += fc_unpublish.len() as u64;
    for r in session
        .stop_publishing()
        .map_err(|e| anyhow!("deleteStream: {e:?}"))?
    {
        if let ClientSessionResult::OutboundResponse(p) = r {
            writer.write_all(&p.bytes).await?;
            report.bytes_sent += p.bytes.len() as u64;
        }
    }
    writer.flush().await?;
    writer.shutdown().await?;
    Ok(())
}

/// Chunk stream for the commands rml_rtmp's client cannot send (releaseStream, FCPublish,
/// FCUnpublish). rml_rtmp uses 2 to 6; a stream of our own with full (type 0) headers never
/// disturbs its header compression.
const SIDE_CSID: u8 = 8;

/// One AMF0 command on message stream 0, as a single type-0 chunk: `name`, transaction id,
/// null command object, stream key. Transaction ids above rml_rtmp's own keep any `_result`
/// from being taken for the answer to one of its requests.
fn side_command(name: &str, transaction_id: f64, key: &str) -> Result<Vec<u8>> {
    use rml_amf0::Amf0Value;
    let body = rml_amf0::serialize(&vec![
        Amf0Value::Utf8String(name.to_string()),
        Amf0Value::Number(transaction_id),
        Amf0Value::Null,
        Amf0Value::Utf8String(key.to_string()),
    ])
    .map_err(|e| anyhow!("encoding {name}: {e:?}"))?;
    // Sent only after connect, by when the session has raised our chunk size to 4096.
    if body.len() > 4096 {
        bail!(
            "{name}: stream key too long for one chunk ({} bytes)",
            body.len()
        );
    }
    let len = (body.len() as u32).to_be_bytes();
    let mut chunk = vec![SIDE_CSID, 0, 0, 0, len[1], len[2], len[3], 20, 0, 0, 0, 0];
    chunk.extend_from_slice(&body);
    Ok(chunk)
}
