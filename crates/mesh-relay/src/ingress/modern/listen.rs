//! `subscriptions/listen`: the stateless revision's stream of list changes, fed by the pooled
//! session's standalone stream (where an upstream's list changes, and the mesh's own after a
//! policy change, wait for a listener).
//!
//! The stream opens with `notifications/subscriptions/acknowledged` naming what is honoured;
//! every notification carries the listen request's id in `_meta`. The lists the client did not
//! ask about are never sent. Resource subscriptions are not honoured yet (the earlier revision's
//! `resources/subscribe` is not bridged): the acknowledgement leaves them out, as the revision
//! allows. One listener per pooled session: a second `subscriptions/listen` of the same key
//! takes the stream over, and the first one ends with its result.

use super::pool::Pooled;
use super::{refuse, Ask};
use axum::response::Response;
use bytes::Bytes;
use mesh_protocol::{codes, modern, sse, Kind, Message};
use std::time::Duration;

/// Comment lines that keep idle proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(25);

#[derive(serde::Deserialize)]
struct Params {
    notifications: Option<Filter>,
}

#[derive(serde::Deserialize, Default)]
struct Filter {
    #[serde(rename = "toolsListChanged", default)]
    tools: bool,
    #[serde(rename = "promptsListChanged", default)]
    prompts: bool,
    #[serde(rename = "resourcesListChanged", default)]
    resources: bool,
}

impl Filter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        }
    }

    fn honoured(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (on, name) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                out.insert(name.into(), true.into());
            }
        }
        out.into()
    }
}

/// Opens the listen stream of `pooled` for the request `msg`.
pub(super) fn open(pooled: &Pooled, ask: &Ask, msg: &Message) -> Response {
    let Some(filter) = msg.params::<Params>().and_then(|p| p.notifications) else {
        return refuse(&ask.id, codes::INVALID_PARAMS, "params.notifications is required", None);
    };
    let Some((queued, Some(mut live))) = pooled.session.listen(None) else {
        return refuse(&ask.id, codes::INTERNAL_ERROR, "the session cannot be listened to", None);
    };
    let id: serde_json::Value = serde_json::from_str(&ask.id).unwrap_or(serde_json::Value::Null);
    let tag = serde_json::json!({ modern::META_SUBSCRIPTION: id });
    let ack = Message::notification(
        "notifications/subscriptions/acknowledged",
        Some(&serde_json::json!({"notifications": filter.honoured(), "_meta": tag})),
    );
    let session = pooled.session.clone();
    // A copy: the stream outlives the request, whose body a slice would keep.
    let request_id = ask.id.copied();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let relay = |data: &Bytes| -> Option<Bytes> {
            let m = Message::parse(data.clone()).ok()?;
            if m.kind() != Kind::Notification || !filter.wants(m.method()?) {
                return None;
            }
            let mut params: serde_json::Value = m.params().unwrap_or_else(|| serde_json::json!({}));
            let meta = params.as_object_mut()?.entry("_meta").or_insert_with(|| serde_json::json!({}));
            meta.as_object_mut()?.insert(modern::META_SUBSCRIPTION.into(), id.clone());
            Some(frame(Message::notification(m.method()?, Some(&params)).bytes()))
        };
        if tx.send(frame(ack.bytes())).await.is_err() {
            return;
        }
        for ev in &queued {
            if let Some(f) = relay(&ev.data) {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
        }
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = live.recv() => match ev {
                    Some(ev) => {
                        if let Some(f) = relay(&ev.data) {
                            if tx.send(f).await.is_err() {
                                return;
                            }
                        } else if let Ok(m) = Message::parse(ev.data.clone()) {
                            // An upstream request outside any call has no stateless client to ask.
                            if m.kind() == Kind::Request {
                                let no = Message::error(m.id(), codes::METHOD_NOT_FOUND, "no client to ask outside a call", None);
                                let _ = session.reply(&no).await;
                            }
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
        // The stream was taken over or the session ended: the listen request ends gracefully.
        let done = Message::response(&request_id, &serde_json::json!({"resultType": "complete", "_meta": tag}));
        let _ = tx.send(frame(done.bytes())).await;
    });
    super::sse_response(rx)
}

fn frame(data: &[u8]) -> Bytes {
    sse::encode(None, None, std::str::from_utf8(data).unwrap_or(""), None)
}
