//! Password hashing (argon2id, OWASP parameters) with a bound on concurrent hashes, and the
//! NIST SP 800-63B rules for new passwords.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
/// Long passphrases are welcome, but a hash input is bounded so a body cannot buy CPU.
pub const MAX_LENGTH: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The form a password is hashed and compared in: NFKC, so the same phrase typed on two
/// keyboards is the same password. Nothing is trimmed or truncated.
pub fn normalise(password: &str) -> String {
    password.nfkc().collect()
}

/// A counting semaphore: at most `n` hashes at once, each 19 MiB, so a burst of logins waits
/// instead of exhausting memory.
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        PermitGuard(self)
    }
}

struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[derive(Debug)]
pub struct PasswordHasher {
    permits: Permits,
    /// Verified against when the account does not exist, so the answer takes as long; made at
    /// first use, so a server without password login never pays for it.
    dummy: OnceLock<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Permits { free: Mutex::new(max_concurrent.max(1)), freed: Condvar::new() },
            dummy: OnceLock::new(),
        }
    }

    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self.permits.acquire();
        argon2()
            .hash_password(normalise(password).as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it does the
    /// same work and answers false.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let _permit = self.permits.acquire();
        let candidate = normalise(password);
        if candidate.chars().count() > MAX_LENGTH {
            return false;
        }
        let dummy = self.dummy.get_or_init(|| {
            argon2()
                .hash_password(b"idp-dummy-password-for-unknown-accounts", &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let target = stored.unwrap_or(dummy);
        let ok = PasswordHash::new(target).is_ok_and(|h| argon2().verify_password(candidate.as_bytes(), &h).is_ok());
        ok && stored.is_some()
    }
}

/// Why a new password is refused; each is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("use at least {0} characters")]
    TooShort(usize),
    #[error("use at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("this password is among the most common ones and easy to guess")]
    Common,
    #[error("do not use your e-mail address as your password")]
    ContainsEmail,
    #[error("this organisation asks for a lower-case letter, an upper-case letter and a digit")]
    Composition,
    #[error("too easy to guess: {0}")]
    Weak(String),
}

/// What the rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct PasswordRules {
    /// 8 characters suffice with a second factor, 15 without (NIST SP 800-63B-4).
    pub has_second_factor: bool,
    /// The optional composition rule some organisations demand.
    pub composition: bool,
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt").lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    })
}

/// zxcvbn's view: a score 0..=4 and advice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Strength {
    pub score: u8,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
}

pub fn strength(password: &str, user_inputs: &[&str]) -> Strength {
    let pw = normalise(password);
    let pw: String = pw.chars().take(100).collect();
    let estimate = zxcvbn::zxcvbn(&pw, user_inputs);
    let feedback = estimate.feedback();
    Strength {
        score: u8::from(estimate.score()),
        warning: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
        suggestions: feedback.map(|f| f.suggestions().iter().map(|s| s.to_string()).collect()).unwrap_or_default(),
    }
}

/// Checks a new password; every problem is reported.
pub fn check_new(password: &str, email: Option<&str>, rules: PasswordRules) -> Result<(), Vec<PasswordProblem>> {
    let pw = normalise(password);
    let len = pw.chars().count();
    let min = if rules.has_second_factor { 8 } else { 15 };
    let mut problems = Vec::new();
    if len < min {
        problems.push(PasswordProblem::TooShort(min));
    }
    if len > MAX_LENGTH {
        problems.push(PasswordProblem::TooLong);
    }
    let lower = pw.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        problems.push(PasswordProblem::Common);
    }
    if let Some(email) = email.map(str::to_lowercase) {
        let local = email.split('@').next().unwrap_or_default().to_owned();
        if lower.contains(&email) || (local.len() >= 4 && lower == local) {
            problems.push(PasswordProblem::ContainsEmail);
        }
    }
    if rules.composition {
        let ok = pw.chars().any(char::is_lowercase)
            && pw.chars().any(char::is_uppercase)
            && pw.chars().any(|c| c.is_ascii_digit());
        if !ok || len < 8 {
            problems.push(PasswordProblem::Composition);
        }
    }
    if problems.is_empty() && len <= 100 {
        let inputs: Vec<&str> = email.into_iter().collect();
        let s = strength(&pw, &inputs);
        if s.score < 2 {
            problems.push(PasswordProblem::Weak(s.warning.unwrap_or_else(|| "add another word or two".into())));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_MFA: PasswordRules = PasswordRules { has_second_factor: false, composition: false };
    const MFA: PasswordRules = PasswordRules { has_second_factor: true, composition: false };

    #[test]
    fn lengths_follow_nist() {
        assert_eq!(check_new("short pass", None, NO_MFA), Err(vec![PasswordProblem::TooShort(15)]));
        assert!(check_new("correct horse battery staple", None, NO_MFA).is_ok());
        assert!(check_new("vq8#Lm2!", None, MFA).is_ok(), "8 characters with a second factor");
        assert!(check_new(&"long passphrase words ".repeat(3), None, NO_MFA).is_ok(), "at least 64 allowed");
        assert!(check_new(&"a".repeat(MAX_LENGTH + 1), None, NO_MFA).unwrap_err().contains(&PasswordProblem::TooLong));
    }

    #[test]
    fn common_and_personal_passwords_are_refused() {
        assert!(check_new("password123", None, MFA).unwrap_err().contains(&PasswordProblem::Common));
        assert!(
            check_new("PASSWORD123", None, MFA).unwrap_err().contains(&PasswordProblem::Common),
            "case does not help"
        );
        assert!(
            check_new("alice@example.com!", Some("alice@example.com"), MFA)
                .unwrap_err()
                .contains(&PasswordProblem::ContainsEmail)
        );
        assert!(matches!(check_new("aaaaaaaaaaaaaaaa", None, NO_MFA).unwrap_err()[0], PasswordProblem::Weak(_)));
    }

    #[test]
    fn composition_only_when_asked() {
        let rules = PasswordRules { has_second_factor: true, composition: true };
        assert!(check_new("plain words only here", None, rules).unwrap_err().contains(&PasswordProblem::Composition));
        assert!(check_new("Plain words 4 here", None, rules).is_ok());
    }

    #[test]
    fn nfkc_makes_equivalent_input_equal_and_nothing_is_truncated() {
        let h = PasswordHasher::new(2);
        let stored = h.hash("ﬁrst ａｎｄ second words").unwrap();
        assert!(h.verify("first and second words", Some(&stored)));
        let long = "x".repeat(200);
        let stored = h.hash(&long).unwrap();
        assert!(!h.verify(&"x".repeat(199), Some(&stored)), "no truncation");
        assert!(h.verify(&long, Some(&stored)));
        assert!(!h.verify("wrong", Some(&stored)));
        assert!(!h.verify("anything", None), "unknown accounts never match");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    }

    #[test]
    fn concurrent_hashes_are_bounded() {
        let h = std::sync::Arc::new(PasswordHasher::new(1));
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || h.hash(&format!("password number {i} here")).is_ok())
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        assert_eq!(*h.permits.free.lock().unwrap(), 1, "every permit came back");
    }
}
