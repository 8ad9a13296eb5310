//! Google and any OpenID Connect issuer: discovery, authorization code with PKCE, state and
//! nonce; the ID token's signature (JWKS, refetched once for an unknown `kid`), `iss`, `aud`,
//! `exp` and `nonce` checked by openidconnect; `hd` and `email_verified` honoured.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::{Authorization, ExternalIdentity, FlowSecrets, UpstreamError, http_client};
use crate::config::{ConnectorSettings, ConnectorSpec};

/// The one discovery field beyond the core that we need: whether the issuer sends `iss` in
/// authorization responses (RFC 9207), in which case a response without it is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssParameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for IssParameter {}

type Metadata = ProviderMetadata<
    IssParameter,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// How long discovery (and so the JWKS) is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct OidcConnector {
    spec: ConnectorSpec,
    http: reqwest::Client,
    metadata: RwLock<Option<(Metadata, Instant)>>,
}

/// Claims openidconnect does not model that we read from the verified token.
#[derive(Debug, Default, Deserialize)]
struct ExtraClaims {
    hd: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl OidcConnector {
    pub fn new(spec: ConnectorSpec) -> Self {
        Self { spec, http: http_client(), metadata: RwLock::new(None) }
    }

    pub fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    fn settings(&self) -> (&url::Url, &[String], Option<&str>, &[String]) {
        match &self.spec.settings {
            ConnectorSettings::Oidc { issuer, scopes, groups_claim, hosted_domains } => {
                (issuer, scopes, groups_claim.as_deref(), hosted_domains)
            }
            ConnectorSettings::Github { web_url, .. } => (web_url, &[], None, &[]),
            ConnectorSettings::Saml(s) => (&s.sso_url, &[], None, &[]),
        }
    }

    fn issuer(&self) -> String {
        self.settings().0.as_str().trim_end_matches('/').to_owned()
    }

    async fn metadata(&self, refresh: bool) -> Result<Metadata, UpstreamError> {
        if !refresh {
            if let Some((m, at)) = self.metadata.read().await.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.issuer()).map_err(|e| UpstreamError::Invalid(format!("issuer: {e}")))?;
        let m = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("discovery at {}: {e}", self.issuer())))?;
        *self.metadata.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(&self, metadata: Metadata, redirect_uri: &str) -> Result<OidcClient, UpstreamError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.spec.client_id.clone()),
            Some(ClientSecret::new(self.spec.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    pub async fn authorize(
        &self,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<Authorization, UpstreamError> {
        let client = self.client(self.metadata(false).await?, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (_, scopes, _, hosted_domains) = self.settings();
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if let [only] = hosted_domains {
            // Google's account chooser hint; the `hd` claim is still checked on return.
            req = req.add_extra_param("hd", only.clone());
        }
        if let Some(hint) = login_hint {
            req = req.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state, nonce) = req.url();
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            secrets: FlowSecrets {
                nonce: Some(nonce.secret().clone()),
                pkce_verifier: Some(verifier.secret().clone()),
                saml_request_id: None,
            },
        })
    }

    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), UpstreamError> {
        match iss {
            Some(i) if i.trim_end_matches('/') == self.issuer() => Ok(()),
            Some(other) => Err(UpstreamError::Invalid(format!("authorization response from issuer {other:?}"))),
            None => {
                let announced =
                    self.metadata(false).await?.additional_metadata().authorization_response_iss_parameter_supported;
                if announced == Some(true) {
                    Err(UpstreamError::Invalid("the issuer announces iss in responses but sent none".into()))
                } else {
                    Ok(())
                }
            }
        }
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        secrets: FlowSecrets,
    ) -> Result<ExternalIdentity, UpstreamError> {
        let (Some(nonce), Some(verifier)) = (secrets.nonce, secrets.pkce_verifier) else {
            return Err(UpstreamError::Invalid("flow without nonce or PKCE verifier".into()));
        };
        let client = self.client(self.metadata(false).await?, redirect_uri)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| UpstreamError::Invalid(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => UpstreamError::Denied(format!("token endpoint: {}", r.error())),
                RequestTokenError::Request(e) => UpstreamError::Unavailable(format!("token endpoint: {e}")),
                other => UpstreamError::Invalid(format!("token endpoint: {other}")),
            })?;
        let id_token =
            token.id_token().ok_or_else(|| UpstreamError::Invalid("no ID token in the token response".into()))?;
        let nonce = Nonce::new(nonce);
        let checked = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                // An unknown kid may be a rotation: fetch the JWKS once more, then decide.
                let fresh = self.client(self.metadata(true).await?, redirect_uri)?;
                id_token.claims(&fresh.id_token_verifier(), &nonce).cloned()
            }
            other => other.cloned(),
        }
        .map_err(|e| UpstreamError::Invalid(format!("ID token: {e}")))?;

        // The token verified, so its payload is what the upstream signed.
        let extra = payload(&id_token.to_string());
        let (_, _, groups_claim, hosted_domains) = self.settings();
        if !hosted_domains.is_empty() {
            let hd = extra.hd.as_deref().map(str::to_lowercase);
            if !hd.as_ref().is_some_and(|hd| hosted_domains.contains(hd)) {
                return Err(UpstreamError::NotAllowed(format!("hosted domain {hd:?} is not allowed")));
            }
        }
        let groups = groups_claim
            .and_then(|name| extra.rest.get(name))
            .map(|v| match v {
                serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            })
            .unwrap_or_default();
        Ok(ExternalIdentity {
            connector_id: self.spec.id.to_string(),
            subject: checked.subject().to_string(),
            email: checked.email().map(|e| e.to_string()),
            email_verified: checked.email_verified().unwrap_or(false),
            name: checked.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            groups,
            amr: checked.auth_method_refs().map(|v| v.iter().map(|a| a.to_string()).collect()).unwrap_or_default(),
            acr: checked.auth_context_ref().map(|a| a.to_string()),
        })
    }
}

type OidcClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn payload(jwt: &str) -> ExtraClaims {
    jwt.split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
