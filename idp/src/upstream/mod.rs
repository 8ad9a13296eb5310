//! Upstream connectors: each turns a login at an upstream provider into an [`ExternalIdentity`].
//! Google and generic OIDC share one implementation (discovery, PKCE, nonce, ID token checks);
//! GitHub is OAuth2 plus its REST API; SAML 2.0 connections (`saml`) post to an ACS instead of
//! a callback, and end in the same login completion.

pub mod github;
pub mod oidc;
pub mod saml;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ConnectorKind, ConnectorSettings, ConnectorSpec};

/// Who the upstream says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub connector_id: String,
    /// Stable upstream identifier (`sub`, GitHub's numeric id): never the e-mail.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// What the upstream says about how the user authenticated (OIDC `amr`/`acr`).
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

/// What the callback needs that must not travel through the browser: sealed in the flow row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSecrets {
    pub nonce: Option<String>,
    pub pkce_verifier: Option<String>,
    /// SAML: the id of our AuthnRequest, which the response's InResponseTo must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_request_id: Option<String>,
}

/// Where to send the browser, and what to remember until it comes back.
#[derive(Debug)]
pub struct Authorization {
    pub url: Url,
    pub state: String,
    pub secrets: FlowSecrets,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached or answered with a server error.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream refused (the user cancelled, or it denied access).
    #[error("upstream refused: {0}")]
    Denied(String),
    /// The upstream's answer failed a check (signature, issuer, audience, expiry, nonce...).
    #[error("invalid upstream response: {0}")]
    Invalid(String),
    /// The identity is genuine but policy does not let it in (hosted domain, organisation).
    #[error("not allowed: {0}")]
    NotAllowed(String),
}

pub(crate) fn http_client() -> reqwest::Client {
    // No redirects: following them opens the door to SSRF through upstream metadata.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("idp/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[derive(Debug)]
pub enum Connector {
    Oidc(Box<oidc::OidcConnector>),
    Github(Box<github::GithubConnector>),
    Saml(Box<saml::SamlConnector>),
}

impl Connector {
    pub fn new(spec: ConnectorSpec) -> Self {
        match &spec.settings {
            ConnectorSettings::Oidc { .. } => Connector::Oidc(Box::new(oidc::OidcConnector::new(spec))),
            ConnectorSettings::Github { .. } => Connector::Github(Box::new(github::GithubConnector::new(spec))),
            ConnectorSettings::Saml(_) => Connector::Saml(Box::new(saml::SamlConnector::new(spec))),
        }
    }

    pub fn spec(&self) -> &ConnectorSpec {
        match self {
            Connector::Oidc(c) => c.spec(),
            Connector::Github(c) => c.spec(),
            Connector::Saml(c) => c.spec(),
        }
    }

    /// The SAML connection, for the ACS and metadata endpoints.
    pub fn saml(&self) -> Option<&saml::SamlConnector> {
        match self {
            Connector::Saml(c) => Some(c),
            _ => None,
        }
    }

    pub fn id(&self) -> &str {
        self.spec().id.as_str()
    }

    pub fn name(&self) -> &str {
        &self.spec().name
    }

    pub fn kind(&self) -> ConnectorKind {
        self.spec().kind
    }

    /// Where to send the browser; `login_hint` (an e-mail typed on our login page) is passed on.
    /// A SAML connection answers at its ACS rather than `redirect_uri`, and signs with `sp`.
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        login_hint: Option<&str>,
        sp: saml::SpContext<'_>,
    ) -> Result<Authorization, UpstreamError> {
        match self {
            Connector::Oidc(c) => c.authorize(redirect_uri, login_hint).await,
            Connector::Github(c) => c.authorize(redirect_uri, login_hint),
            Connector::Saml(c) => c.authorize(sp),
        }
    }

    /// Checks the `iss` of an authorization response (RFC 9207) against this connector.
    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), UpstreamError> {
        match self {
            Connector::Oidc(c) => c.check_response_issuer(iss).await,
            Connector::Github(_) | Connector::Saml(_) => match iss {
                None => Ok(()),
                Some(_) => Err(UpstreamError::Invalid("an iss parameter from a provider that sends none".into())),
            },
        }
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        secrets: FlowSecrets,
    ) -> Result<ExternalIdentity, UpstreamError> {
        match self {
            Connector::Oidc(c) => c.finish(redirect_uri, code, secrets).await,
            Connector::Github(c) => c.finish(redirect_uri, code, secrets).await,
            Connector::Saml(_) => Err(UpstreamError::Invalid("a SAML connection answers at its ACS".into())),
        }
    }
}

/// The connectors idp knows: those of the configuration file, and those organisations'
/// administrators created, re-read from the database at most every [`STORED_TTL`] (and at once
/// for an id not seen yet), so every instance sees a new connector within seconds.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    fixed: Vec<Arc<Connector>>,
    stored: Arc<std::sync::RwLock<Stored>>,
}

#[derive(Debug, Default)]
struct Stored {
    list: Vec<Arc<Connector>>,
    loaded_at: Option<std::time::Instant>,
}

pub const STORED_TTL: Duration = Duration::from_secs(30);

impl Connectors {
    pub fn from_specs(specs: &[ConnectorSpec]) -> Self {
        Self { fixed: specs.iter().cloned().map(|s| Arc::new(Connector::new(s))).collect(), stored: Arc::default() }
    }

    /// Whether the stored connectors should be re-read (stale, or `id` is unknown).
    pub fn needs_refresh(&self, id: Option<&str>) -> bool {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        let stale = stored.loaded_at.is_none_or(|t| t.elapsed() >= STORED_TTL);
        let unknown = id.is_some_and(|id| self.get(id).is_none());
        stale || unknown
    }

    /// Replaces the stored connectors, keeping the instances (and their discovery caches) of
    /// those whose settings did not change.
    pub fn replace_stored(&self, specs: Vec<ConnectorSpec>) {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        let list = specs
            .into_iter()
            .filter(|s| !self.fixed.iter().any(|f| f.spec().id == s.id))
            .map(|s| match stored.list.iter().find(|c| c.spec() == &s) {
                Some(same) => same.clone(),
                None => Arc::new(Connector::new(s)),
            })
            .collect();
        stored.list = list;
        stored.loaded_at = Some(std::time::Instant::now());
    }

    pub fn is_fixed(&self, id: &str) -> bool {
        self.fixed.iter().any(|c| c.id() == id)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connector>> {
        self.fixed.iter().find(|c| c.id() == id).cloned().or_else(|| {
            self.stored.read().unwrap_or_else(|p| p.into_inner()).list.iter().find(|c| c.id() == id).cloned()
        })
    }

    /// Every connector, the file's first.
    pub fn all(&self) -> Vec<Arc<Connector>> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        self.fixed.iter().chain(stored.list.iter()).cloned().collect()
    }

    /// Home-realm discovery: the connector an e-mail address's domain is routed to.
    pub fn for_email(&self, email: &str) -> Option<Arc<Connector>> {
        let (_, domain) = email.trim().rsplit_once('@')?;
        self.all().into_iter().find(|c| c.spec().domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
    }
}
