//! The clients the provider serves: the configuration file's, and those organisations'
//! administrators registered for their projects (`admin::clients`). Every instance reloads the
//! registered ones every [`RELOAD`]; the instance that changes one reloads at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::client_config::ClientSpec;

pub const RELOAD: Duration = Duration::from_secs(5);

type Stored = Arc<HashMap<String, Arc<ClientSpec>>>;

#[derive(Debug, Default)]
pub struct Clients {
    fixed: Vec<Arc<ClientSpec>>,
    stored: RwLock<Stored>,
}

impl Clients {
    pub fn new(fixed: Vec<ClientSpec>) -> Self {
        Self { fixed: fixed.into_iter().map(Arc::new).collect(), stored: RwLock::default() }
    }

    pub fn get(&self, client_id: &str) -> Option<Arc<ClientSpec>> {
        if let Some(c) = self.fixed.iter().find(|c| c.client_id == client_id) {
            return Some(c.clone());
        }
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner()).clone();
        stored.get(client_id).cloned()
    }

    pub fn is_fixed(&self, client_id: &str) -> bool {
        self.fixed.iter().any(|c| c.client_id == client_id)
    }

    /// Replaces the registered clients; an id the file also has stays the file's.
    pub fn replace_stored(&self, specs: Vec<ClientSpec>) {
        let map: HashMap<String, Arc<ClientSpec>> = specs
            .into_iter()
            .filter(|s| !self.is_fixed(&s.client_id))
            .map(|s| (s.client_id.clone(), Arc::new(s)))
            .collect();
        *self.stored.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(id: &str, name: &str) -> ClientSpec {
        let config = crate::oidc::tests::client(id, true, |c| c.name = Some(name.into()));
        let mut problems = Vec::new();
        let out = crate::client_config::validate_clients(&[config], &|_| None, &mut problems);
        assert!(problems.is_empty());
        out.into_iter().next().unwrap()
    }

    #[test]
    fn a_registered_client_never_replaces_the_files_and_a_reload_drops_deleted_ones() {
        let clients = Clients::new(vec![spec("app", "From the file")]);
        clients.replace_stored(vec![spec("app", "Impostor"), spec("b", "Registered")]);
        assert_eq!(clients.get("app").unwrap().name, "From the file");
        assert_eq!(clients.get("b").unwrap().name, "Registered");
        clients.replace_stored(vec![]);
        assert!(clients.get("b").is_none());
        assert!(clients.get("app").is_some());
    }
}
