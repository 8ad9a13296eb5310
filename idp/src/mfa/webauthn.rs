//! WebAuthn: passkeys and security keys, through webauthn-rs.
//!
//! Two kinds of credential, both stored in `webauthn_credentials`:
//!
//! * a **passkey** is registered as a discoverable credential with user verification required:
//!   on its own it is a multi-factor login (possession + the PIN or biometric that unlocked it),
//!   so `/login` can use it with no user name at all ([`start_passkey_login`]);
//! * a **security key** is a second factor after a first one ([`start_second_factor`]). A passkey
//!   answers there too.
//!
//! Every ceremony (a registration or an authentication) keeps webauthn-rs's state server-side in
//! `webauthn_ceremonies`, so any instance can finish it; it is bound to what started it (the
//! session, the pending login, or the login page's pre-session cookie), lives
//! [`CEREMONY_LIFETIME`], replaces any earlier one of the same binding, and is taken (deleted)
//! before it is finished, so an answer can be
//! submitted once: webauthn-rs itself accepts the same answer twice against the same state.
//!
//! What webauthn-rs leaves to us, and this module does: the state's copy of a credential may be
//! stale by the time it is finished (another login used it meanwhile), so the counter is checked
//! against the *stored* one (it must grow, unless both are zero) and written with a conditional
//! update; the backup-eligible flag must not change from registration; a discoverable answer
//! names its user, and must be a passkey of that very user.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, NaiveDateTime};
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url,
};

use super::MfaError;
use crate::audit::{Action, Actor, Auditor, Event};
use crate::crypto::tokens::hash_token;
use crate::domain::{UserId, WebauthnCeremonyId, WebauthnCredentialId};
use crate::storage::audit::AuditRepository;
use crate::storage::webauthn::{WebauthnCeremonyRow, WebauthnCredentialRow, WebauthnRepository, WebauthnUse};
use crate::storage::{StorageError, StorageResult, parse_id};

/// How long a ceremony may take.
pub const CEREMONY_LIFETIME: Duration = Duration::minutes(5);
/// Longest credential name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Most credentials one user may register.
pub const MAX_CREDENTIALS: usize = 20;

/// RFC 8176 `amr`: a proof of possession of a hardware-bound key, or of a key that may live in
/// software (a synced passkey: backup eligible).
pub const AMR_HWK: &str = "hwk";
pub const AMR_SWK: &str = "swk";

/// The relying party: RP id = the host of `public_url`, origin = `public_url`'s origin. `None`
/// (WebAuthn not offered) when the host is an IP address, which is not a valid RP id.
pub fn relying_party(public_url: &url::Url, rp_name: &str) -> Result<Option<Webauthn>, String> {
    let Some(url::Host::Domain(host)) = public_url.host() else { return Ok(None) };
    let origin = Url::parse(&public_url.origin().ascii_serialization()).map_err(|e| e.to_string())?;
    webauthn_rs::WebauthnBuilder::new(host, &origin)
        .and_then(|b| b.rp_name(rp_name).build())
        .map(Some)
        .map_err(|e| format!("WebAuthn relying party {host}: {e}"))
}

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Passkey,
    SecurityKey,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Passkey => "passkey",
            Kind::SecurityKey => "security_key",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, MfaError> {
        match s {
            "passkey" => Ok(Kind::Passkey),
            "security_key" => Ok(Kind::SecurityKey),
            _ => Err(MfaError::Malformed("the kind is passkey or security_key")),
        }
    }

    fn stored(s: &str) -> StorageResult<Kind> {
        Kind::parse(s).map_err(|_| StorageError::Corrupt(format!("webauthn credential kind {s:?}")))
    }
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register(Kind),
    SecondFactor,
    PasskeyLogin,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register(Kind::Passkey) => "register_passkey",
            Purpose::Register(Kind::SecurityKey) => "register_security_key",
            Purpose::SecondFactor => "second_factor",
            Purpose::PasskeyLogin => "passkey_login",
        }
    }
}

/// What a ceremony is bound to; only the same binding can finish it.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// A signed-in session registering a credential (its id).
    Session(crate::domain::SessionId),
    /// A pending login waiting for its second factor (its id).
    PendingLogin(&'a str),
    /// The login page's pre-session cookie value.
    PreSession(&'a str),
}

impl Binding<'_> {
    fn hash(&self) -> String {
        match self {
            Binding::Session(id) => hash_token(&format!("session:{id}")),
            Binding::PendingLogin(id) => hash_token(&format!("pending:{id}")),
            Binding::PreSession(v) => hash_token(&format!("pre:{v}")),
        }
    }
}

/// A ceremony started: its id and the options for `navigator.credentials.create()` / `get()`.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub id: WebauthnCeremonyId,
    /// `{"publicKey": {...}}`, binary values in base64url.
    pub options: serde_json::Value,
}

/// A credential as a settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnCredential {
    pub id: WebauthnCredentialId,
    pub kind: Kind,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    /// A synced passkey (its key may be copied to the user's other devices).
    pub backup_eligible: bool,
}

/// An accepted assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    pub user: UserId,
    pub credential: WebauthnCredentialId,
    pub kind: Kind,
    /// [`AMR_HWK`] or [`AMR_SWK`].
    pub amr: &'static str,
}

/// The user as the authenticator shows them.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub user: UserId,
    /// A name to tell accounts apart (the e-mail address).
    pub name: &'a str,
    pub display_name: &'a str,
}

fn unavailable(e: impl fmt::Display) -> MfaError {
    MfaError::Storage(StorageError::Corrupt(format!("webauthn: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, MfaError> {
    serde_json::to_string(v).map_err(unavailable)
}

fn from_stored<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> StorageResult<T> {
    serde_json::from_str(s).map_err(|e| StorageError::Corrupt(format!("stored {what}: {e}")))
}

fn credential_of(row: &WebauthnCredentialRow) -> StorageResult<Credential> {
    from_stored(&row.credential, "webauthn credential")
}

fn valid_name(name: &str) -> Result<String, MfaError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(MfaError::Malformed("a name is 1 to 64 printable characters"));
    }
    Ok(name.to_owned())
}

fn store_ceremony(
    conn: &mut impl WebauthnRepository,
    purpose: Purpose,
    user: Option<UserId>,
    binding: Binding<'_>,
    name: Option<String>,
    state: String,
    now: NaiveDateTime,
) -> StorageResult<WebauthnCeremonyId> {
    // One ceremony per binding: a new start replaces the previous (so a session, pending login
    // or login page holds at most one, however often it starts).
    conn.delete_webauthn_ceremonies_bound(&binding.hash())?;
    let id = WebauthnCeremonyId::new();
    conn.insert_webauthn_ceremony(&WebauthnCeremonyRow {
        id: id.to_string(),
        purpose: purpose.as_str().to_owned(),
        user_id: user.map(|u| u.to_string()),
        binding_hash: binding.hash(),
        name,
        state,
        created_at: now,
        expires_at: now + CEREMONY_LIFETIME,
    })?;
    Ok(id)
}

/// Takes the ceremony `id` (it is gone whatever follows) and checks that it is for `purpose`,
/// `user` and `binding` and still alive. Any mismatch is `NoCeremony`, so that nothing tells an
/// unknown id from another user's.
fn take_ceremony(
    conn: &mut impl WebauthnRepository,
    id: &str,
    purpose: Purpose,
    user: Option<UserId>,
    binding: Binding<'_>,
    now: NaiveDateTime,
) -> Result<WebauthnCeremonyRow, MfaError> {
    if id.parse::<WebauthnCeremonyId>().is_err() {
        return Err(MfaError::Malformed("not a ceremony id"));
    }
    let row = conn.take_webauthn_ceremony(id)?.ok_or(MfaError::NoCeremony)?;
    let bound = crate::crypto::tokens::ct_eq(row.binding_hash.as_bytes(), binding.hash().as_bytes());
    if row.purpose != purpose.as_str() || row.user_id != user.map(|u| u.to_string()) || !bound {
        return Err(MfaError::NoCeremony);
    }
    if row.expires_at <= now {
        return Err(MfaError::CeremonyExpired);
    }
    Ok(row)
}

fn parse_response<T: serde::de::DeserializeOwned>(response: &serde_json::Value) -> Result<T, MfaError> {
    serde_json::from_value(response.clone()).map_err(|_| MfaError::Malformed("not a WebAuthn response"))
}

// ---- registration ----

/// Starts registering a credential of `kind` named `name` for the signed-in `account`, bound
/// to its session. Credentials the user has already are excluded (the authenticator refuses to
/// make a second one).
pub fn start_registration(
    conn: &mut impl WebauthnRepository,
    webauthn: &Webauthn,
    account: Account<'_>,
    kind: Kind,
    name: &str,
    session: crate::domain::SessionId,
    now: NaiveDateTime,
) -> Result<Ceremony, MfaError> {
    let name = valid_name(name)?;
    let existing = conn.webauthn_credentials_of(&account.user.to_string())?;
    if existing.len() >= MAX_CREDENTIALS {
        return Err(MfaError::TooMany);
    }
    let exclude = existing.iter().map(|r| credential_of(r).map(|c| c.cred_id)).collect::<StorageResult<Vec<_>>>()?;
    let handle = *account.user.as_uuid();
    let (mut options, state) = match kind {
        Kind::Passkey => {
            let (ccr, state) = webauthn
                .start_passkey_registration(handle, account.name, account.display_name, Some(exclude))
                .map_err(unavailable)?;
            (ccr, to_json(&state)?)
        }
        Kind::SecurityKey => {
            let (ccr, state) = webauthn
                .start_securitykey_registration(handle, account.name, account.display_name, Some(exclude), None, None)
                .map_err(unavailable)?;
            (ccr, to_json(&state)?)
        }
    };
    // Not requested for security keys: authenticators without user verification (Chromium's
    // virtual one among them) refuse credProtect, and a second factor needs none.
    if kind == Kind::SecurityKey {
        if let Some(ext) = options.public_key.extensions.as_mut() {
            ext.cred_protect = None;
        }
    }
    let mut options = serde_json::to_value(&options).map_err(unavailable)?;
    // A passkey is discoverable, so that `/login` can use it with no user name.
    if kind == Kind::Passkey {
        if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(|v| v.as_object_mut()) {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
    }
    let id = store_ceremony(
        conn,
        Purpose::Register(kind),
        Some(account.user),
        Binding::Session(session),
        Some(name),
        state,
        now,
    )?;
    Ok(Ceremony { id, options })
}

/// Finishes a registration with the authenticator's answer and stores the credential.
/// Audited as `mfa.webauthn_registered`. A refusal stores nothing (the ceremony is used up).
#[allow(clippy::too_many_arguments)]
pub fn finish_registration(
    conn: &mut (impl WebauthnRepository + AuditRepository),
    webauthn: &Webauthn,
    auditor: &Auditor,
    user: UserId,
    session: crate::domain::SessionId,
    ceremony: &str,
    kind: Kind,
    response: &serde_json::Value,
    now: NaiveDateTime,
) -> Result<WebauthnCredential, MfaError> {
    let row = take_ceremony(conn, ceremony, Purpose::Register(kind), Some(user), Binding::Session(session), now)?;
    let response: RegisterPublicKeyCredential = parse_response(response)?;
    // The browser says (unsigned, a hint only) whether a resident key was made: a passkey that
    // is not one could never sign in on its own, so it is refused here rather than stored.
    if kind == Kind::Passkey && response.extensions.cred_props.as_ref().and_then(|p| p.rk) == Some(false) {
        return Err(MfaError::NotDiscoverable);
    }
    let credential: Credential = match kind {
        Kind::Passkey => {
            let state: PasskeyRegistration = from_stored(&row.state, "passkey registration")?;
            let passkey: Passkey = webauthn
                .finish_passkey_registration(&response, &state)
                .map_err(|e| MfaError::Rejected(e.to_string()))?;
            passkey.into()
        }
        Kind::SecurityKey => {
            let state: SecurityKeyRegistration = from_stored(&row.state, "security key registration")?;
            let key: SecurityKey = webauthn
                .finish_securitykey_registration(&response, &state)
                .map_err(|e| MfaError::Rejected(e.to_string()))?;
            key.into()
        }
    };
    let credential_id = URL_SAFE_NO_PAD.encode(credential.cred_id.as_slice());
    if conn.find_webauthn_credential_by_credential_id(&credential_id)?.is_some() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let name = row.name.unwrap_or_else(|| kind.as_str().to_owned());
    let id = WebauthnCredentialId::new();
    let stored = WebauthnCredentialRow {
        id: id.to_string(),
        user_id: user.to_string(),
        kind: kind.as_str().to_owned(),
        name: name.clone(),
        credential_id,
        credential: to_json(&credential)?,
        sign_count: i64::from(credential.counter),
        backup_eligible: credential.backup_eligible,
        backed_up: credential.backup_state,
        created_at: now,
        last_used_at: None,
    };
    match conn.insert_webauthn_credential(&stored) {
        Ok(()) => {}
        // The credential id index: a concurrent registration of the same authenticator won.
        Err(StorageError::Conflict(_)) => return Err(MfaError::AlreadyEnrolled),
        Err(e) => return Err(e.into()),
    }
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::WebauthnRegistered)
            .target(user)
            .detail("credential", id.to_string())
            .detail("kind", kind.as_str())
            .detail("name", name.as_str())
            .detail("backup_eligible", credential.backup_eligible),
    )?;
    Ok(WebauthnCredential {
        id,
        kind,
        name,
        created_at: now,
        last_used_at: None,
        backup_eligible: credential.backup_eligible,
    })
}

// ---- authentication ----

/// Starts the second-factor ceremony of a pending login: any of the user's credentials answers.
pub fn start_second_factor(
    conn: &mut impl WebauthnRepository,
    webauthn: &Webauthn,
    user: UserId,
    pending_login: &str,
    now: NaiveDateTime,
) -> Result<Ceremony, MfaError> {
    let rows = conn.webauthn_credentials_of(&user.to_string())?;
    if rows.is_empty() {
        return Err(MfaError::NotEnrolled);
    }
    let keys: Vec<SecurityKey> =
        rows.iter().map(|r| credential_of(r).map(SecurityKey::from)).collect::<StorageResult<_>>()?;
    // User verification "preferred": a passkey was made with credProtect "user verification
    // required", and its authenticator would not find it without.
    let (options, state) = webauthn.start_securitykey_authentication(&keys).map_err(unavailable)?;
    let options = serde_json::to_value(&options).map_err(unavailable)?;
    let id = store_ceremony(
        conn,
        Purpose::SecondFactor,
        Some(user),
        Binding::PendingLogin(pending_login),
        None,
        to_json(&state)?,
        now,
    )?;
    Ok(Ceremony { id, options })
}

/// Checks the answer to a second-factor ceremony of `user`'s pending login and records the use.
/// On any refusal nothing but the (used-up) ceremony changes.
pub fn verify_second_factor(
    conn: &mut impl WebauthnRepository,
    webauthn: &Webauthn,
    user: UserId,
    pending_login: &str,
    ceremony: &str,
    response: &serde_json::Value,
    now: NaiveDateTime,
) -> Result<Used, MfaError> {
    let row =
        take_ceremony(conn, ceremony, Purpose::SecondFactor, Some(user), Binding::PendingLogin(pending_login), now)?;
    let response: PublicKeyCredential = parse_response(response)?;
    let state: SecurityKeyAuthentication = from_stored(&row.state, "security key authentication")?;
    let result =
        webauthn.finish_securitykey_authentication(&response, &state).map_err(|e| MfaError::Rejected(e.to_string()))?;
    let credential_id = URL_SAFE_NO_PAD.encode(result.cred_id().as_slice());
    let stored = conn
        .find_webauthn_credential_by_credential_id(&credential_id)?
        .filter(|r| r.user_id == user.to_string())
        .ok_or(MfaError::UnknownCredential)?;
    record_use(conn, &stored, &result, now)
}

/// Starts a username-less passkey login on the login page, bound to its pre-session cookie.
pub fn start_passkey_login(
    conn: &mut impl WebauthnRepository,
    webauthn: &Webauthn,
    pre_session: &str,
    now: NaiveDateTime,
) -> Result<Ceremony, MfaError> {
    let (options, state) = webauthn.start_discoverable_authentication().map_err(unavailable)?;
    let options = serde_json::to_value(&options).map_err(unavailable)?;
    let id = store_ceremony(
        conn,
        Purpose::PasskeyLogin,
        None,
        Binding::PreSession(pre_session),
        None,
        to_json(&state)?,
        now,
    )?;
    Ok(Ceremony { id, options })
}

/// Finishes a passkey login: the answer names its user (the user handle), and must come from a
/// passkey of that user, verified (PIN or biometric). Returns who signed in.
pub fn finish_passkey_login(
    conn: &mut impl WebauthnRepository,
    webauthn: &Webauthn,
    pre_session: &str,
    ceremony: &str,
    response: &serde_json::Value,
    now: NaiveDateTime,
) -> Result<Used, MfaError> {
    let row = take_ceremony(conn, ceremony, Purpose::PasskeyLogin, None, Binding::PreSession(pre_session), now)?;
    let response: PublicKeyCredential = parse_response(response)?;
    let (handle, raw_id) =
        webauthn.identify_discoverable_authentication(&response).map_err(|e| MfaError::Rejected(e.to_string()))?;
    let credential_id = URL_SAFE_NO_PAD.encode(raw_id);
    let stored = conn
        .find_webauthn_credential_by_credential_id(&credential_id)?
        .filter(|r| r.user_id == handle.to_string() && r.kind == Kind::Passkey.as_str())
        .ok_or(MfaError::UnknownCredential)?;
    let credential = credential_of(&stored)?;
    let state: DiscoverableAuthentication = from_stored(&row.state, "discoverable authentication")?;
    let result = webauthn
        .finish_discoverable_authentication_v2(&response, state, &credential)
        .map_err(|e| MfaError::Rejected(e.to_string()))?;
    if !result.user_verified() {
        return Err(MfaError::Rejected("a passkey login needs user verification".into()));
    }
    record_use(conn, &stored, &result, now)
}

/// The checks webauthn-rs leaves to us, against the stored credential, then the conditional
/// update that records the use.
fn record_use(
    conn: &mut impl WebauthnRepository,
    stored: &WebauthnCredentialRow,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: NaiveDateTime,
) -> Result<Used, MfaError> {
    let counter = i64::from(result.counter());
    if (counter != 0 || stored.sign_count != 0) && counter <= stored.sign_count {
        return Err(MfaError::CounterWentBack);
    }
    if result.backup_eligible() != stored.backup_eligible {
        return Err(MfaError::Rejected("the credential's backup eligibility changed".into()));
    }
    let mut credential = credential_of(stored)?;
    credential.counter = result.counter();
    credential.backup_state = result.backup_state();
    let json = to_json(&credential)?;
    let recorded = conn.record_webauthn_use(&WebauthnUse {
        id: &stored.id,
        expected_count: stored.sign_count,
        sign_count: counter,
        credential: &json,
        backed_up: result.backup_state(),
        now,
    })?;
    if !recorded {
        // Another use of this credential was recorded since we read it.
        return Err(MfaError::CounterWentBack);
    }
    Ok(Used {
        user: parse_id(&stored.user_id)?,
        credential: parse_id(&stored.id)?,
        kind: Kind::stored(&stored.kind)?,
        amr: if stored.backup_eligible { AMR_SWK } else { AMR_HWK },
    })
}

// ---- management ----

/// The user's credentials, oldest first.
pub fn credentials(conn: &mut impl WebauthnRepository, user: UserId) -> StorageResult<Vec<WebauthnCredential>> {
    conn.webauthn_credentials_of(&user.to_string())?
        .into_iter()
        .map(|r| {
            Ok(WebauthnCredential {
                id: parse_id(&r.id)?,
                kind: Kind::stored(&r.kind)?,
                name: r.name,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                backup_eligible: r.backup_eligible,
            })
        })
        .collect()
}

/// Whether the user has a WebAuthn credential (any kind is a second factor).
pub fn has_credential(conn: &mut impl WebauthnRepository, user: UserId) -> StorageResult<bool> {
    Ok(!conn.webauthn_credentials_of(&user.to_string())?.is_empty())
}

/// Removes one of the user's credentials. Audited as `mfa.webauthn_removed`.
pub fn remove(
    conn: &mut (impl WebauthnRepository + AuditRepository),
    auditor: &Auditor,
    actor: Actor,
    user: UserId,
    credential: WebauthnCredentialId,
    now: NaiveDateTime,
) -> Result<(), MfaError> {
    let id = credential.to_string();
    let row =
        conn.find_webauthn_credential(&id)?.filter(|r| r.user_id == user.to_string()).ok_or(MfaError::NotFound)?;
    conn.delete_webauthn_credential(&id)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::WebauthnRemoved)
            .target(user)
            .detail("credential", id)
            .detail("kind", row.kind.as_str())
            .detail("name", row.name.as_str()),
    )?;
    Ok(())
}

/// Audits an accepted use (`mfa.webauthn_used`), beside the login event.
pub fn audit_use(
    conn: &mut impl AuditRepository,
    auditor: &Auditor,
    used: &Used,
    source: Option<std::net::IpAddr>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(used.user), Action::WebauthnUsed)
            .target(used.user)
            .detail("credential", used.credential.to_string())
            .detail("kind", used.kind.as_str())
            .source(source),
    )
}
