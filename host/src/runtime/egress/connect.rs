//! Sending one request to one already-checked address: TCP to exactly that
//! IP (the name is never looked up again), TLS for https with the original
//! host name for SNI and certificate checks (Mozilla's root store), then
//! HTTP/1.1 with hyper. Everything must finish before `deadline`.

use crate::policy::net::{Host, Target};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use tokio::time::{Instant, timeout_at};
use wasmtime_wasi_http::{Error, WasiBody};

pub(super) async fn send(
    target: &Target,
    address: IpAddr,
    mut request: http::Request<WasiBody>,
    deadline: Instant,
) -> Result<http::Response<Incoming>, Error> {
    let tcp = match timeout_at(
        deadline,
        tokio::net::TcpStream::connect(SocketAddr::new(address, target.port)),
    )
    .await
    {
        Err(_) => return Err(Error::ConnectionTimeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(Error::ConnectionRefused),
        Ok(Err(e)) => return Err(Error::Connect(e)),
        Ok(Ok(tcp)) => tcp,
    };
    // The request line carries only the path; the Host header names the site.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let response = if target.scheme == "https" {
        let name = match &target.host {
            Host::Domain(name) => rustls::pki_types::ServerName::try_from(name.clone()),
            Host::Ip(ip) => Ok(rustls::pki_types::ServerName::IpAddress((*ip).into())),
        }
        .map_err(|_| Error::HttpRequestUriInvalid)?;
        let tls = match timeout_at(deadline, tls_connector().connect(name, tcp)).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Err(e)) => return Err(Error::Tls(e)),
            Ok(Ok(tls)) => tls,
        };
        exchange(TokioIo::new(tls), request, deadline).await?
    } else {
        exchange(TokioIo::new(tcp), request, deadline).await?
    };
    Ok(response)
}

/// HTTP/1.1 over an open stream: handshake, drive the connection in its own
/// task, send, wait for the response head.
async fn exchange<S>(
    io: S,
    request: http::Request<WasiBody>,
    deadline: Instant,
) -> Result<http::Response<Incoming>, Error>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = timeout_at(deadline, hyper::client::conn::http1::handshake(io))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "an outgoing HTTP connection ended with an error");
        }
    });
    timeout_at(deadline, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)
}

/// One TLS client configuration for the process: ring, Mozilla's roots.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}
