//! Pure domain types: no HTTP, no SQL.

pub mod ids;
pub mod organisation;
pub mod role;
pub mod session;
pub mod timestamp;
pub mod user;

pub use ids::*;
