//! Cryptographic building blocks. Nothing here knows HTTP or SQL.

pub mod backup_key;
pub mod password;
pub mod pseudonym;
pub mod secretbox;
pub mod signing;
pub mod tokens;
