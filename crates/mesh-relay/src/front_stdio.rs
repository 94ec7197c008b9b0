//! `mcp-mesh stdio`: a stdio front for desktop clients that cannot speak HTTP.
//!
//! Lines from stdin go to the mesh endpoint over Streamable HTTP unchanged (the mesh remaps ids
//! itself); everything the endpoint sends — replies, notifications, server→client requests —
//! is written to stdout, one message per line. Diagnostics go to stderr only.

use crate::upstream::http::HttpLink;
use crate::upstream::{Inbound, InboundSink, Transport};
use crate::RelayError;
use bytes::Bytes;
use mesh_core::Secret;
use mesh_protocol::{codes, Kind, Message};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

struct StdoutSink(mpsc::UnboundedSender<Bytes>);

impl InboundSink for StdoutSink {
    fn deliver(&self, inbound: Inbound) {
        match inbound {
            Inbound::Message { msg, .. } => {
                let _ = self.0.send(msg.bytes().clone());
            }
            Inbound::StreamLost { request, reason } => {
                let e = Message::error(Some(&request), codes::UPSTREAM_UNAVAILABLE, &reason, None);
                let _ = self.0.send(e.bytes().clone());
            }
            Inbound::Refused { request, error, .. } => {
                let _ = self.0.send(error.to_message(Some(&request)).bytes().clone());
            }
            Inbound::Down { reason } => tracing::warn!("{reason}"),
            Inbound::Up => {}
        }
    }
}

/// Relays between this process's stdin/stdout and the endpoint at `url` until stdin closes.
pub async fn run(url: url::Url, key: Secret<String>, http: reqwest::Client) -> Result<(), RelayError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(&line).await.is_err() || out.write_all(b"\n").await.is_err() || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    let headers = vec![("Authorization".to_string(), Secret::new(format!("Bearer {}", key.expose())))];
    let link = HttpLink::new("mesh", http, url, crate::Reach::Any, &headers, None, Arc::new(StdoutSink(tx.clone())))?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let msg = match Message::parse(Bytes::from(line)) {
            Ok(m) => m,
            Err(e) => {
                let code = if matches!(e, mesh_protocol::ParseError::NotJson(_)) {
                    codes::PARSE_ERROR
                } else {
                    codes::INVALID_REQUEST
                };
                let _ = tx.send(Message::error(None, code, &e.to_string(), None).bytes().clone());
                continue;
            }
        };
        if let Err(e) = link.send(msg.clone()).await {
            tracing::warn!(error = %e, "could not reach the mesh");
            if msg.kind() == Kind::Request {
                let _ = tx.send(e.to_message(msg.id()).bytes().clone());
            }
        }
    }
    link.close().await;
    drop(tx);
    // The link's sink holds a sender too; give queued output a moment to flush, bounded.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    Ok(())
}
