//! The egress filter: every `wasi:http/outgoing-handler` request a tool
//! makes comes here (we implement wasmtime-wasi-http's `send_request` hook;
//! nothing else can send). For each request, in order:
//!
//! 1. count it against the call's `http_requests` limit;
//! 2. normalise the URL and find the `net` rule that allows it, else
//!    `HTTP-request-denied`;
//! 3. check the request's header size, add the policy's secret headers for
//!    that host (the tool never sees them);
//! 4. resolve the name and keep only addresses the rule may reach
//!    (special-use addresses need a rule naming them exactly), else
//!    `destination-IP-prohibited`;
//! 5. connect to exactly that checked address (no second DNS lookup, so no
//!    rebinding gap), TLS with the original name for https;
//! 6. hand back the response with its body size-limited, time-limited and
//!    scrubbed of secret values; one audit record per request.
//!
//! Redirects are the tool's business: the host never follows them, so each
//! hop is a new request that goes through all of the above.

mod body;
mod connect;
mod record;
mod secrets;

pub use record::{HttpActivity, HttpRecord, HttpRecordSink};
pub use secrets::Secret;

use crate::policy::net::{self, Host, Target};
use crate::policy::{HttpLimits, NetRule, ToolPolicy};
use body::{LimitedRequestBody, ResponseBody};
use secrets::Redactor;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What one tool may reach over HTTP, prepared once from its policy.
pub struct EgressTemplate {
    tool: String,
    rules: Vec<NetRule>,
    secrets: Vec<Secret>,
    limits: HttpLimits,
    sink: Option<HttpRecordSink>,
}

impl std::fmt::Debug for EgressTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressTemplate")
            .field("tool", &self.tool)
            .field("rules", &self.rules)
            .field("secrets", &self.secrets)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EgressTemplate {
    /// Secret values are read from the host environment now; a missing
    /// variable leaves that header out (with a warning), never a literal `${env:…}`.
    pub fn from_policy(tool: &str, policy: &ToolPolicy, sink: Option<HttpRecordSink>) -> Self {
        Self {
            tool: tool.to_string(),
            rules: policy.net.clone(),
            secrets: policy.secrets.iter().filter_map(|s| Secret::resolve(tool, s)).collect(),
            limits: policy.limits.http,
            sink,
        }
    }

    /// The hooks for one call.
    pub fn hooks(self: &Arc<Self>) -> EgressHooks {
        self.hooks_within(None)
    }

    /// The hooks for one call that may reach only `origins` (normalised
    /// `scheme://host:port`), on top of the `net` rules: what the user
    /// approved for this call.
    pub fn hooks_within(self: &Arc<Self>, origins: Option<Arc<[String]>>) -> EgressHooks {
        EgressHooks {
            egress: self.clone(),
            activity: Arc::new(HttpActivity::new(self.sink.clone())),
            sent: 0,
            origins,
        }
    }

    async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        number: u64,
        activity: Arc<HttpActivity>,
        origins: Option<Arc<[String]>>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let started = Instant::now();
        let mut record = HttpRecord::start(&self.tool, request.method().as_str());
        let redactor = Redactor::new(&self.secrets);
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        record.path = String::from_utf8_lossy(&redactor.scrub(path.as_bytes())).into_owned();
        let fail = |mut record: HttpRecord, denied: bool, reason: String, error: Error| {
            record.finish_refused(denied, reason, started);
            activity.push(record);
            Err(error)
        };
        let target = match net::parse_target(&request.uri().to_string()) {
            Ok(target) => target,
            Err(reason) => return fail(record, true, reason, Error::HttpRequestUriInvalid),
        };
        record.target(&target);
        if number > self.limits.requests {
            let reason = format!(
                "more than {} requests in one call (`http_requests`)",
                self.limits.requests
            );
            return fail(record, true, reason, Error::ConnectionLimitReached);
        }
        let rule = match net::allowing_rule(&self.rules, &target) {
            Ok(rule) => rule,
            Err(reason) => return fail(record, true, reason, Error::HttpRequestDenied),
        };
        if let Some(origins) = &origins
            && !origins.contains(&target.to_string())
        {
            let reason = format!(
                "{target} is allowed by the policy, but the user approved this call for {} only",
                origins.join(", ")
            );
            return fail(record, true, reason, Error::HttpRequestDenied);
        }
        record.rule = Some(rule.to_string());
        if let Err((reason, error)) = self
            .headers_fit("request", request.headers(), Error::HttpRequestHeaderSectionSize)
            .and_then(|()| self.request_body_fits(&request))
        {
            return fail(record, false, reason, error);
        }
        self.inject_secrets(&target, request.headers_mut());
        let address = match self.checked_address(rule, &target).await {
            Ok(address) => address,
            Err((reason, error)) => return fail(record, true, reason, error),
        };
        record.address = Some(address.to_string());
        let bytes_out = record.bytes_out.clone();
        let request = request.map(|b| LimitedRequestBody::wrap(b, self.limits.request_body_bytes, bytes_out));
        let deadline = tokio::time::Instant::from_std(started + self.limits.timeout);
        let response = match connect::send(&target, address, request, deadline).await {
            Ok(response) => response,
            Err(error) => return fail(record, false, format!("{error}"), error),
        };
        record.status = Some(response.status().as_u16());
        if let Err((reason, error)) =
            self.headers_fit("response", response.headers(), Error::HttpResponseHeaderSectionSize)
        {
            return fail(record, false, reason, error);
        }
        let (mut parts, incoming) = response.into_parts();
        redactor.scrub_headers(&mut parts.headers);
        let body = ResponseBody::new(
            incoming,
            self.limits.response_body_bytes,
            deadline,
            redactor,
            record,
            started,
            activity,
        );
        Ok(http::Response::from_parts(parts, body.boxed()))
    }

    /// `which` headers within `http_header_kb`, else the reason and `error(size)`.
    fn headers_fit(
        &self,
        which: &str,
        headers: &http::HeaderMap,
        error: fn(Option<u32>) -> Error,
    ) -> Result<(), (String, Error)> {
        let bytes = header_size(headers);
        if bytes <= self.limits.header_bytes {
            return Ok(());
        }
        let reason = format!(
            "{which} headers are {bytes} bytes, over the {} byte limit (`http_header_kb`)",
            self.limits.header_bytes
        );
        Err((reason, error(Some(bytes.min(u32::MAX as u64) as u32))))
    }

    /// A declared `content-length` over the limit is refused before sending;
    /// a streamed body is cut by [`LimitedRequestBody`] as it goes.
    fn request_body_fits(&self, request: &http::Request<WasiBody>) -> Result<(), (String, Error)> {
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.limits.request_body_bytes => Err((
                format!(
                    "request body of {n} bytes is over the {} byte limit (`http_request_kb`)",
                    self.limits.request_body_bytes
                ),
                Error::HttpRequestBodySize(Some(n)),
            )),
            _ => Ok(()),
        }
    }

    /// Adds the secret headers for `target`'s host, replacing any the tool
    /// set itself.
    fn inject_secrets(&self, target: &Target, headers: &mut http::HeaderMap) {
        let host = target.host.to_string();
        for secret in self.secrets.iter().filter(|s| s.applies_to(&host)) {
            headers.insert(secret.header.clone(), secret.value.clone());
        }
    }

    /// Resolves the target and returns the first address `rule` may reach.
    async fn checked_address(&self, rule: &NetRule, target: &Target) -> Result<IpAddr, (String, Error)> {
        let candidates: Vec<IpAddr> = match &target.host {
            Host::Ip(ip) => vec![*ip],
            Host::Domain(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), target.port));
                match tokio::time::timeout(self.limits.timeout, lookup).await {
                    Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                    Ok(Err(e)) => return Err((format!("cannot resolve {name}: {e}"), Error::DestinationNotFound)),
                    Err(_) => return Err((format!("resolving {name} timed out"), Error::DnsTimeout)),
                }
            }
        };
        let mut refusals = Vec::new();
        for ip in &candidates {
            match net::check_address(rule, *ip) {
                Ok(()) => return Ok(*ip),
                Err(why) => refusals.push(why),
            }
        }
        let reason = if refusals.is_empty() {
            format!("{} resolved to no address", target.host)
        } else {
            format!(
                "{} resolves only to refused addresses: {}",
                target.host,
                refusals.join("; ")
            )
        };
        Err((reason, Error::DestinationIpProhibited))
    }
}

/// Approximate wire size of a header section: `name: value\r\n` per line.
fn header_size(headers: &http::HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// The wasi-http hooks of one call.
pub struct EgressHooks {
    egress: Arc<EgressTemplate>,
    activity: Arc<HttpActivity>,
    sent: u64,
    /// The origins the user approved this call for, when narrower than the policy.
    origins: Option<Arc<[String]>>,
}

impl EgressHooks {
    /// The requests of this call so far.
    pub fn activity(&self) -> Arc<HttpActivity> {
        self.activity.clone()
    }
}

type IoFuture = Box<dyn std::future::Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn std::future::Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        // The tool's request options are ignored: the policy's
        // `http_timeout_ms` bounds every request.
        self.sent += 1;
        let number = self.sent;
        let egress = self.egress.clone();
        let activity = self.activity.clone();
        let origins = self.origins.clone();
        Box::new(async move {
            let response = egress.send(request, number, activity, origins).await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
