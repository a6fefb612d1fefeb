//! Decisions about outgoing HTTP, as pure functions: which `net` rule (if
//! any) allows a URL, and whether an address the host resolved may be
//! connected to. The runtime's egress filter calls these twice per request:
//! once on the URL, once on every address its name resolves to.
//!
//! URLs are parsed by the WHATWG rules (the `url` crate), so IP literals in
//! odd spellings — `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`,
//! `[::ffff:127.0.0.1]` — are normalised before anything is compared.
//! Loopback, private, link-local, metadata and other special-use addresses
//! are refused unless a rule names that exact address.

use super::NetRule;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a request goes, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    pub host: Host,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A lowercase DNS name.
    Domain(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Parses an absolute http(s) URL into its normalised target.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL ({e})"))?;
    let scheme = parsed.scheme().to_string();
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}`: only http and https are supported"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Not echoed: the URL holds a password.
        return Err(
            "the URL carries a user name or password before the host (user:pass@host); \
             credentials go in a policy `secrets` entry, never in the URL"
                .to_string(),
        );
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => Host::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
        None => return Err(format!("`{url}` has no host")),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("`{url}` has no port"))?;
    Ok(Target { scheme, host, port })
}

/// The normalised host of a rule (`*.` stripped), parsed like a URL host.
fn rule_host(rule: &NetRule) -> Option<Host> {
    let name = rule.host.strip_prefix("*.").unwrap_or(&rule.host);
    parse_target(&format!("{}://{}/", rule.scheme, name))
        .ok()
        .map(|t| t.host)
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl NetRule {
    /// True when this rule allows requests to `target`. A rule without a
    /// port allows only its scheme's default port; `*.example.com` allows
    /// every subdomain of example.com but not example.com itself.
    pub fn matches(&self, target: &Target) -> bool {
        if self.scheme != target.scheme || self.port.unwrap_or(default_port(&self.scheme)) != target.port {
            return false;
        }
        let Some(host) = rule_host(self) else { return false };
        match (&host, &target.host) {
            (Host::Domain(rule), Host::Domain(wanted)) if self.host.starts_with("*.") => {
                wanted.len() > rule.len() + 1
                    && wanted.ends_with(rule.as_str())
                    && wanted[..wanted.len() - rule.len()].ends_with('.')
            }
            (rule, wanted) => canonical(rule) == canonical(wanted),
        }
    }

    /// True when the rule names exactly this address (the only way a
    /// special-use address is allowed).
    fn names_address(&self, ip: IpAddr) -> bool {
        matches!(rule_host(self), Some(Host::Ip(listed)) if unmapped(listed) == unmapped(ip))
    }
}

/// Hosts compared with IPv4-mapped IPv6 addresses folded to IPv4.
fn canonical(host: &Host) -> Host {
    match host {
        Host::Ip(ip) => Host::Ip(unmapped(*ip)),
        other => other.clone(),
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The first rule allowing `target`, or why none does.
pub fn allowing_rule<'a>(rules: &'a [NetRule], target: &Target) -> Result<&'a NetRule, String> {
    rules.iter().find(|r| r.matches(target)).ok_or_else(|| {
        if rules.is_empty() {
            format!("{target} is not allowed: the policy gives this tool no `net` rules")
        } else {
            let listed: Vec<String> = rules.iter().map(ToString::to_string).collect();
            format!(
                "{target} is not allowed: no `net` rule matches (allowed: {})",
                listed.join(", ")
            )
        }
    })
}

/// Whether the host may connect to `ip` for a request that `rule` allowed.
pub fn check_address(rule: &NetRule, ip: IpAddr) -> Result<(), String> {
    match special_use(ip) {
        None => Ok(()),
        Some(_) if rule.names_address(ip) => Ok(()),
        Some(kind) => Err(format!(
            "{ip} is a {kind} address; it is refused unless a `net` rule names it exactly (rule used: {rule})"
        )),
    }
}

/// What kind of special-use address `ip` is, if any.
pub fn special_use(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        (0, _, _) => "this-network (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (192, 0, 0) => "IETF protocol assignment",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments {
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => "cloud metadata",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        // ::a.b.c.d (deprecated IPv4-compatible) and 64:ff9b::/96 (NAT64) embed an IPv4 address.
        [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return special_v4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
                .or(Some("IPv4-embedding"));
        }
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique local (private)",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast",
        [0x2001, 0xdb8, ..] => "documentation",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> NetRule {
        let (scheme, rest) = text.split_once("://").expect("scheme");
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) && !rest.ends_with(']') => {
                (h.to_string(), Some(p.parse().expect("port")))
            }
            _ => (rest.to_string(), None),
        };
        NetRule {
            scheme: scheme.into(),
            host,
            port,
            line: 1,
        }
    }

    fn allowed(rules: &[&str], url: &str) -> bool {
        let rules: Vec<NetRule> = rules.iter().map(|r| rule(r)).collect();
        allowing_rule(&rules, &parse_target(url).expect("url")).is_ok()
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let rules = ["https://api.github.com", "http://127.0.0.1:8080"];
        assert!(allowed(&rules, "https://api.github.com/repos/x"));
        assert!(allowed(&rules, "https://API.GitHub.com./x"));
        assert!(!allowed(&rules, "http://api.github.com/"), "scheme");
        assert!(
            !allowed(&rules, "https://api.github.com:8443/"),
            "a rule without a port allows only 443"
        );
        assert!(allowed(&rules, "http://127.0.0.1:8080/x"));
        assert!(!allowed(&rules, "http://127.0.0.1:8081/x"));
        assert!(!allowed(&rules, "https://github.com/"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let rules = ["https://*.example.com"];
        assert!(allowed(&rules, "https://a.example.com/"));
        assert!(allowed(&rules, "https://a.b.example.com/"));
        assert!(!allowed(&rules, "https://example.com/"));
        assert!(!allowed(&rules, "https://badexample.com/"));
        assert!(!allowed(&rules, "https://example.com.evil.net/"));
    }

    #[test]
    fn odd_ip_spellings_are_normalised() {
        for url in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
        ] {
            let target = parse_target(url).expect("url");
            let Host::Ip(ip) = target.host else {
                panic!("{url} is an IP")
            };
            assert_eq!(unmapped(ip), IpAddr::V4(Ipv4Addr::LOCALHOST), "{url}");
            assert_eq!(special_use(ip), Some("loopback"), "{url}");
        }
    }

    #[test]
    fn special_addresses_are_refused_unless_named_exactly() {
        let by_name = rule("http://localhost:8080");
        let by_ip = rule("http://127.0.0.1:8080");
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(
            check_address(&by_name, loopback).is_err(),
            "a name resolving to loopback"
        );
        assert!(check_address(&by_ip, loopback).is_ok(), "the exact address is listed");
        assert!(check_address(&by_ip, "127.0.0.2".parse().expect("ip")).is_err());
        for (ip, kind) in [
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "this-network (0.0.0.0/8)"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(special_use(ip), Some(kind), "{ip}");
            assert!(check_address(&by_name, ip).is_err(), "{ip}");
        }
        assert_eq!(special_use("93.184.216.34".parse().expect("ip")), None);
        assert_eq!(special_use("2606:4700::1111".parse().expect("ip")), None);
    }
}
