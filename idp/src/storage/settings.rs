use diesel::prelude::*;

use super::schema::settings;
use super::{DbConnection, StorageResult, insert_unless_exists};

/// Small server-wide values that must be shared by every instance (e.g. which secret holds the
/// audit pseudonym key).
pub trait SettingsRepository {
    fn setting(&mut self, name: &str) -> StorageResult<Option<String>>;
    /// Sets the value only if the setting is absent; returns the value now stored, so two
    /// instances starting at once agree on one value.
    fn setting_or_insert(&mut self, name: &str, value: &str) -> StorageResult<String>;
}

impl SettingsRepository for DbConnection {
    fn setting(&mut self, name: &str) -> StorageResult<Option<String>> {
        Ok(settings::table.find(name).select(settings::value).first(self).optional()?)
    }

    fn setting_or_insert(&mut self, name: &str, value: &str) -> StorageResult<String> {
        insert_unless_exists(self, |c| {
            diesel::insert_into(settings::table).values((settings::name.eq(name), settings::value.eq(value))).execute(c)
        })?;
        Ok(settings::table.find(name).select(settings::value).first(self)?)
    }
}
