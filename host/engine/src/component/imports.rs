//! The `prereg:policy/host` imports: each one calls the native
//! [`PolicyHost`] implementation of the evaluation, after bounding its inputs,
//! and traps when the policy overruns a budget.

use prereg_core::{Fqdn, LogLevel, LookupError, PasswordCheck, PolicyHost, RegistrationState};

use super::StoreState;
use super::bindings::prereg::policy::{host, types as wit};
use crate::evaluation::Evaluation;

impl StoreState {
    fn evaluation(&self) -> wasmtime::Result<&Evaluation> {
        self.evaluation.as_ref().ok_or_else(|| wasmtime::Error::msg("host import called outside an evaluation"))
    }

    /// The evaluation, counting one import call: traps past the budget.
    fn counted(&self) -> wasmtime::Result<&Evaluation> {
        let evaluation = self.evaluation()?;
        if !evaluation.count_import_call(self.limits.max_import_calls) {
            return Err(wasmtime::Error::msg(evaluation.violation().unwrap_or_default()));
        }
        Ok(evaluation)
    }

    /// Traps if the policy has overrun a budget.
    fn checked<T>(&self, value: T) -> wasmtime::Result<T> {
        match self.evaluation()?.violation() {
            Some(v) => Err(wasmtime::Error::msg(v)),
            None => Ok(value),
        }
    }
}

impl StoreState {
    /// Traps on an argument longer than the limit.
    fn bounded(&self, what: &str, s: &str) -> wasmtime::Result<()> {
        let max = self.limits.max_string_bytes;
        if s.len() > max {
            return Err(wasmtime::Error::msg(format!("{what} argument of {} bytes exceeds {max}", s.len())));
        }
        Ok(())
    }
}

impl wit::Host for StoreState {}

impl host::Host for StoreState {
    fn get_procedure(&mut self, name: String) -> wasmtime::Result<Option<wit::Procedure>> {
        self.bounded("get-procedure", &name)?;
        let procedure = self.counted()?.procedure(&name).map(|p| wit::Procedure {
            name: p.name,
            domain: p.domain,
            protocol: match p.protocol {
                prereg_core::Protocol::Scep => wit::Protocol::Scep,
                prereg_core::Protocol::Cmp => wit::Protocol::Cmp,
                prereg_core::Protocol::Est => wit::Protocol::Est,
                prereg_core::Protocol::Acme => wit::Protocol::Acme,
                prereg_core::Protocol::Other => wit::Protocol::Other,
            },
            require_preregistration: p.require_preregistration,
            allowed_domains: p.allowed_domains,
        });
        self.checked(procedure)
    }

    fn find_candidates(
        &mut self,
        domain: String,
        fqdn: String,
    ) -> wasmtime::Result<Result<Vec<wit::Registration>, wit::LookupError>> {
        self.bounded("find-candidates", &domain)?;
        self.bounded("find-candidates", &fqdn)?;
        // The host canonicalizes again: the index is keyed by canonical names.
        let Ok(fqdn) = Fqdn::parse(&fqdn) else {
            return Ok(Ok(Vec::new()));
        };
        let result = self.counted()?.candidates(&domain, &fqdn);
        let result = match result {
            Ok(list) => Ok(list
                .into_iter()
                .map(|r| wit::Registration {
                    id: r.id,
                    pattern: r.pattern,
                    ip: r.ip,
                    serial: r.serial,
                    has_password: r.has_password,
                    state: match r.state {
                        RegistrationState::Open => wit::RegistrationState::Open,
                        RegistrationState::Used => wit::RegistrationState::Used,
                        RegistrationState::Disabled => wit::RegistrationState::Disabled,
                        RegistrationState::Locked => wit::RegistrationState::Locked,
                    },
                    expires_at: r.expires_at,
                    max_enrollments: r.max_enrollments,
                    enrollments: r.enrollments,
                })
                .collect()),
            Err(LookupError::TooMany) => Err(wit::LookupError::TooMany),
            Err(LookupError::Unavailable) => Err(wit::LookupError::Unavailable),
        };
        self.checked(result)
    }

    fn check_password(&mut self, registration: u64) -> wasmtime::Result<wit::PasswordCheck> {
        let result = match self.counted()?.check_password(registration) {
            PasswordCheck::Match => wit::PasswordCheck::Match,
            PasswordCheck::Mismatch => wit::PasswordCheck::Mismatch,
            PasswordCheck::NotProvided => wit::PasswordCheck::NotProvided,
            PasswordCheck::NotSet => wit::PasswordCheck::NotSet,
        };
        self.checked(result)
    }

    fn is_public_suffix(&mut self, name: String) -> wasmtime::Result<bool> {
        self.bounded("is-public-suffix", &name)?;
        Ok(self.counted()?.is_public_suffix(&name))
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.counted()?.now())
    }

    fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit::LogLevel::Debug => LogLevel::Debug,
            wit::LogLevel::Info => LogLevel::Info,
            wit::LogLevel::Warn => LogLevel::Warn,
        };
        self.counted()?.log(level, &message);
        Ok(())
    }
}
