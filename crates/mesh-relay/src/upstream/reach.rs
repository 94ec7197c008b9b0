//! Which network addresses an upstream may be reached at ([`Reach`]), enforced where sockets are
//! opened.
//!
//! A connection made by an organisation's admin (`Reach::Public`) must not turn the mesh into a
//! way into the host's own network: loopback, private ranges, link-local (with the cloud metadata
//! address 169.254.169.254), unique-local, CGNAT, multicast. The check is made on the *resolved*
//! address, when a new TCP connection is opened — by the fast path's own connector (`pool`) and by
//! reqwest's resolver ([`Resolver`]) — so a name that resolves to a public address when the
//! connection is saved and to 127.0.0.1 later (DNS rebinding) is still refused. reqwest does not
//! ask a resolver about an address written in the URL, so [`check_url`] looks at those, and the
//! redirect policy of the `Public` client ([`redirect_policy`]) at every hop's.
//!
//! The check costs nothing on a call that reuses a pooled connection: it runs only when a
//! connection is opened.

use crate::{Cause, Reach, RelayError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address on the public Internet: false for everything a host or its
/// network keeps to itself, and for IPv6 forms that embed such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let internal = a == 0                               // "this network", 0.0.0.0 included
        || a == 10                                      // private
        || a == 127                                     // loopback
        || (a == 100 && (64..128).contains(&b))         // CGNAT (RFC 6598)
        || (a == 169 && b == 254)                       // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))          // private
        || (a == 192 && b == 168)                       // private
        || (a == 192 && b == 0 && c == 0)               // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)               // documentation (TEST-NET-1)
        || (a == 198 && (b == 18 || b == 19))           // benchmarking
        || (a == 198 && b == 51 && c == 100)            // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113)             // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved, broadcast
    !internal
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d): the socket reaches the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d: nothing public lives there.
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address; its local-use range is internal.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_public_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => false,
        // 6to4 (2002::/16) carries an IPv4 address in its next 32 bits.
        [0x2002, hi, lo, ..] => is_public_v4(embedded(hi, lo)),
        // Discard-only (100::/64) and documentation (2001:db8::/32).
        [0x100, 0, 0, 0, ..] | [0x2001, 0xdb8, ..] => false,
        // Unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8.
        [first, ..] => {
            !((first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first & 0xff00) == 0xff00)
        }
    }
}

/// Whether a `Reach::Public` connection may use `ip`: a public address that is not one of this
/// host's own. On a host with a public address, services bound to every interface answer on it,
/// often past firewall rules written for traffic from elsewhere (issue #16 review).
pub fn allowed_public(ip: IpAddr) -> bool {
    is_public(ip) && own_addresses().is_some_and(|own| !own.contains(&ip))
}

/// This host's interface addresses, read when asked (addresses come and go); only for new
/// connections of `Reach::Public` links, never per call. `None` when they cannot be read: then
/// no address is allowed (fail closed).
fn own_addresses() -> Option<Vec<IpAddr>> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => Some(
            addrs
                .filter_map(|a| a.address)
                .filter_map(|sa| {
                    sa.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this host's addresses; refusing upstream addresses");
            None
        }
    }
}

/// The refusal: an address a `Reach::Public` connection may not use. Travels inside reqwest's
/// and the fast path's errors, and is found again by [`cause_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPublic(pub IpAddr);

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "upstream address {} is not public; only installation operators may connect to internal networks",
            self.0
        )
    }
}

impl std::error::Error for NotPublic {}

/// A name that did not resolve, told apart from other failures so it can be reported as DNS.
#[derive(Debug)]
pub struct DnsFailed(pub std::io::Error);

impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot resolve the name ({})", self.0)
    }
}

impl std::error::Error for DnsFailed {}

impl NotPublic {
    /// This refusal as the connection's error; logged once here, where it happens.
    pub fn into_error(self, connection: &str) -> RelayError {
        tracing::warn!(connection, address = %self.0, "refused an internal upstream address (reach: public)");
        RelayError::UpstreamFailed { cause: Cause::NotPublic, detail: format!("{connection}: {self}") }
    }
}

/// Refuses a URL whose host is an address (not a name) a `reach` may not use. Names are checked
/// when they are resolved.
pub fn check_url(connection: &str, url: &url::Url, reach: Reach) -> Result<(), RelayError> {
    match (reach, literal(url)) {
        (Reach::Public, Some(ip)) if !allowed_public(ip) => Err(NotPublic(ip).into_error(connection)),
        _ => Ok(()),
    }
}

fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Resolves `host:port` (`addr`) for a new connection: every address for `Any`; for `Public`
/// only public ones, and [`NotPublic`] when that leaves none.
pub(super) async fn resolve(addr: &str, reach: Reach) -> std::io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> =
        tokio::net::lookup_host(addr).await.map_err(|e| std::io::Error::other(DnsFailed(e)))?.collect();
    keep(found, reach).map_err(std::io::Error::other)
}

/// The addresses `reach` may use out of `found`.
fn keep(found: Vec<SocketAddr>, reach: Reach) -> Result<Vec<SocketAddr>, NotPublic> {
    if reach == Reach::Any {
        return Ok(found);
    }
    // One read of the host's own addresses for the whole answer.
    let own = own_addresses();
    let allowed = |ip: IpAddr| is_public(ip) && own.as_ref().is_some_and(|own| !own.contains(&ip));
    let first_refused = found.iter().find(|a| !allowed(a.ip())).map(|a| NotPublic(a.ip()));
    let public: Vec<SocketAddr> = found.into_iter().filter(|a| allowed(a.ip())).collect();
    match first_refused {
        Some(refused) if public.is_empty() => Err(refused),
        _ => Ok(public),
    }
}

/// reqwest's resolver for a reach: the system's (`getaddrinfo`, as reqwest's default), with
/// failures marked [`DnsFailed`] and, for `Public`, internal addresses dropped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolver(pub Reach);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.0;
        // The port is replaced by the URL's (reqwest::dns::Resolve).
        let host = format!("{}:0", name.as_str());
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host(host).await.map_err(DnsFailed)?.collect();
            let kept = keep(found, reach)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The `Public` client's redirect policy: reqwest's default (at most 10 hops), except that a hop
/// to an internal address written in the URL is refused (a hop to a name meets the resolver).
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| match literal(attempt.url()) {
        Some(ip) if !allowed_public(ip) => attempt.error(NotPublic(ip)),
        _ if attempt.previous().len() >= 10 => attempt.error("too many redirects"),
        _ => attempt.follow(),
    })
}

/// Why a reqwest request failed, read from the typed errors in its chain.
pub(super) fn cause_of(e: &reqwest::Error) -> Cause {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut timed_out = e.is_timeout();
    while let Some(err) = next {
        if let Some(cause) = known(err) {
            return cause;
        }
        next = err.source();
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::TimedOut => timed_out = true,
                _ => {}
            }
            // `io::Error::source` skips the error it wraps (often another io::Error around a
            // rustls error): follow that one instead.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
            }
        }
    }
    if timed_out {
        Cause::Timeout
    } else {
        Cause::Other
    }
}

/// The cause of one error in a chain, when it is one the mesh knows by type.
pub(super) fn known(err: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    if err.is::<NotPublic>() {
        Some(Cause::NotPublic)
    } else if err.is::<DnsFailed>() {
        Some(Cause::Dns)
    } else if err.is::<rustls::Error>() {
        Some(Cause::Tls)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue16_the_hosts_own_addresses_are_never_public_reach() {
        // Every address of this machine's interfaces (loopback at least) is refused, public or not.
        let own = own_addresses().expect("this host's addresses");
        assert!(own.iter().any(|ip| ip.is_loopback()), "{own:?}");
        for ip in own {
            assert!(!allowed_public(ip), "{ip}");
        }
        assert!(allowed_public("93.184.215.14".parse().unwrap()), "a public address elsewhere");
    }

    #[test]
    fn internal_addresses_are_not_public() {
        let table: &[(&str, bool)] = &[
            // IPv4: loopback, private, link-local and metadata, CGNAT, unspecified, special.
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("10.0.0.5", false),
            ("10.255.255.255", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("169.254.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("198.18.0.1", false),
            // IPv4 just outside those ranges, and ordinary public addresses.
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("169.253.255.255", true),
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("223.255.255.254", true),
            // IPv6: loopback, unspecified, unique-local, link-local, site-local, multicast.
            ("::1", false),
            ("::", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            // IPv6 forms that embed an IPv4 address reach that address.
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.5", false),
            ("::ffff:169.254.169.254", false),
            ("::127.0.0.1", false),
            ("64:ff9b::a00:5", false),
            ("2002:c0a8:101::1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::808:808", true),
            ("2606:4700:4700::1111", true),
        ];
        for &(ip, public) in table {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn a_public_reach_keeps_public_addresses_and_refuses_when_none_is_left() {
        let addrs = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect::<Vec<SocketAddr>>();
        let mixed = addrs(&["10.0.0.5:80", "8.8.8.8:80", "[::1]:80"]);
        assert_eq!(keep(mixed.clone(), Reach::Any).unwrap(), mixed, "Any: untouched");
        assert_eq!(keep(mixed, Reach::Public).unwrap(), addrs(&["8.8.8.8:80"]));
        let err = keep(addrs(&["127.0.0.1:80", "[::1]:80"]), Reach::Public).unwrap_err();
        assert_eq!(err, NotPublic("127.0.0.1".parse().unwrap()));
        assert!(err.to_string().contains("127.0.0.1 is not public; only installation operators"), "{err}");
    }

    #[test]
    fn addresses_written_in_the_url_are_checked_names_are_left_to_the_resolver() {
        let check = |u: &str, reach| check_url("c", &url::Url::parse(u).unwrap(), reach);
        for refused in ["http://127.0.0.1:9/mcp", "https://[::1]/", "http://169.254.169.254/", "http://2130706433/"] {
            let err = check(refused, Reach::Public).unwrap_err();
            assert!(matches!(err, RelayError::UpstreamFailed { cause: Cause::NotPublic, .. }), "{refused}: {err}");
            assert!(check(refused, Reach::Any).is_ok());
        }
        assert!(check("https://8.8.8.8/mcp", Reach::Public).is_ok());
        assert!(check("http://localhost:9/mcp", Reach::Public).is_ok(), "a name: refused when resolved");
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_for_a_public_reach() {
        let err = resolve("localhost:9", Reach::Public).await.unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<NotPublic>()), "{err}");
        assert!(!resolve("localhost:9", Reach::Any).await.unwrap().is_empty());
    }
}
