//! Who the client is: its address, whether it came over TLS, and the host it asked for. Behind a
//! configured trusted proxy these come from `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `X-Forwarded-Host`; from anyone else those headers are ignored, so a client cannot choose the
//! address its failed sign-ins are counted under, nor claim TLS it did not use.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{self, HeaderMap};

use crate::config::Cidr;

/// What is known of the client of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address (`None` when the connection has none, as in some tests).
    pub ip: Option<IpAddr>,
    /// Whether the client reached Accord over TLS.
    pub https: bool,
    /// The host the client asked for (`Host`, or the proxy's `X-Forwarded-Host`).
    pub host: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

impl Client {
    /// Reads the client of a request that arrived from `peer` with `headers`.
    pub fn of(headers: &HeaderMap, peer: Option<SocketAddr>, proxies: &[Cidr]) -> Client {
        let peer_ip = peer.map(|p| p.ip());
        let own_host = header(headers, header::HOST.as_str())
            .unwrap_or_default()
            .to_string();
        let Some(proxy) = peer_ip.filter(|ip| trusted(*ip, proxies)) else {
            return Client {
                ip: peer_ip,
                https: false,
                host: own_host,
            };
        };
        // The client is the nearest address that is not one of our proxies: walk the list from
        // the right, where our own proxies appended what they saw.
        // An entry that is not a plain address (a port, a name, garbage) ends the walk at the
        // last address our proxies vouch for: nothing left of it can be trusted.
        let mut ip = proxy;
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            match value.to_str() {
                Ok(v) => hops.extend(v.split(',').map(str::trim)),
                Err(_) => hops.push(""),
            }
        }
        for hop in hops.iter().rev() {
            let Ok(hop) = hop.parse::<IpAddr>() else {
                break;
            };
            ip = hop;
            if !trusted(hop, proxies) {
                break;
            }
        }
        let first = |v: &str| v.split(',').next().unwrap_or_default().trim().to_string();
        let https = header(headers, "x-forwarded-proto")
            .map(first)
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let host = header(headers, "x-forwarded-host")
            .map(first)
            .filter(|h| !h.is_empty())
            .unwrap_or(own_host);
        Client {
            ip: Some(ip),
            https,
            host,
        }
    }

    /// The client of an actix request, with the configured proxies.
    pub fn of_request(req: &actix_web::HttpRequest, proxies: &[Cidr]) -> Client {
        Client::of(req.headers(), req.peer_addr(), proxies)
    }

    /// The address as text, for counters and the ledger (`unknown` without one).
    pub fn address(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 40000))
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let h = headers(&[
            ("host", "accord.internal"),
            ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "accord.example.org"),
        ]);
        // Not from a proxy: the headers are ignored.
        let direct = Client::of(&h, peer("198.51.100.1"), &[]);
        assert_eq!(direct.address(), "198.51.100.1");
        assert!(!direct.https);
        assert_eq!(direct.host, "accord.internal");
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let other = Client::of(&h, peer("198.51.100.1"), &proxies);
        assert_eq!(other.address(), "198.51.100.1");
        // From a trusted proxy: the nearest untrusted hop, the proxy's scheme and host.
        let via = Client::of(&h, peer("10.0.0.1"), &proxies);
        assert_eq!(via.address(), "203.0.113.7");
        assert!(via.https);
        assert_eq!(via.host, "accord.example.org");
        // A client cannot hide behind a forged leftmost entry: the rightmost untrusted one counts.
        let forged = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        let via = Client::of(&forged, peer("10.0.0.1"), &proxies);
        assert_eq!(via.address(), "203.0.113.9");
        // An entry that is no address stops the walk at the last trusted hop.
        let odd = headers(&[("x-forwarded-for", "203.0.113.7, 198.51.100.9:4711")]);
        let via = Client::of(&odd, peer("10.0.0.1"), &proxies);
        assert_eq!(via.address(), "10.0.0.1");
        // IPv4-mapped IPv6 peers match IPv4 networks.
        let mapped = Client::of(&h, peer("::ffff:10.0.0.1"), &proxies);
        assert_eq!(mapped.address(), "203.0.113.7");
    }
}
