//! The authorization endpoint (code flow). The client and its redirect URI are checked first,
//! exactly; until both hold, nothing is sent to the redirect URI. After that, errors go back
//! to the client with `state` and `iss` (RFC 9207). Unknown parameters are ignored.

use chrono::{Duration, NaiveDateTime};
use serde::Deserialize;

use super::errors::{ErrorCode, OAuthError, err};
use super::{CODE_TTL_SECS, Provider, parse_scopes};
use crate::client_config::ClientSpec;
use crate::crypto::tokens::{hash_token, random_token};
use crate::domain::session::Session;
use crate::storage::oauth::{CodeRow, ConsentRow, GrantRow, OAuthRepository};
use crate::storage::{DbConnection, StorageResult};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub acr_values: Option<String>,
    pub response_mode: Option<String>,
}

/// What the browser is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No trustworthy redirect URI: show an error page, redirect nowhere.
    Refuse(&'static str),
    /// Sign in first, then come back to `return_to` (a local path).
    Login { return_to: String, login_hint: Option<String> },
    /// Back to the client, with a code or an error.
    Redirect(String),
    /// Ask the user whether a third-party client may have these scopes.
    Consent { client_id: String, client_name: String, scopes: Vec<String> },
    /// The project requires a second factor the user has not set up: enrol, then come back.
    Enrol { return_to: String },
}

fn append(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

fn error_redirect(provider: &Provider, redirect_uri: &str, state: Option<&str>, e: &OAuthError) -> Decision {
    let mut pairs = vec![("error", e.code.as_str()), ("error_description", e.description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &provider.issuer));
    Decision::Redirect(append(redirect_uri, &pairs))
}

/// A PKCE S256 challenge: base64url of 32 bytes.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The authorize URL to come back to after login, without `prompt` and `max_age` (a fresh login
/// satisfies both; keeping them would ask again forever).
fn return_to(raw_query: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(k, _)| k != "prompt" && k != "max_age")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish();
    format!("/authorize?{q}")
}

struct Checked {
    client: std::sync::Arc<ClientSpec>,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    prompt_none: bool,
    prompt_login: bool,
    prompt_consent: bool,
    max_age: Option<i64>,
}

fn check(provider: &Provider, p: &AuthorizeParams) -> Result<Result<Checked, OAuthError>, &'static str> {
    let client = p.client_id.as_deref().and_then(|id| provider.client(id)).ok_or("The application is not known.")?;
    let redirect_uri = p
        .redirect_uri
        .as_deref()
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
        .ok_or("The application's return address is not registered.")?
        .to_owned();
    Ok((|| {
        if p.response_type.as_deref() != Some("code") {
            return Err(err(ErrorCode::UnsupportedResponseType, "Only response_type=code is supported."));
        }
        if p.response_mode.as_deref().is_some_and(|m| m != "query") {
            return Err(err(ErrorCode::InvalidRequest, "Only response_mode=query is supported."));
        }
        let scopes = parse_scopes(p.scope.as_deref().unwrap_or_default());
        if !scopes.iter().any(|s| s == "openid") {
            return Err(err(ErrorCode::InvalidScope, "The openid scope is required."));
        }
        if scopes.iter().any(|s| !client.scopes.contains(s)) {
            return Err(err(ErrorCode::InvalidScope, "A requested scope is not allowed for this client."));
        }
        let challenge = match (p.code_challenge.as_deref(), p.code_challenge_method.as_deref()) {
            (None, None) if !client.require_pkce => None,
            (None, _) => {
                return Err(err(ErrorCode::InvalidRequest, "PKCE with code_challenge_method=S256 is required."));
            }
            (Some(c), Some("S256")) if valid_challenge(c) => Some(c.to_owned()),
            (Some(_), Some("S256")) => return Err(err(ErrorCode::InvalidRequest, "The code_challenge is malformed.")),
            (Some(_), _) => {
                return Err(err(ErrorCode::InvalidRequest, "Only code_challenge_method=S256 is supported."));
            }
        };
        let prompts = parse_scopes(p.prompt.as_deref().unwrap_or_default());
        let prompt_none = prompts.iter().any(|v| v == "none");
        if prompt_none && prompts.len() > 1 {
            return Err(err(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values."));
        }
        let max_age = match p.max_age.as_deref() {
            None => None,
            Some(m) => Some(
                m.parse::<u32>().map_err(|_| err(ErrorCode::InvalidRequest, "max_age is not a number of seconds."))?,
            ),
        };
        Ok(Checked {
            client,
            redirect_uri: redirect_uri.clone(),
            scopes,
            challenge,
            prompt_none,
            prompt_login: prompts.iter().any(|v| v == "login"),
            prompt_consent: prompts.iter().any(|v| v == "consent"),
            max_age: max_age.map(i64::from),
        })
    })())
}

/// Decides what an authorization request leads to; issues a code when it may.
pub fn authorize(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    params: &AuthorizeParams,
    raw_query: &str,
    session: Option<&Session>,
) -> StorageResult<Decision> {
    decide(conn, provider, now, params, raw_query, session, None)
}

/// The user's answer on the consent page for the authorization request `params` (re-checked
/// here: nothing the page posted but the answer is trusted).
pub fn answer_consent(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    params: &AuthorizeParams,
    raw_query: &str,
    session: &Session,
    allow: bool,
) -> StorageResult<Decision> {
    decide(conn, provider, now, params, raw_query, Some(session), Some(allow))
}

fn decide(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    params: &AuthorizeParams,
    raw_query: &str,
    session: Option<&Session>,
    consent_answer: Option<bool>,
) -> StorageResult<Decision> {
    let checked = match check(provider, params) {
        Err(why) => return Ok(Decision::Refuse(why)),
        Ok(Err(e)) => {
            let uri = params.redirect_uri.as_deref().unwrap_or_default();
            return Ok(error_redirect(provider, uri, params.state.as_deref(), &e));
        }
        Ok(Ok(c)) => c,
    };
    let state = params.state.as_deref();
    let login = |prompt_none: bool| {
        if prompt_none {
            error_redirect(
                provider,
                &checked.redirect_uri,
                state,
                &err(ErrorCode::LoginRequired, "The user is not signed in."),
            )
        } else {
            Decision::Login {
                return_to: return_to(raw_query),
                login_hint: params.login_hint.clone().filter(|h| h.len() <= 256 && !h.chars().any(char::is_control)),
            }
        }
    };
    let Some(session) = session else { return Ok(login(checked.prompt_none)) };
    let too_old = checked.max_age.is_some_and(|m| now - session.created_at > Duration::seconds(m));
    if checked.prompt_login || too_old {
        return Ok(login(checked.prompt_none));
    }
    // The second factor the client's project requires (or `acr_values` asks for), decided by
    // the policy in one place: tokens for an enforcing project come only from an MFA session.
    match second_factor(conn, &checked.client, params, session, now)? {
        Decision2::Allow => {}
        Decision2::StepUp if checked.prompt_none => {
            return Ok(error_redirect(
                provider,
                &checked.redirect_uri,
                state,
                &err(ErrorCode::InteractionRequired, "The project requires a second factor."),
            ));
        }
        // Signing in again leads through the second-factor step, which the user can take.
        Decision2::StepUp => return Ok(Decision::Login { return_to: return_to(raw_query), login_hint: None }),
        Decision2::EnrolNow if checked.prompt_none => {
            return Ok(error_redirect(
                provider,
                &checked.redirect_uri,
                state,
                &err(ErrorCode::InteractionRequired, "The project requires a second factor."),
            ));
        }
        Decision2::EnrolNow => return Ok(Decision::Enrol { return_to: return_to(raw_query) }),
        Decision2::Refuse => {
            return Ok(error_redirect(
                provider,
                &checked.redirect_uri,
                state,
                &err(ErrorCode::AccessDenied, "The project's second-factor policy cannot be met."),
            ));
        }
    }
    if !checked.client.first_party {
        let user = session.user_id.to_string();
        match consent_answer {
            Some(false) => {
                return Ok(error_redirect(
                    provider,
                    &checked.redirect_uri,
                    state,
                    &err(ErrorCode::AccessDenied, "The user did not allow the application."),
                ));
            }
            Some(true) => conn.set_consent(&ConsentRow {
                user_id: user,
                client_id: checked.client.client_id.clone(),
                scopes: checked.scopes.join(" "),
                granted_at: now,
            })?,
            None => {
                let given = conn.consent(&user, &checked.client.client_id)?;
                let covered = given.is_some_and(|c| {
                    let allowed: Vec<&str> = c.scopes.split(' ').collect();
                    checked.scopes.iter().all(|s| allowed.contains(&s.as_str()))
                });
                if checked.prompt_none && (!covered || checked.prompt_consent) {
                    return Ok(error_redirect(
                        provider,
                        &checked.redirect_uri,
                        state,
                        &err(ErrorCode::ConsentRequired, "The user has not allowed this application yet."),
                    ));
                }
                if !covered || checked.prompt_consent {
                    return Ok(Decision::Consent {
                        client_id: checked.client.client_id.clone(),
                        client_name: checked.client.name.clone(),
                        scopes: checked.scopes.clone(),
                    });
                }
            }
        }
    }
    let grant_id = uuid::Uuid::new_v4().to_string();
    conn.insert_grant(&GrantRow {
        id: grant_id.clone(),
        client_id: checked.client.client_id.clone(),
        user_id: Some(session.user_id.to_string()),
        session_id: Some(session.id.to_string()),
        scopes: checked.scopes.join(" "),
        auth_time: Some(session.created_at),
        amr: serde_json::to_string(&session.amr).unwrap_or_else(|_| "[]".into()),
        acr: session.acr.clone(),
        created_at: now,
        revoked_at: None,
    })?;
    let code = random_token(32);
    conn.insert_code(&CodeRow {
        code_hash: hash_token(&code),
        grant_id,
        client_id: checked.client.client_id.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        nonce: params.nonce.clone().filter(|n| n.len() <= 512),
        code_challenge: checked.challenge,
        created_at: now,
        expires_at: now + Duration::seconds(CODE_TTL_SECS),
        consumed_at: None,
    })?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &provider.issuer));
    Ok(Decision::Redirect(append(&checked.redirect_uri, &pairs)))
}

/// What the second-factor policy says about this session and client.
enum Decision2 {
    Allow,
    StepUp,
    EnrolNow,
    Refuse,
}

/// `acr_values` naming one of these asks for a second factor.
const MFA_ACR: &[&str] = &["aal2", "mfa", "urn:idp:acr:mfa"];

fn second_factor(
    conn: &mut DbConnection,
    client: &ClientSpec,
    params: &AuthorizeParams,
    session: &Session,
    now: NaiveDateTime,
) -> StorageResult<Decision2> {
    use crate::mfa::policy::{self, Allowed, Decision as P, Requirement};
    let mut req = match client.project.as_deref() {
        Some(r) => match crate::tokens::resolve_project(conn, r)? {
            Some((org, project)) => policy::requirement_for(conn, org, Some(project))?,
            None => Requirement::none(),
        },
        None => Requirement::none(),
    };
    let asked = params.acr_values.as_deref().unwrap_or_default().split(' ').any(|v| MFA_ACR.contains(&v));
    if asked && !req.required {
        req = Requirement { required: true, allowed: Allowed::Any, grace_until: None };
    }
    if !req.required {
        return Ok(Decision2::Allow);
    }
    let factors = policy::user_factors(conn, session.user_id)?;
    Ok(match policy::decide(&req, &factors, &session.amr, now) {
        P::Allow => Decision2::Allow,
        // In the grace period an acr_values request is still a request: enrol first.
        P::Enrol { .. } if asked => Decision2::EnrolNow,
        P::Enrol { .. } => Decision2::Allow,
        P::StepUp { .. } => Decision2::StepUp,
        P::EnrolNow { .. } => Decision2::EnrolNow,
        P::Unsatisfiable => Decision2::Refuse,
    })
}
