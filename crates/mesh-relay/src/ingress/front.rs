//! The mesh's HTTP service, in front of its axum router: `/mcp/{connection}` goes straight to the
//! relay's handler, everything else through the router.
//!
//! Why: a call through `Router` pays for route matching, a map of URL parameters inserted into
//! the request's extensions, boxed service layers and a content-length pass — ~4,500
//! instructions per call, more than authentication and the JSON-RPC parse together
//! (docs/PERFORMANCE.md, fix 14). Only a plain segment takes the shortcut; a path the router
//! might read differently (percent escapes, more segments, `/mcp/gateway/…`) still goes through
//! it, so both ways answer alike.

use super::{streamable_http, Relay};
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

/// The connection a path names, when the router would give its handler exactly that segment.
fn connection_route(path: &str) -> Option<&str> {
    let segment = path.strip_prefix("/mcp/")?;
    (!segment.is_empty() && !segment.contains(['/', '%'])).then_some(segment)
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
        match connection_route(req.uri().path()) {
            Some(route) => {
                let (relay, route) = (self.relay.clone(), route.to_string());
                Either::Left(Box::pin(async move { Ok(streamable_http::connection_direct(relay, route, req).await) }))
            }
            None => Either::Right(self.router.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connection_route;

    #[test]
    fn only_a_plain_connection_segment_takes_the_shortcut() {
        assert_eq!(connection_route("/mcp/github"), Some("github"));
        assert_eq!(connection_route("/mcp/conn_2xkT9"), Some("conn_2xkT9"));
        // The router's `/mcp/{route}` matches this too, with the same segment.
        assert_eq!(connection_route("/mcp/gateway"), Some("gateway"));
        for path in ["/mcp", "/mcp/", "/mcp/gateway/team", "/mcp/a/b", "/mcp/git%68ub", "/api/v1/audit", "/mcpx/a"] {
            assert_eq!(connection_route(path), None, "{path} goes through the router");
        }
    }
}
