//! The legacy HTTP+SSE transport (MCP 2024-11-05), as a client of the upstream.
//!
//! GET the SSE endpoint; the first `endpoint` event names the URL to POST messages to; every
//! server message then arrives as a `message` event on that one stream. The stream is the session:
//! when it ends, the upstream session is gone, so the link reports `Down` and later sends fail.

use super::{header_map, Inbound, InboundSink, Transport};
use crate::RelayError;
use bytes::Bytes;
use futures_util::StreamExt;
use mesh_protocol::{sse, Message};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the upstream may take to name its POST endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(15);
/// Messages kept while waiting for the endpoint event (a server names it first; a few early
/// ones are tolerated and delivered after). More is a broken or hostile upstream.
const MAX_EARLY: usize = 64;

/// A link to a legacy SSE upstream.
pub struct SseLink {
    name: String,
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: url::Url,
    down: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseLink {
    /// Opens the event stream and waits for the endpoint event.
    pub async fn connect(
        name: &str,
        client: reqwest::Client,
        url: url::Url,
        headers: &[(String, mesh_core::Secret<String>)],
        sink: Arc<dyn InboundSink>,
    ) -> Result<SseLink, RelayError> {
        let headers = header_map(name, headers)?;
        let resp = client
            .get(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| super::http::unreachable(name, e))?;
        if !resp.status().is_success() {
            return Err(RelayError::UpstreamFailed {
                cause: crate::Cause::Status(resp.status().as_u16()),
                detail: format!("{name}: SSE endpoint answered HTTP {}", resp.status()),
            });
        }
        let mut body = resp.bytes_stream();
        let mut decoder = sse::Decoder::new();
        let mut early = Vec::new();
        let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| super::http::unreachable(name, e))?;
                let events = decoder.push(&chunk).map_err(|e| RelayError::UpstreamProtocol(e.to_string()))?;
                let mut found = None;
                for ev in events {
                    if ev.event == "endpoint" && found.is_none() {
                        found = Some(ev.data);
                    } else if early.len() < MAX_EARLY {
                        early.push(ev);
                    } else {
                        return Err(RelayError::UpstreamProtocol(format!(
                            "{name}: more than {MAX_EARLY} events before the endpoint event"
                        )));
                    }
                }
                if let Some(data) = found {
                    return Ok(data);
                }
            }
            Err(RelayError::UpstreamProtocol(format!("{name}: SSE stream ended before naming an endpoint")))
        })
        .await
        .map_err(|_| RelayError::UpstreamProtocol(format!("{name}: no endpoint event within {ENDPOINT_WAIT:?}")))??;
        let endpoint = url
            .join(endpoint.trim())
            .map_err(|_| RelayError::UpstreamProtocol(format!("{name}: invalid endpoint URL")))?;
        // Never POST credentials to a host the operator did not configure.
        if endpoint.origin() != url.origin() {
            return Err(RelayError::UpstreamProtocol(format!("{name}: endpoint is on another origin; refused")));
        }
        let down = Arc::new(AtomicBool::new(false));
        let (down2, name2) = (down.clone(), name.to_string());
        let reader = tokio::spawn(async move {
            let deliver = |ev: sse::Event| {
                if ev.event.is_empty() || ev.event == "message" {
                    match Message::parse(Bytes::from(ev.data)) {
                        Ok(msg) => sink.deliver(Inbound::Message { msg, related: None }),
                        Err(e) => {
                            tracing::warn!(connection = %name2, error = %e, "non-JSON-RPC SSE event dropped")
                        }
                    }
                }
            };
            early.into_iter().for_each(deliver);
            let mut reason = "the upstream closed its SSE stream".to_string();
            while let Some(chunk) = body.next().await {
                match chunk
                    .map_err(|e| e.without_url().to_string())
                    .and_then(|c| decoder.push(&c).map_err(|e| e.to_string()))
                {
                    Ok(events) => events.into_iter().for_each(deliver),
                    Err(e) => {
                        reason = format!("the upstream's SSE stream failed: {e}");
                        break;
                    }
                }
            }
            down2.store(true, Ordering::Release);
            crate::stats::upstream_failed();
            sink.deliver(Inbound::Down { reason: format!("{name2}: {reason}") });
        });
        Ok(SseLink { name: name.to_string(), client, headers, endpoint, down, reader })
    }
}

#[async_trait::async_trait]
impl Transport for SseLink {
    async fn send(&self, msg: Message) -> Result<(), RelayError> {
        if self.down.load(Ordering::Acquire) {
            return Err(RelayError::UpstreamUnavailable(format!("{}: the SSE session has ended", self.name)));
        }
        let resp = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(msg.bytes().clone())
            .send()
            .await
            .map_err(|e| super::http::unreachable(&self.name, e))?;
        if !resp.status().is_success() {
            return Err(RelayError::UpstreamFailed {
                cause: crate::Cause::Status(resp.status().as_u16()),
                detail: format!("{}: POST answered HTTP {}", self.name, resp.status()),
            });
        }
        Ok(())
    }

    async fn close(&self) {
        self.down.store(true, Ordering::Release);
        self.reader.abort();
    }
}

impl Drop for SseLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
