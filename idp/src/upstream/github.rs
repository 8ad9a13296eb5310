//! GitHub (and GitHub Enterprise Server): the OAuth web flow with state and PKCE, then the
//! identity from the REST API: `/user`, `/user/emails` for the primary verified address, and
//! `/user/orgs` and `/user/teams` to restrict who may log in and to map teams to roles.

use serde::Deserialize;
use url::Url;

use super::{Authorization, ExternalIdentity, FlowSecrets, UpstreamError, http_client};
use crate::config::{ConnectorSettings, ConnectorSpec};
use crate::crypto::tokens::random_token;

const SCOPES: &str = "read:user user:email read:org";
const API_VERSION: &str = "2022-11-28";

#[derive(Debug)]
pub struct GithubConnector {
    spec: ConnectorSpec,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Debug, Deserialize)]
struct GithubOrg {
    login: String,
}

#[derive(Debug, Deserialize)]
struct GithubTeam {
    slug: String,
    organization: GithubOrg,
}

impl GithubConnector {
    pub fn new(spec: ConnectorSpec) -> Self {
        Self { spec, http: http_client() }
    }

    pub fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    fn urls(&self) -> (&Url, &Url, &[String]) {
        match &self.spec.settings {
            ConnectorSettings::Github { web_url, api_url, orgs } => (web_url, api_url, orgs),
            ConnectorSettings::Oidc { issuer, .. } => (issuer, issuer, &[]),
            ConnectorSettings::Saml(s) => (&s.sso_url, &s.sso_url, &[]),
        }
    }

    pub fn authorize(&self, redirect_uri: &str, login_hint: Option<&str>) -> Result<Authorization, UpstreamError> {
        let (web, _, _) = self.urls();
        let mut url = web.join("login/oauth/authorize").map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let state = random_token(32);
        let verifier = random_token(32);
        let challenge = openidconnect::PkceCodeChallenge::from_code_verifier_sha256(
            &openidconnect::PkceCodeVerifier::new(verifier.clone()),
        );
        url.query_pairs_mut()
            .append_pair("client_id", &self.spec.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &state)
            .append_pair("allow_signup", "false")
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = login_hint {
            // GitHub's `login` suggests an account; an e-mail address is not one.
            if !hint.contains('@') {
                url.query_pairs_mut().append_pair("login", hint);
            }
        }
        Ok(Authorization {
            url,
            state,
            secrets: FlowSecrets { nonce: None, pkce_verifier: Some(verifier), saml_request_id: None },
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, token: &str, path: &str) -> Result<T, UpstreamError> {
        let (_, api, _) = self.urls();
        let url = api.join(path).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let res = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("GitHub API {path}: {e}")))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(UpstreamError::Unavailable(format!("GitHub API {path}: {status}")));
        }
        if !status.is_success() {
            return Err(UpstreamError::Invalid(format!("GitHub API {path}: {status}")));
        }
        res.json().await.map_err(|e| UpstreamError::Invalid(format!("GitHub API {path}: {e}")))
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        secrets: FlowSecrets,
    ) -> Result<ExternalIdentity, UpstreamError> {
        let (web, _, allowed_orgs) = self.urls();
        let token_url = web.join("login/oauth/access_token").map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let mut form = vec![
            ("client_id", self.spec.client_id.as_str()),
            ("client_secret", self.spec.client_secret.expose()),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = secrets.pkce_verifier.as_deref() {
            form.push(("code_verifier", v));
        }
        let res = self
            .http
            .post(token_url)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("GitHub token endpoint: {e}")))?;
        if res.status().is_server_error() {
            return Err(UpstreamError::Unavailable(format!("GitHub token endpoint: {}", res.status())));
        }
        // GitHub answers errors with 200 and an `error` field.
        let answer: TokenAnswer =
            res.json().await.map_err(|e| UpstreamError::Invalid(format!("GitHub token endpoint: {e}")))?;
        let token = match (answer.access_token, answer.error) {
            (Some(t), None) => t,
            (_, Some(err)) => {
                return Err(UpstreamError::Denied(format!("{err}: {}", answer.error_description.unwrap_or_default())));
            }
            (None, None) => return Err(UpstreamError::Invalid("no access token".into())),
        };
        let user: GithubUser = self.get(&token, "user").await?;
        // 100 is GitHub's largest page; more organisations or teams than that are not read.
        let emails: Vec<GithubEmail> = self.get(&token, "user/emails?per_page=100").await?;
        let orgs: Vec<GithubOrg> = self.get(&token, "user/orgs?per_page=100").await?;
        let teams: Vec<GithubTeam> = self.get(&token, "user/teams?per_page=100").await?;
        let org_logins: Vec<String> = orgs.iter().map(|o| o.login.to_lowercase()).collect();
        if !allowed_orgs.is_empty() && !org_logins.iter().any(|o| allowed_orgs.contains(o)) {
            return Err(UpstreamError::NotAllowed(format!(
                "GitHub user {} is in none of the allowed organisations",
                user.login
            )));
        }
        let primary = emails.iter().find(|e| e.primary);
        let groups = org_logins
            .iter()
            .cloned()
            .chain(teams.iter().map(|t| format!("{}/{}", t.organization.login.to_lowercase(), t.slug)))
            .collect();
        Ok(ExternalIdentity {
            connector_id: self.spec.id.to_string(),
            subject: user.id.to_string(),
            email: primary.map(|e| e.email.clone()),
            email_verified: primary.is_some_and(|e| e.verified),
            name: user.name.or(Some(user.login)),
            groups,
            amr: Vec::new(),
            acr: None,
        })
    }
}
