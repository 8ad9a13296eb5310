//! Login orchestration: sessions and the rate limits that guard authentication.

pub mod login;
pub mod mapping;
pub mod mfa_login;
pub mod password;
pub mod rate_limit;
pub mod session;
