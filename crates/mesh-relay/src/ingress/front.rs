//! The mesh's HTTP service, in front of its axum router: `/mcp/{connection}` and
//! `/mcp/gateway/{gateway}` go straight to the relay's handlers, everything else through the router.
//!
//! Why: a call through `Router` pays for route matching, a map of URL parameters inserted into
//! the request's extensions, boxed service layers and a content-length pass — ~4,500
//! instructions per call, more than authentication and the JSON-RPC parse together
//! (docs/PERFORMANCE.md, fix 14). Only a plain segment takes the shortcut; a path the router
//! might read differently (percent escapes, more segments, an empty name) still goes through it,
//! so both ways answer alike.

use super::streamable_http::{dispatch, Target};
use super::Relay;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use futures_util::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The service `axum::serve` runs: the shortcut, else `router` (which also has the relay's routes).
#[derive(Clone)]
pub struct Front {
    relay: Arc<Relay>,
    router: Router,
}

impl Front {
    /// `router` must be the mesh's whole router, the relay's routes included.
    pub fn new(relay: Arc<Relay>, router: Router) -> Front {
        Front { relay, router }
    }
}

/// What a path names, when the router would give that handler exactly this segment.
#[derive(Debug, PartialEq)]
enum Shortcut<'a> {
    Connection(&'a str),
    Gateway(&'a str),
}

fn shortcut(path: &str) -> Option<Shortcut<'_>> {
    let plain = |s: &str| !s.is_empty() && !s.contains(['/', '%']);
    let rest = path.strip_prefix("/mcp/")?;
    match rest.strip_prefix("gateway/") {
        Some(gateway) => plain(gateway).then_some(Shortcut::Gateway(gateway)),
        None => plain(rest).then_some(Shortcut::Connection(rest)),
    }
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<BoxFuture<'static, Result<Response, Infallible>>, axum::routing::future::RouteFuture<Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let target = match shortcut(req.uri().path()) {
            Some(Shortcut::Connection(route)) => Target::Route(route.to_string()),
            Some(Shortcut::Gateway(gateway)) => Target::Gateway(gateway.to_string()),
            None => return Either::Right(self.router.call(req)),
        };
        let relay = self.relay.clone();
        Either::Left(Box::pin(async move { Ok(dispatch(relay, target, req).await) }))
    }
}

#[cfg(test)]
mod tests {
    use super::{shortcut, Shortcut};

    #[test]
    fn only_a_plain_segment_takes_the_shortcut() {
        assert_eq!(shortcut("/mcp/github"), Some(Shortcut::Connection("github")));
        assert_eq!(shortcut("/mcp/conn_2xkT9"), Some(Shortcut::Connection("conn_2xkT9")));
        assert_eq!(shortcut("/mcp/gateway/team"), Some(Shortcut::Gateway("team")));
        // The router's `/mcp/{route}` matches this too, with the same segment.
        assert_eq!(shortcut("/mcp/gateway"), Some(Shortcut::Connection("gateway")));
        for path in [
            "/mcp",
            "/mcp/",
            "/mcp/gateway/",
            "/mcp/gateway/a/b",
            "/mcp/gateway/te%61m",
            "/mcp/a/b",
            "/mcp/git%68ub",
            "/api/v1/audit",
            "/mcpx/a",
        ] {
            assert_eq!(shortcut(path), None, "{path} goes through the router");
        }
    }
}
