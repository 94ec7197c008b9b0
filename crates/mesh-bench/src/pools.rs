//! The load phase's sessions: for every path, as many initialised sessions as the highest
//! concurrency, opened once and reused by every round (so no slice measures a handshake).

use crate::client::{self, Call, HttpSession, Session, StdioSession};
use crate::gateway;
use crate::processes::{MeshProcess, UpstreamProcess};
use crate::report::Path;
use crate::run::{stdio_args, RunConfig, HTTP_CONNECTION, STDIO_CONNECTION};
use futures_util::{stream, StreamExt, TryStreamExt};
use std::collections::HashMap;

/// Open sessions by path.
pub struct Pools {
    /// `tools/call` sessions; a path the mesh does not offer has none.
    pub call: HashMap<Path, Vec<Session>>,
    /// One session on the 50-member gateway, for `tools/list`.
    pub list_gateway: Option<Vec<Session>>,
    /// Why the gateway paths are missing, if they are.
    pub gateway_na: Option<String>,
    /// Why the OAuth path is missing (a mesh without OAuth), if it is.
    pub oauth_na: Option<String>,
    /// Why the capability path is missing (a mesh without capability connections), if it is.
    pub capability_na: Option<String>,
}

impl Pools {
    /// Opens `n` sessions on every path the mesh offers.
    pub async fn open(
        cfg: &RunConfig,
        upstream: &UpstreamProcess,
        relay: &UpstreamProcess,
        mesh: &MeshProcess,
        n: usize,
    ) -> anyhow::Result<Pools> {
        let direct_http = client::http_client();
        let relay_http = client::http_client();
        let mesh_http = client::http_client();
        let key = Some(mesh.key.as_str());
        let mut call = HashMap::new();
        call.insert(Path::Direct, http_pool(&direct_http, &upstream.url, None, n).await?);
        call.insert(Path::Bare, http_pool(&relay_http, &relay.url, None, n).await?);
        let mesh_url = mesh.url(&format!("/mcp/{HTTP_CONNECTION}"));
        call.insert(Path::Mesh, http_pool(&mesh_http, &mesh_url, key, n).await?);
        // Its own HTTP client too; its upstream session is the mesh's, pooled for the key.
        let stateless_http = client::http_client();
        let stateless = (0..n)
            .map(|_| HttpSession::stateless(&stateless_http, &mesh_url, key).map(Session::Http))
            .collect::<anyhow::Result<Vec<_>>>()?;
        call.insert(Path::MeshStateless, stateless);
        let oauth_na = match crate::oauth::token(mesh, mesh_url.as_str()).await? {
            Ok(token) => {
                // Its own HTTP client: the two rows never share a connection pool.
                let oauth_http = client::http_client();
                call.insert(Path::MeshOauth, http_pool(&oauth_http, &mesh_url, Some(&token), n).await?);
                None
            }
            Err(why) => Some(why),
        };
        let (list_gateway, gateway_na) = match gateway::create(mesh, upstream).await? {
            Ok((call_url, list_url)) => {
                call.insert(Path::Gateway, http_pool(&mesh_http, &call_url, key, n).await?);
                // Its own HTTP client: the row is compared with the gateway's in the same run.
                for (path, slug, strategy) in [
                    (Path::SmartCall, gateway::SMART_GATEWAY, "smart"),
                    (Path::CodeCall, gateway::CODE_GATEWAY, "code"),
                ] {
                    if let Some(url) = gateway::create_with_strategy(mesh, slug, strategy).await? {
                        let http = client::http_client();
                        call.insert(path, http_pool(&http, &url, key, n).await?);
                    }
                }
                (Some(http_pool(&mesh_http, &list_url, key, 1).await?), None)
            }
            Err(why) => (None, Some(why)),
        };
        let capability_na = match crate::capability::create(mesh, upstream).await? {
            Ok(url) => {
                let capability_http = client::http_client();
                call.insert(Path::Capability, http_pool(&capability_http, &url, key, n).await?);
                None
            }
            Err(why) => Some(why),
        };
        let stdio_url = mesh.url(&format!("/mcp/{STDIO_CONNECTION}"));
        call.insert(Path::StdioMesh, http_pool(&mesh_http, &stdio_url, key, n).await?);
        let args = stdio_args(cfg);
        let stdio: Vec<Session> = stream::iter(0..n)
            .map(|_| StdioSession::open(&cfg.bench_exe, &args))
            .buffer_unordered(8)
            .map_ok(Session::Stdio)
            .try_collect()
            .await?;
        call.insert(Path::StdioDirect, stdio);
        Ok(Pools { call, list_gateway, gateway_na, oauth_na, capability_na })
    }

    /// Opens `n` sessions on the observed mesh's `/mcp/{connection}` (`observed.rs`).
    pub async fn open_observed(&mut self, observed: &MeshProcess, n: usize) -> anyhow::Result<()> {
        let http = client::http_client();
        let url = observed.url(&format!("/mcp/{HTTP_CONNECTION}"));
        self.call.insert(Path::MeshObserved, http_pool(&http, &url, Some(observed.key.as_str()), n).await?);
        Ok(())
    }

    /// The `tools/call` each path makes: the echo tool, under its prefix through the gateway.
    pub fn tool_call(path: Path) -> Call {
        match path {
            Path::Gateway => Call::Tool(gateway::CALL_TOOL),
            Path::SmartCall => Call::ViaCallTool(gateway::CALL_TOOL),
            Path::CodeCall => Call::ViaRunCode(gateway::CALL_TOOL),
            _ => client::ECHO,
        }
    }

    /// The sessions `tools/list` uses on `path`: the 50-member gateway's for the gateway.
    pub fn for_list(&mut self, path: Path) -> Option<&mut Vec<Session>> {
        match path {
            Path::Gateway => self.list_gateway.as_mut(),
            p => self.call.get_mut(&p),
        }
    }

    /// Sessions open through the mesh.
    pub fn through_mesh(&self) -> usize {
        let n = |p| self.call.get(&p).map_or(0, Vec::len);
        n(Path::Mesh)
            + n(Path::MeshOauth)
            + n(Path::Gateway)
            + n(Path::SmartCall)
            + n(Path::CodeCall)
            + n(Path::Capability)
            + n(Path::StdioMesh)
            + self.list_gateway.as_ref().map_or(0, Vec::len)
    }

    /// Ends every session.
    pub async fn close(self) {
        let all = self.call.into_values().chain(self.list_gateway).flatten();
        stream::iter(all).for_each_concurrent(16, |s| s.close()).await;
    }
}

async fn http_pool(
    http: &reqwest::Client,
    url: &url::Url,
    token: Option<&str>,
    n: usize,
) -> anyhow::Result<Vec<Session>> {
    stream::iter(0..n)
        .map(|_| async move { HttpSession::open(http, url, token).await.map(Session::Http) })
        .buffer_unordered(8)
        .try_collect()
        .await
}
