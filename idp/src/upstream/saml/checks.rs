//! The checks samael leaves to us, on verified content only, with the time passed in:
//! Issuer, Audience, Recipient and Destination, InResponseTo, NotBefore / NotOnOrAfter /
//! IssueInstant with a bounded skew, a bearer confirmation, the assertion's own signature.

use chrono::{DateTime, Duration, Utc};
use samael::schema::{Assertion, Response};

/// Allowed difference between the IdP's clock and ours.
pub const CLOCK_SKEW_SECS: i64 = 120;
/// How old an IssueInstant may be.
pub const MAX_AGE_SECS: i64 = 300;
/// The longest a replay-store entry is kept, whatever the assertion says.
pub const MAX_VALIDITY_SECS: i64 = 24 * 3600;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Why a response is refused. The text is for logs; users see a generic page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlRejection {
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("signature: {0}")]
    Signature(&'static str),
    #[error("encryption: {0}")]
    Encryption(&'static str),
    #[error("the IdP answered with status {0}")]
    Status(String),
    #[error("issuer: {0}")]
    Issuer(&'static str),
    #[error("audience: {0}")]
    Audience(&'static str),
    #[error("recipient or destination: {0}")]
    Destination(&'static str),
    #[error("InResponseTo: {0}")]
    InResponseTo(&'static str),
    #[error("time: {0}")]
    Time(&'static str),
    #[error("subject: {0}")]
    Subject(&'static str),
    #[error("the assertion was seen before")]
    Replay,
    #[error("unsolicited response while IdP-initiated login is off")]
    Unsolicited,
}

/// What the response must match.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub idp_entity_id: &'a str,
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    /// The id of our AuthnRequest for this browser's flow; `None` for an IdP-initiated login.
    pub request_id: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// A verified assertion, reduced to what login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub assertion_id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    /// Until when the assertion id must be remembered.
    pub remember_until: DateTime<Utc>,
    pub authn_context: Option<String>,
}

/// The unverified Status: anything but Success is the IdP's refusal.
pub fn status(raw: &Response) -> Result<(), SamlRejection> {
    let code = raw.status.as_ref().and_then(|s| s.status_code.value.clone());
    match code.as_deref() {
        Some(SUCCESS) => Ok(()),
        Some(other) => Err(SamlRejection::Status(other.to_owned())),
        None => Err(SamlRejection::Malformed("no Status")),
    }
}

fn skew() -> Duration {
    Duration::seconds(CLOCK_SKEW_SECS)
}

fn check_instant(instant: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), SamlRejection> {
    if instant > now + skew() {
        return Err(SamlRejection::Time("IssueInstant in the future"));
    }
    if instant < now - Duration::seconds(MAX_AGE_SECS) - skew() {
        return Err(SamlRejection::Time("IssueInstant too old"));
    }
    Ok(())
}

fn check_in_response_to(got: Option<&str>, expected: Option<&str>) -> Result<(), SamlRejection> {
    match (got, expected) {
        (Some(g), Some(e)) if crate::crypto::tokens::ct_eq(g.as_bytes(), e.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(SamlRejection::InResponseTo("does not match this browser's request")),
        (None, Some(_)) => Err(SamlRejection::InResponseTo("missing")),
        (Some(_), None) => Err(SamlRejection::InResponseTo("names a request this browser did not make")),
        (None, None) => Ok(()),
    }
}

/// The Response-level checks. `signed` says whether `response` is the verified one (its
/// Destination and InResponseTo are then required), or the raw one (checked when present).
pub fn response(response: &Response, signed: bool, x: &Expected<'_>) -> Result<(), SamlRejection> {
    if response.version != "2.0" {
        return Err(SamlRejection::Malformed("not SAML 2.0"));
    }
    match response.destination.as_deref() {
        Some(d) if d == x.acs_url => {}
        Some(_) => return Err(SamlRejection::Destination("Destination is not our ACS")),
        None if signed => return Err(SamlRejection::Destination("a signed response without Destination")),
        None => {}
    }
    if let Some(issuer) = response.issuer.as_ref() {
        if issuer.value.as_deref().map(str::trim) != Some(x.idp_entity_id) {
            return Err(SamlRejection::Issuer("the Response's Issuer is not this connection's IdP"));
        }
    }
    if signed || response.in_response_to.is_some() {
        check_in_response_to(response.in_response_to.as_deref(), x.request_id)?;
    }
    if signed {
        check_instant(response.issue_instant, x.now)?;
    }
    Ok(())
}

/// The assertion's checks; `assertion` must be verified content. `signed_itself`: `a` is what
/// the assertion's own signature covered (xmlsec's pre-digest output, where the enveloped
/// Signature is gone); otherwise it came inside a signed Response and must carry its own
/// signature (verified by xmlsec with the Response's).
pub fn assertion(a: &Assertion, signed_itself: bool, x: &Expected<'_>) -> Result<Accepted, SamlRejection> {
    let now = x.now;
    if a.version != "2.0" {
        return Err(SamlRejection::Malformed("not SAML 2.0"));
    }
    if !signed_itself && a.signature.is_none() {
        return Err(SamlRejection::Signature("the assertion itself is not signed"));
    }
    if a.issuer.value.as_deref().map(str::trim) != Some(x.idp_entity_id) {
        return Err(SamlRejection::Issuer("the assertion's Issuer is not this connection's IdP"));
    }
    check_instant(a.issue_instant, now)?;

    let conditions = a.conditions.as_ref().ok_or(SamlRejection::Audience("no Conditions"))?;
    if conditions.not_before.is_some_and(|t| t > now + skew()) {
        return Err(SamlRejection::Time("not yet valid (Conditions NotBefore)"));
    }
    if conditions.not_on_or_after.is_some_and(|t| t <= now - skew()) {
        return Err(SamlRejection::Time("expired (Conditions NotOnOrAfter)"));
    }
    let restrictions = conditions.audience_restrictions.as_deref().unwrap_or_default();
    if restrictions.is_empty() {
        return Err(SamlRejection::Audience("no AudienceRestriction"));
    }
    // Each restriction must be satisfied (SAML core 2.5.1.4).
    if !restrictions.iter().all(|r| r.audience.iter().any(|aud| aud.trim() == x.sp_entity_id)) {
        return Err(SamlRejection::Audience("we are not the audience"));
    }

    let subject = a.subject.as_ref().ok_or(SamlRejection::Subject("no Subject"))?;
    let name_id = subject.name_id.as_ref().ok_or(SamlRejection::Subject("no NameID"))?;
    let value = name_id.value.trim();
    if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
        return Err(SamlRejection::Subject("an empty or unusable NameID"));
    }
    let mut bearer_until = None;
    let mut last_error = SamlRejection::Subject("no bearer SubjectConfirmation");
    for sc in subject.subject_confirmations.iter().flatten() {
        if sc.method.as_deref() != Some(BEARER) {
            continue;
        }
        let Some(data) = sc.subject_confirmation_data.as_ref() else {
            last_error = SamlRejection::Subject("a bearer confirmation without SubjectConfirmationData");
            continue;
        };
        let checked = (|| {
            if data.recipient.as_deref() != Some(x.acs_url) {
                return Err(SamlRejection::Destination("Recipient is not our ACS"));
            }
            let until =
                data.not_on_or_after.ok_or(SamlRejection::Time("a bearer confirmation without NotOnOrAfter"))?;
            if until <= now - skew() {
                return Err(SamlRejection::Time("expired (SubjectConfirmationData NotOnOrAfter)"));
            }
            if data.not_before.is_some_and(|t| t > now + skew()) {
                return Err(SamlRejection::Time("not yet valid (SubjectConfirmationData NotBefore)"));
            }
            check_in_response_to(data.in_response_to.as_deref(), x.request_id)?;
            Ok(until)
        })();
        match checked {
            Ok(until) => {
                bearer_until = Some(until);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let bearer_until = bearer_until.ok_or(last_error)?;
    let statements = a.authn_statements.as_deref().unwrap_or_default();
    if statements.is_empty() {
        return Err(SamlRejection::Subject("no AuthnStatement"));
    }
    if statements.iter().any(|s| s.session_not_on_or_after.is_some_and(|t| t <= now - skew())) {
        return Err(SamlRejection::Time("the IdP session has ended (SessionNotOnOrAfter)"));
    }
    let authn_context = statements
        .iter()
        .find_map(|s| s.authn_context.as_ref().and_then(|c| c.value.as_ref()).and_then(|r| r.value.clone()));

    let mut attributes = Vec::new();
    for statement in a.attribute_statements.iter().flatten() {
        for attr in &statement.attributes {
            let Some(name) = attr.name.clone() else { continue };
            let values = attr.values.iter().filter_map(|v| v.value.as_ref().map(|s| s.trim().to_owned())).collect();
            attributes.push((name, values));
        }
    }
    let latest = conditions.not_on_or_after.map_or(bearer_until, |c| c.max(bearer_until));
    let remember_until = latest.min(now + Duration::seconds(MAX_VALIDITY_SECS)) + skew();
    Ok(Accepted {
        assertion_id: a.id.clone(),
        name_id: value.to_owned(),
        name_id_format: name_id.format.clone(),
        attributes,
        remember_until,
        authn_context,
    })
}
