//! URL checks and redirect rules, kept free of `wasi` calls so they can be
//! unit-tested on the build machine.
//!
//! The host does not follow redirects: it hands every 3xx back to the tool,
//! and the SDK sends each hop as a new request, so the host checks every hop
//! against the policy's `net` list (a redirect cannot smuggle a request to a
//! host the policy does not name).

use url::Url;

use super::{HttpError, Method};

/// Parses the URL a tool asked for: absolute, `http` or `https`, with a host
/// and no user name or password. The fragment is dropped (it never goes on
/// the wire).
pub(crate) fn parse_request_url(text: &str) -> Result<Url, HttpError> {
    let hint = "expected an absolute http:// or https:// URL such as https://example.com/page";
    let mut url =
        Url::parse(text.trim()).map_err(|e| HttpError::InvalidUrl(format!("invalid URL `{text}`: {e}; {hint}")))?;
    check_url(&url).map_err(|why| HttpError::InvalidUrl(format!("invalid URL `{text}`: {why}; {hint}")))?;
    url.set_fragment(None);
    Ok(url)
}

/// Why `url` cannot be requested, if it cannot.
fn check_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme `{}` is not supported", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_string());
    }
    // Credentials come from the policy's `secrets`, which the host adds; a
    // tool never carries them, not even in the URL.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it contains a user name or password; credentials come from the policy, not the URL".to_string());
    }
    Ok(())
}

/// The next request after a redirect response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    pub url: Url,
    pub method: Method,
    /// False when the redirect turns the request into a GET without body.
    pub keep_body: bool,
}

/// Whether `status` is a redirect the SDK follows (given a `Location`).
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a response with `status` and `location` sends a `method` request
/// for `current`, following RFC 9110 section 15.4 as browsers do: 303 turns
/// anything but HEAD into GET, 301 and 302 turn POST into GET, 307 and 308
/// keep method and body. `None` means the response is final (not a
/// redirect, or a redirect without `Location`).
pub(crate) fn next_hop(
    status: u16,
    location: Option<&str>,
    current: &Url,
    method: Method,
) -> Result<Option<Hop>, HttpError> {
    let Some(location) = location.filter(|_| is_redirect(status)) else {
        return Ok(None);
    };
    let mut url = current.join(location.trim()).map_err(|e| {
        HttpError::Other(format!(
            "{current} redirected ({status}) to an invalid location `{location}`: {e}"
        ))
    })?;
    check_url(&url).map_err(|why| {
        HttpError::Other(format!(
            "{current} redirected ({status}) to `{location}`, which cannot be followed: {why}"
        ))
    })?;
    url.set_fragment(None);
    let to_get = match status {
        303 => method != Method::Head,
        301 | 302 => method == Method::Post,
        _ => false,
    };
    Ok(Some(if to_get {
        Hop {
            url,
            method: Method::Get,
            keep_body: false,
        }
    } else {
        Hop {
            url,
            method,
            keep_body: true,
        }
    }))
}

/// True when `a` and `b` share scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Headers that must not follow a redirect to another origin, as browsers
/// do. Tools should not set them at all (the host adds credentials from
/// the policy's `secrets`, per host), but if one does, it stays with the
/// origin it was meant for.
pub(crate) fn is_credential_header(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// The error once a request has been redirected `max` times and the latest
/// response redirects again.
pub(crate) fn too_many(max: u32, start: &Url, last: &Url) -> HttpError {
    HttpError::Other(format!(
        "stopped after {max} redirects: {start} kept redirecting (last to {last}); the server may be in a redirect loop"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.com/docs/a/page?x=1").unwrap()
    }

    fn hop(status: u16, location: &str, method: Method) -> Hop {
        next_hop(status, Some(location), &base(), method)
            .unwrap()
            .expect("a redirect")
    }

    #[test]
    fn resolves_relative_locations_against_the_current_url() {
        assert_eq!(hop(301, "/root", Method::Get).url.as_str(), "https://example.com/root");
        assert_eq!(
            hop(302, "other?y=2", Method::Get).url.as_str(),
            "https://example.com/docs/a/other?y=2"
        );
        assert_eq!(
            hop(302, "../up", Method::Get).url.as_str(),
            "https://example.com/docs/up"
        );
        assert_eq!(
            hop(307, "?page=2", Method::Get).url.as_str(),
            "https://example.com/docs/a/page?page=2"
        );
        assert_eq!(
            hop(308, "//cdn.example.org/x", Method::Get).url.as_str(),
            "https://cdn.example.org/x"
        );
        assert_eq!(
            hop(301, "http://other.test:8080/p#frag", Method::Get).url.as_str(),
            "http://other.test:8080/p"
        );
    }

    #[test]
    fn see_other_and_post_redirects_become_get_without_body() {
        assert_eq!(
            hop(303, "/r", Method::Put),
            Hop {
                url: Url::parse("https://example.com/r").unwrap(),
                method: Method::Get,
                keep_body: false
            }
        );
        assert_eq!(hop(303, "/r", Method::Head).method, Method::Head);
        for status in [301, 302] {
            let h = hop(status, "/r", Method::Post);
            assert_eq!((h.method, h.keep_body), (Method::Get, false));
            let h = hop(status, "/r", Method::Delete);
            assert_eq!((h.method, h.keep_body), (Method::Delete, true));
        }
        for status in [307, 308] {
            let h = hop(status, "/r", Method::Post);
            assert_eq!((h.method, h.keep_body), (Method::Post, true));
        }
    }

    #[test]
    fn non_redirects_and_missing_locations_are_final() {
        assert_eq!(next_hop(200, Some("/x"), &base(), Method::Get).unwrap(), None);
        assert_eq!(next_hop(304, Some("/x"), &base(), Method::Get).unwrap(), None);
        assert_eq!(next_hop(302, None, &base(), Method::Get).unwrap(), None);
    }

    #[test]
    fn refuses_redirects_to_other_schemes() {
        let e = next_hop(302, Some("ftp://example.com/f"), &base(), Method::Get).unwrap_err();
        assert!(e.to_string().contains("scheme `ftp` is not supported"), "{e}");
        let e = next_hop(302, Some("https://user:pw@example.com/"), &base(), Method::Get).unwrap_err();
        assert!(e.to_string().contains("user name or password"), "{e}");
    }

    #[test]
    fn request_urls_are_checked() {
        assert_eq!(
            parse_request_url(" https://example.com/a#top ").unwrap().as_str(),
            "https://example.com/a"
        );
        for bad in [
            "example.com/a",
            "file:///etc/passwd",
            "https://u:p@example.com/",
            "mailto:a@b.c",
        ] {
            let e = parse_request_url(bad).unwrap_err();
            assert!(matches!(e, HttpError::InvalidUrl(_)), "{bad}: {e:?}");
            assert!(e.to_string().starts_with("invalid URL"), "{e}");
        }
    }

    #[test]
    fn origins_and_credential_headers() {
        let other = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&base(), &other("https://example.com/elsewhere?q")));
        assert!(!same_origin(&base(), &other("http://example.com/docs")));
        assert!(!same_origin(&base(), &other("https://example.com:8443/docs")));
        assert!(!same_origin(&base(), &other("https://cdn.example.com/docs")));
        assert!(is_credential_header("Authorization") && is_credential_header("COOKIE"));
        assert!(!is_credential_header("accept"));
    }

    #[test]
    fn too_many_names_the_start() {
        let e = too_many(5, &base(), &Url::parse("https://example.com/loop").unwrap());
        assert!(
            e.to_string()
                .starts_with("stopped after 5 redirects: https://example.com/docs/a/page?x=1"),
            "{e}"
        );
    }
}
