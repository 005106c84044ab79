//! A loaded policy, whatever runs it: [`crate::WasmPolicy`] (a
//! WebAssembly component: the real path) or [`NativeDefaultPolicy`] (the default
//! policy's code linked natively: the baseline of the benchmarks, and a
//! reference in tests).

use prereg_core::{
    Decision, EnrollmentRequest, RegistrationRequest, RenewalRequest, ValidRegistration, ValidationError,
};
use serde::Serialize;

use crate::evaluation::Evaluation;
use crate::sha256_hex;

/// Who a policy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInfo {
    /// Its name, from its metadata.
    pub name: String,
    /// Its version, from its metadata.
    pub version: String,
    /// The WIT package version it implements.
    pub wit_version: String,
    /// SHA-256 of its component (hex); for the native baseline, of the
    /// embedded default component it mirrors.
    pub sha256: String,
    /// Where it came from: `built-in`, `native`, or a file path.
    pub source: String,
}

/// Why a policy produced no usable answer. The caller turns it into a deny with
/// reason `policy-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy failure ({kind}): {message}")]
pub struct PolicyFailure {
    /// `timeout`, `memory`, `trap`, `budget`, `invalid-output`, `storage`.
    pub kind: &'static str,
    /// Detail for the operator.
    pub message: String,
}

/// What a policy answers to a registration request: valid (in canonical
/// form) or invalid (the field at fault), or the policy failed.
pub type Validation = Result<Result<ValidRegistration, ValidationError>, PolicyFailure>;

/// A policy that can decide enrollments and validate registrations. Each call
/// takes the [`Evaluation`] and gives it back, whatever happened.
pub trait Policy: Send + Sync {
    /// Who it is.
    fn info(&self) -> &PolicyInfo;

    /// Decides an enrollment request.
    fn decide(
        &self,
        evaluation: Evaluation,
        request: &EnrollmentRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation);

    /// Decides a renewal (WIT `decide-renewal`, since 0.1.1): a device with
    /// a valid certificate from this CA asks for a new one. A policy of WIT
    /// 0.1.0 exports no renewal: [`crate::WasmPolicy`] then decides with
    /// the default rules ([`decide_renewal_by_default`]) and says so in the
    /// explanation.
    fn decide_renewal(
        &self,
        evaluation: Evaluation,
        request: &RenewalRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation);

    /// Validates a new registration.
    fn validate_registration(&self, evaluation: Evaluation, request: &RegistrationRequest) -> (Validation, Evaluation);

    /// Validates several new registrations in one evaluation, one answer per
    /// request in order: a bulk import validates thousands, and a
    /// WebAssembly policy answers them from one instance instead of one
    /// instance each. The default asks [`Policy::validate_registration`] for
    /// each.
    fn validate_registrations(
        &self,
        evaluation: Evaluation,
        requests: &[RegistrationRequest],
    ) -> (Vec<Validation>, Evaluation) {
        let mut evaluation = evaluation;
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let (answer, back) = self.validate_registration(evaluation, request);
            answers.push(answer);
            evaluation = back;
        }
        (answers, evaluation)
    }

    /// The test cases the policy ships (a case file, run by `prereg policy
    /// test`), if any.
    fn test_cases(&self) -> Option<&[u8]> {
        None
    }
}

/// The default policy, linked natively: the same code as the built-in
/// component, without the WebAssembly boundary.
#[derive(Debug, Clone)]
pub struct NativeDefaultPolicy {
    info: PolicyInfo,
}

impl Default for NativeDefaultPolicy {
    fn default() -> Self {
        let meta = prereg_rules::metadata();
        NativeDefaultPolicy {
            info: PolicyInfo {
                name: meta.name,
                version: meta.version,
                wit_version: prereg_core::WIT_VERSION.into(),
                sha256: sha256_hex(crate::builtin::DEFAULT_POLICY_COMPONENT),
                source: "native".into(),
            },
        }
    }
}

impl Policy for NativeDefaultPolicy {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn decide(
        &self,
        evaluation: Evaluation,
        request: &EnrollmentRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        let decision = prereg_rules::decide(&evaluation, request);
        (Ok(decision), evaluation)
    }

    fn decide_renewal(
        &self,
        evaluation: Evaluation,
        request: &RenewalRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        let decision = prereg_rules::decide_renewal(&evaluation, request);
        (Ok(decision), evaluation)
    }

    fn validate_registration(&self, evaluation: Evaluation, request: &RegistrationRequest) -> (Validation, Evaluation) {
        let result = prereg_rules::validate_registration(&evaluation, request);
        (Ok(result), evaluation)
    }
}

/// A renewal decided by the host with the default rules, for a policy that
/// does not decide renewals (built against WIT 0.1.0): the explanation says
/// whose rules decided.
pub fn decide_renewal_by_default(info: &PolicyInfo, evaluation: &Evaluation, request: &RenewalRequest) -> Decision {
    let mut decision = prereg_rules::decide_renewal(evaluation, request);
    decision.explanation = format!(
        "{} (decided by the host's default renewal rules: policy {} {} implements WIT {}, which has no renewal)",
        decision.explanation, info.name, info.version, info.wit_version
    );
    decision
}
