//! The TXT lookups domain verification makes, through hickory-resolver: at the nameserver the
//! configuration names (`dns_resolver`), or the system's. No cache, so a record just published
//! is seen at the next check.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Name, Resolver};

/// Why no TXT data came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist, or holds no TXT record.
    #[error("no TXT record")]
    NoRecord,
    /// The nameserver did not answer, or answered with an error.
    #[error("the DNS lookup failed: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxtResolver {
    nameserver: Option<SocketAddr>,
}

impl TxtResolver {
    pub fn new(nameserver: Option<SocketAddr>) -> Self {
        Self { nameserver }
    }

    /// Every TXT record at `name` (a fully qualified name), each record's strings joined.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| DnsError::Unavailable(format!("{name} is not a DNS name: {e}")))?;
        let mut builder = match self.nameserver {
            Some(a) => Resolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[a.ip()], a.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => Resolver::builder_tokio().map_err(|e| DnsError::Unavailable(format!("no system resolver: {e}")))?,
        };
        let opts = builder.options_mut();
        // UDP, then TCP: at most 6 s in all when nobody answers.
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 1;
        opts.cache_size = 0;
        opts.ndots = 0;
        let resolver = builder.build();
        match resolver.txt_lookup(fqdn).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|txt| txt.txt_data().iter().map(|part| String::from_utf8_lossy(part)).collect::<String>())
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Err(DnsError::NoRecord),
            Err(e) => Err(DnsError::Unavailable(e.to_string())),
        }
    }
}
