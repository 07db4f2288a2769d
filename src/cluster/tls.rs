//! TLS on the inter-node channel (rustls, TLS 1.3 only, mutual): every
//! node presents a certificate issued by the cluster's own CA for the name
//! `cluster_tls_name`, and accepts a peer only with one too. Peers are
//! reached by address (pods come and go), so the name checked is that one
//! shared name, not the address. The HMAC handshake of `wire` still runs
//! inside: it proves the peer holds the cluster secret as well.
//!
//! Plaintext is for development only and must be asked for
//! (`cluster_plaintext = true`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection of the inter-node channel, TLS or (development) plain.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// How the inter-node channel's connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Development only: nothing but the HMAC handshake.
    Plain,
    Tls {
        acceptor: tokio_rustls::TlsAcceptor,
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain => f.write_str("plain"),
            Transport::Tls { name, .. } => write!(f, "tls ({})", name.to_str()),
        }
    }
}

pub use crate::config::TlsFiles;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

impl Transport {
    /// Reads the CA, this node's certificate chain and key; any problem
    /// (missing file, no certificate, a key that does not match) is named.
    pub fn tls(files: &TlsFiles<'_>) -> Result<Transport, String> {
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs("cluster_tls_ca", files.ca)?);
        if added == 0 {
            return Err(format!(
                "cluster_tls_ca {} holds no usable CA certificate",
                files.ca.display()
            ));
        }
        let roots = Arc::new(roots);
        let chain = certs("cluster_tls_cert", files.cert)?;
        let key = PrivateKeyDer::from_pem_file(files.key)
            .map_err(|e| format!("cluster_tls_key {}: {e}", files.key.display()))?;
        let name = ServerName::try_from(files.name.to_owned())
            .map_err(|_| format!("cluster_tls_name '{}' is not a DNS name", files.name))?;
        let tls13 = &[&rustls::version::TLS13];
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| format!("cluster_tls_ca: {e}"))?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("cluster_tls_cert and cluster_tls_key: {e}"))?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("cluster_tls_cert and cluster_tls_key: {e}"))?;
        Ok(Transport::Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            name,
        })
    }

    /// The caller's side of a new connection.
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<Box<dyn Io>> {
        match self {
            Transport::Plain => Ok(Box::new(tcp)),
            Transport::Tls {
                connector, name, ..
            } => Ok(Box::new(connector.connect(name.clone(), tcp).await?)),
        }
    }

    /// The listener's side of a new connection.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Box<dyn Io>> {
        match self {
            Transport::Plain => Ok(Box::new(tcp)),
            Transport::Tls { acceptor, .. } => Ok(Box::new(acceptor.accept(tcp).await?)),
        }
    }
}

/// A cluster CA's certificate and the one node certificate (with its
/// key) it issued, as PEM. The CA's key is not kept: nothing else can be
/// issued under it, and that certificate is what every node presents.
pub struct Issued {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A new cluster CA and a node certificate for `name` (server and client
/// use), both valid for `days` (`surge cluster certs`).
pub fn issue(name: &str, days: u32) -> Result<Issued, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| e.to_string();
    let now = time::OffsetDateTime::now_utc();
    let (from, until) = (
        now - time::Duration::minutes(5),
        now + time::Duration::days(i64::from(days)),
    );
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, format!("Surge cluster CA ({name})"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (from, until);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
    let mut node = CertificateParams::new(vec![name.to_owned()]).map_err(err)?;
    node.distinguished_name.push(DnType::CommonName, name);
    node.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    (node.not_before, node.not_after) = (from, until);
    let key = KeyPair::generate().map_err(err)?;
    let cert = node.signed_by(&key, &ca).map_err(err)?;
    Ok(Issued {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

impl Issued {
    /// Writes `ca.pem`, `node.pem` and `node.key` (readable by their owner
    /// only) into `dir`, creating it; their paths, in that order.
    pub fn write(&self, dir: &Path) -> Result<[std::path::PathBuf; 3], String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let paths = [
            dir.join("ca.pem"),
            dir.join("node.pem"),
            dir.join("node.key"),
        ];
        for (path, text) in paths.iter().zip([&self.ca, &self.cert, &self.key]) {
            write_private(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(paths)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A transport from `issued`'s files written under `dir`.
    fn transport(issued: &Issued, dir: &Path) -> Transport {
        let [ca, cert, key] = issued.write(dir).unwrap();
        Transport::tls(&TlsFiles {
            ca: &ca,
            cert: &cert,
            key: &key,
            name: "surge-cluster",
        })
        .unwrap()
    }

    /// Connects `client` to a listener accepting with `server`; whether
    /// the bytes sent arrived (both handshakes done).
    async fn talk(server: Transport, client: Transport) -> bool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut io = server.accept(tcp).await.ok()?;
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).await.ok()?;
            Some(buf)
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        if let Ok(mut io) = client.connect(tcp).await {
            let _ = io.write_all(b"hello").await;
            let _ = io.flush().await;
        }
        matches!(accepted.await.unwrap(), Some(b) if &b == b"hello")
    }

    #[tokio::test]
    async fn only_a_node_with_a_certificate_of_the_clusters_ca_gets_through() {
        let dir = tempfile::tempdir().unwrap();
        let ours = issue("surge-cluster", 1).unwrap();
        let theirs = issue("surge-cluster", 1).unwrap();
        let node = || transport(&ours, &dir.path().join("ours"));
        assert!(talk(node(), node()).await, "two nodes of the cluster talk");
        let stranger = transport(&theirs, &dir.path().join("theirs"));
        assert!(
            !talk(node(), stranger.clone()).await,
            "a caller with another CA's certificate is refused"
        );
        // One that trusts the cluster's CA (so it accepts the listener)
        // but holds another CA's certificate: the listener refuses it.
        let [ca, _, _] = ours.write(&dir.path().join("ours")).unwrap();
        let [_, their_cert, their_key] = theirs.write(&dir.path().join("theirs")).unwrap();
        let impostor = Transport::tls(&TlsFiles {
            ca: &ca,
            cert: &their_cert,
            key: &their_key,
            name: "surge-cluster",
        })
        .unwrap();
        assert!(
            !talk(node(), impostor).await,
            "the listener checks the caller's certificate"
        );
        assert!(
            !talk(stranger, node()).await,
            "a listener with another CA's certificate is not trusted"
        );
        assert!(
            !talk(node(), Transport::Plain).await,
            "plaintext is refused by a TLS node"
        );
        // The files say what is wrong with them.
        let [ca, cert, _] = ours.write(&dir.path().join("ours")).unwrap();
        let [_, _, their_key] = theirs.write(&dir.path().join("theirs")).unwrap();
        let mismatched = Transport::tls(&TlsFiles {
            ca: &ca,
            cert: &cert,
            key: &their_key,
            name: "surge-cluster",
        });
        assert!(mismatched.is_err(), "a key of another certificate");
        let missing = Transport::tls(&TlsFiles {
            ca: &dir.path().join("nowhere.pem"),
            cert: &cert,
            key: &their_key,
            name: "surge-cluster",
        });
        assert!(
            matches!(&missing, Err(e) if e.starts_with("cluster_tls_ca ")),
            "{:?}",
            missing.err()
        );
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let issued = issue("other-cluster", 1).unwrap();
        let [ca, cert, key] = issued.write(dir.path()).unwrap();
        let files = |name| TlsFiles {
            ca: &ca,
            cert: &cert,
            key: &key,
            name,
        };
        let named = Transport::tls(&files("other-cluster")).unwrap();
        let expecting = Transport::tls(&files("surge-cluster")).unwrap();
        assert!(talk(named.clone(), named.clone()).await);
        assert!(!talk(named, expecting).await);
    }
}
