//! [`PolicyHost`] over the WIT imports.

use prereg_core::{Fqdn, LogLevel, LookupError, PasswordCheck, PolicyHost, Procedure, Registration};

use crate::bindings::prereg::policy::host;

/// The host as a guest sees it: every call goes through the `prereg:policy/host`
/// imports. Only usable inside a component; natively, implement [`PolicyHost`]
/// yourself (the prereg host does).
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmHost;

impl PolicyHost for WasmHost {
    fn procedure(&self, name: &str) -> Option<Procedure> {
        host::get_procedure(name).map(Into::into)
    }

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        host::find_candidates(domain, fqdn.as_str())
            .map(|list| list.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }

    fn check_password(&self, registration: u64) -> PasswordCheck {
        host::check_password(registration).into()
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        host::is_public_suffix(name)
    }

    fn now(&self) -> u64 {
        host::now()
    }

    fn log(&self, level: LogLevel, message: &str) {
        host::log(level.into(), message)
    }
}
