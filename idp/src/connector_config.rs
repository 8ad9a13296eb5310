//! `[[connectors]]` in the configuration file, as Dex operators write them, and their validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use crate::config::Problem;
use crate::domain::organisation::Slug;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    Google,
    Github,
    Oidc,
    Saml,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Google => "google",
            ConnectorKind::Github => "github",
            ConnectorKind::Oidc => "oidc",
            ConnectorKind::Saml => "saml",
        }
    }
}

/// One `[[connectors]]` table as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ConnectorKind,
    pub name: String,
    /// OIDC and GitHub only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted_domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub trust_upstream_mfa: bool,
    /// E-mail domains whose users the login page sends straight to this connector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Upstream groups (OIDC groups claim, GitHub `org` or `org/team`) mapped to roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_mappings: Vec<RoleMappingConfig>,
    // SAML 2.0 only (see [`crate::saml_config`]): the IdP's product, its entity id, SSO URL and
    // pinned certificate(s), given one by one or as its metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<crate::saml_config::SamlPreset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_url: Option<String>,
    /// PEM, one or more certificates (two during the IdP's certificate rollover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_certificate_file: Option<PathBuf>,
    /// The IdP's metadata XML (an EntityDescriptor), inline or as a file: entity id, SSO URL
    /// and signing certificates are taken from it unless given above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_file: Option<PathBuf>,
    /// Sign our AuthnRequests (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_requests: Option<bool>,
    /// Accept responses the IdP sends without our request (IdP-initiated); off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_idp_initiated: bool,
    /// Refuse assertions that are not encrypted to our SP certificate; off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_encrypted_assertions: bool,
    /// Attribute names, when the IdP's differ from the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_attribute: Option<String>,
}

impl ConnectorConfig {
    fn has_saml_settings(&self) -> bool {
        self.preset.is_some()
            || self.idp_entity_id.is_some()
            || self.sso_url.is_some()
            || self.idp_certificate.is_some()
            || self.idp_certificate_file.is_some()
            || self.idp_metadata.is_some()
            || self.idp_metadata_file.is_some()
            || self.sign_requests.is_some()
            || self.allow_idp_initiated
            || self.require_encrypted_assertions
            || self.email_attribute.is_some()
            || self.first_name_attribute.is_some()
            || self.last_name_attribute.is_some()
            || self.groups_attribute.is_some()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleMappingConfig {
    pub group: String,
    /// The organisation's slug.
    pub organisation: String,
    /// A project's slug in that organisation; the role is then the project role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// owner, admin, member or viewer.
    pub role: String,
}

/// A validated group-to-role rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMapping {
    pub group: String,
    pub organisation: Slug,
    pub project: Option<Slug>,
    pub role: crate::domain::role::BuiltinRole,
}

/// A client secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// What kind-specific settings a validated connector carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorSettings {
    /// Google and generic OIDC: discovery from the issuer.
    Oidc {
        issuer: Url,
        scopes: Vec<String>,
        groups_claim: Option<String>,
        hosted_domains: Vec<String>,
    },
    Github {
        web_url: Url,
        api_url: Url,
        orgs: Vec<String>,
    },
    Saml(Box<crate::saml_config::SamlSettings>),
}

/// A validated connector, ready for `upstream::Connector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSpec {
    pub id: Slug,
    pub kind: ConnectorKind,
    pub name: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub settings: ConnectorSettings,
    pub trust_upstream_mfa: bool,
    /// Home-realm discovery: e-mail domains routed to this connector.
    pub domains: Vec<String>,
    pub role_mappings: Vec<RoleMapping>,
}

pub(crate) fn problem(key: String, what: impl Into<String>, expected: impl Into<String>) -> Problem {
    Problem { key, problem: what.into(), expected: expected.into() }
}

pub(crate) fn http_url(raw: &str) -> Option<Url> {
    let u = Url::parse(raw).ok()?;
    let loopback = matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || u.host_str() == Some("localhost");
    (u.scheme() == "https" || (u.scheme() == "http" && loopback)).then_some(u)
}

/// Resolves a secret given inline, by environment variable, or by file; exactly one.
/// Where a configured secret comes from: given inline, by environment variable, or by file; at
/// most one. `Ok(None)` when none is given. Shared by connectors and clients.
pub(crate) fn secret_from(
    inline: Option<&String>,
    env_var: Option<&String>,
    file: Option<&PathBuf>,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Problem> {
    Ok(Some(match (inline, env_var, file) {
        (None, None, None) => return Ok(None),
        (Some(s), None, None) => s.clone(),
        (None, Some(var), None) => env(var).ok_or_else(|| {
            problem(
                format!("{key}.client_secret_env"),
                format!("environment variable {var} is not set"),
                "the variable to hold the secret",
            )
        })?,
        (None, None, Some(path)) => {
            std::fs::read_to_string(path).map(|s| s.trim_end_matches(['\n', '\r']).to_owned()).map_err(|e| {
                problem(format!("{key}.client_secret_file"), format!("{}: {e}", path.display()), "a readable file")
            })?
        }
        _ => {
            return Err(problem(
                format!("{key}.client_secret"),
                "give at most one of client_secret, client_secret_env, client_secret_file",
                "one source for the secret",
            ));
        }
    }))
}

fn resolve_secret(
    c: &ConnectorConfig,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientSecret, Problem> {
    let secret =
        secret_from(c.client_secret.as_ref(), c.client_secret_env.as_ref(), c.client_secret_file.as_ref(), key, env)?
            .unwrap_or_default();
    if secret.is_empty() {
        return Err(problem(
            format!("{key}.client_secret"),
            "is missing or empty",
            "the client secret the upstream issued",
        ));
    }
    Ok(ClientSecret::new(secret))
}

pub fn validate_connectors(
    list: &[ConnectorConfig],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<ConnectorSpec> {
    let mut out: Vec<ConnectorSpec> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let key = format!("connectors[{i}]");
        let before = problems.len();
        let id =
            Slug::parse(&c.id).map_err(|e| problems.push(problem(format!("{key}.id"), format!("{:?}: {e}", c.id), "")));
        if let Ok(id) = &id {
            if out.iter().any(|o| o.id == *id) {
                problems.push(problem(
                    format!("{key}.id"),
                    format!("{:?} is used by another connector", c.id),
                    "a unique id",
                ));
            }
        }
        for d in &c.domains {
            let taken = out.iter().any(|o| o.domains.iter().any(|od| od.eq_ignore_ascii_case(d.trim())));
            let valid = !d.trim().is_empty() && !d.contains('@') && !d.contains('/') && d.contains('.');
            if !valid || taken {
                let why = if taken { "is routed to another connector already" } else { "is not a domain name" };
                problems.push(problem(
                    format!("{key}.domains"),
                    format!("{d:?} {why}"),
                    "e-mail domains such as example.com, each routed once",
                ));
            }
        }
        let mut role_mappings = Vec::new();
        for (j, m) in c.role_mappings.iter().enumerate() {
            let mk = format!("{key}.role_mappings[{j}]");
            let org = Slug::parse(&m.organisation);
            let project = m.project.as_deref().map(Slug::parse).transpose();
            let role = m.role.parse::<crate::domain::role::BuiltinRole>();
            match (org, project, role) {
                (Ok(organisation), Ok(project), Ok(role)) if !m.group.trim().is_empty() => {
                    role_mappings.push(RoleMapping { group: m.group.trim().to_owned(), organisation, project, role });
                }
                (_, _, Err(e)) => problems.push(problem(format!("{mk}.role"), e.to_string(), "")),
                (Err(_), _, _) | (_, Err(_), _) => problems.push(problem(
                    format!("{mk}.organisation"),
                    "is not a slug",
                    "the organisation's (and project's) slug",
                )),
                _ => problems.push(problem(format!("{mk}.group"), "is empty", "the upstream group's name")),
            }
        }
        if c.name.trim().is_empty() {
            problems.push(problem(format!("{key}.name"), "is empty", "the name shown on the login page"));
        }
        let saml = c.kind == ConnectorKind::Saml;
        if !saml && c.client_id.trim().is_empty() {
            problems.push(problem(format!("{key}.client_id"), "is empty", "the client id the upstream issued"));
        }
        let secret = if saml {
            if !c.client_id.is_empty()
                || c.client_secret.is_some()
                || c.client_secret_env.is_some()
                || c.client_secret_file.is_some()
            {
                problems.push(problem(
                    format!("{key}.client_id"),
                    "does not apply to type saml",
                    "no client_id or client_secret: SAML trusts the IdP's certificate",
                ));
            }
            Ok(ClientSecret::new(String::new()))
        } else {
            resolve_secret(c, &key, env).map_err(|p| problems.push(p))
        };
        if !saml && c.has_saml_settings() {
            problems.push(problem(
                format!("{key}.preset"),
                format!("SAML settings do not apply to type {}", c.kind.as_str()),
                "",
            ));
        }
        let wrong = |field: &str, set: bool, problems: &mut Vec<Problem>| {
            if set {
                problems.push(problem(
                    format!("{key}.{field}"),
                    format!("does not apply to type {}", c.kind.as_str()),
                    "",
                ));
            }
        };
        let settings = match c.kind {
            ConnectorKind::Saml => {
                wrong("issuer", c.issuer.is_some(), problems);
                wrong("scopes", c.scopes.is_some(), problems);
                wrong("groups_claim", c.groups_claim.is_some(), problems);
                wrong("hosted_domains", !c.hosted_domains.is_empty(), problems);
                wrong("orgs", !c.orgs.is_empty(), problems);
                wrong("base_url", c.base_url.is_some(), problems);
                crate::saml_config::validate(c, &key, problems).map(|s| ConnectorSettings::Saml(Box::new(s)))
            }
            ConnectorKind::Google | ConnectorKind::Oidc => {
                wrong("orgs", !c.orgs.is_empty(), problems);
                wrong("base_url", c.base_url.is_some(), problems);
                if c.kind == ConnectorKind::Oidc {
                    wrong("hosted_domains", !c.hosted_domains.is_empty(), problems);
                }
                let issuer_raw = match (c.kind, &c.issuer) {
                    (_, Some(i)) => Some(i.clone()),
                    (ConnectorKind::Google, None) => Some("https://accounts.google.com".to_owned()),
                    _ => None,
                };
                let issuer = match issuer_raw.as_deref().map(|r| (r, http_url(r))) {
                    None => Err(problem(
                        format!("{key}.issuer"),
                        "is missing",
                        "the issuer URL, e.g. https://login.example.com",
                    )),
                    Some((raw, None)) => Err(problem(
                        format!("{key}.issuer"),
                        format!("{raw:?} is not an https URL"),
                        "https://... (http only on loopback)",
                    )),
                    Some((_, Some(u))) => Ok(u),
                }
                .map_err(|p| problems.push(p));
                let scopes =
                    c.scopes.clone().unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
                if !scopes.iter().any(|s| s == "openid") {
                    problems.push(problem(format!("{key}.scopes"), "lacks openid", "a list including \"openid\""));
                }
                issuer.ok().map(|issuer| ConnectorSettings::Oidc {
                    issuer,
                    scopes,
                    groups_claim: c.groups_claim.clone(),
                    hosted_domains: c.hosted_domains.iter().map(|d| d.to_lowercase()).collect(),
                })
            }
            ConnectorKind::Github => {
                wrong("issuer", c.issuer.is_some(), problems);
                wrong("hosted_domains", !c.hosted_domains.is_empty(), problems);
                wrong("groups_claim", c.groups_claim.is_some(), problems);
                let raw = c.base_url.clone().unwrap_or_else(|| "https://github.com".into());
                match http_url(&raw) {
                    None => {
                        problems.push(problem(
                            format!("{key}.base_url"),
                            format!("{raw:?} is not an https URL"),
                            "https://github.example.com",
                        ));
                        None
                    }
                    Some(web) => {
                        let api = if web.host_str() == Some("github.com") {
                            Url::parse("https://api.github.com/").ok()
                        } else {
                            web.join("api/v3/").ok()
                        };
                        api.map(|api_url| ConnectorSettings::Github {
                            web_url: web,
                            api_url,
                            orgs: c.orgs.iter().map(|o| o.to_lowercase()).collect(),
                        })
                    }
                }
            }
        };
        if problems.len() == before {
            if let (Ok(id), Ok(client_secret), Some(settings)) = (id, secret, settings) {
                out.push(ConnectorSpec {
                    id,
                    kind: c.kind,
                    name: c.name.trim().to_owned(),
                    client_id: c.client_id.clone(),
                    client_secret,
                    settings,
                    trust_upstream_mfa: c.trust_upstream_mfa,
                    domains: c.domains.iter().map(|d| d.trim().to_lowercase()).collect(),
                    role_mappings,
                });
            }
        }
    }
    out
}
