//! CSRF protection, two layers: unsafe requests from another origin are refused outright
//! (Origin / Sec-Fetch-Site, in middleware), and every state-changing form carries a token
//! bound to the session by HMAC, checked in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::tokens::ct_eq;

/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";

pub fn token(key: &[u8], binding: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    mac.update(b"idp-csrf-v1\0");
    mac.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn verify(key: &[u8], binding: &str, presented: &str) -> bool {
    let expected = token(key, binding);
    !expected.is_empty() && ct_eq(expected.as_bytes(), presented.as_bytes())
}

/// The token for forms of a signed-in session.
pub fn for_session(key: &[u8], session: &crate::domain::session::Session) -> String {
    token(key, &session.id.to_string())
}

/// Refuses a state-changing request of a signed-in session whose form lacks its token.
pub fn require_session(
    key: &[u8],
    session: &crate::domain::session::Session,
    presented: &str,
) -> Result<(), super::error::WebError> {
    if verify(key, &session.id.to_string(), presented) {
        Ok(())
    } else {
        Err(super::error::WebError::Forbidden("The form has expired. Please go back, reload the page and try again."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_key_and_session() {
        let t = token(b"k1", "session-a");
        assert!(verify(b"k1", "session-a", &t));
        assert!(!verify(b"k1", "session-b", &t));
        assert!(!verify(b"k2", "session-a", &t));
        assert!(!verify(b"k1", "session-a", ""));
        assert!(!verify(b"k1", "session-a", &t[..t.len() - 1]));
    }
}
