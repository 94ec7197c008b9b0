//! The observed mesh (#20): a second mesh process with tracing on and its metrics scraped, so
//! that the cost of telemetry is a row of its own next to the plain mesh's.
//!
//! It exports every span (100% sampling) over OTLP/HTTP to [`Sink`], a collector stand-in in this
//! process that reads each export and answers 200 (what a healthy collector does; decoding is
//! the collector's cost, not the mesh's), and `/metrics` is scraped once a second, as Prometheus
//! would. Its CPU is measured for its own slices exactly as the plain mesh's.

use crate::processes::{MeshBin, MeshProcess};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The bearer token the observed mesh's `/metrics` asks for.
const METRICS_TOKEN: &str = "bench-metrics";

/// A loopback OTLP/HTTP endpoint that takes every export and answers an empty success.
pub struct Sink {
    /// `http://127.0.0.1:PORT/v1/traces`.
    pub url: String,
    /// Exports received.
    pub exports: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1/traces", listener.local_addr()?);
        let exports = Arc::new(AtomicU64::new(0));
        let counted = exports.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &counted).await;
                });
            }
        });
        Ok(Sink { url, exports, task })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP/1.1 keep-alive: each request's head and `Content-Length` body read, then `200`.
async fn serve(conn: tokio::net::TcpStream, exports: &AtomicU64) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        read.read_exact(&mut body).await?;
        exports.fetch_add(1, Ordering::Relaxed);
        write
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

/// The observed mesh's extra environment: traces to `sink`, metrics behind a token.
pub fn env(sink: &Sink) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", sink.url.as_str()),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("MESH_METRICS_TOKEN", METRICS_TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Starts the observed mesh on `data_dir`.
pub async fn start(bin: &MeshBin, data_dir: &std::path::Path, sink: &Sink) -> anyhow::Result<MeshProcess> {
    MeshProcess::start_with(bin, data_dir, &env(sink)).await
}

/// Scrapes `mesh`'s `/metrics` once a second until stopped; counts the scrapes that succeeded.
pub struct Scraper {
    running: Arc<AtomicBool>,
    /// Successful scrapes.
    pub scrapes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Scraper {
    /// Starts scraping.
    pub fn start(mesh: &MeshProcess) -> Scraper {
        let running = Arc::new(AtomicBool::new(true));
        let scrapes = Arc::new(AtomicU64::new(0));
        let url = mesh.url("/metrics");
        let (r, s) = (running.clone(), scrapes.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while r.load(Ordering::Relaxed) {
                if let Ok(resp) = http.get(url.clone()).bearer_auth(METRICS_TOKEN).send().await {
                    if resp.status().is_success() && resp.bytes().await.is_ok() {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Scraper { running, scrapes, task }
    }

    /// Stops scraping; returns how many scrapes succeeded.
    pub async fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        self.scrapes.load(Ordering::Relaxed)
    }
}
