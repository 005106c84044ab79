//! A compiled, linked policy component ([`WasmPolicy`]), and one evaluation of
//! it in a fresh store.

use std::sync::atomic::{AtomicU64, Ordering};

use prereg_core::{
    Decision, EnrollmentRequest, Field, Reason, RegistrationRequest, RenewalRequest, ValidRegistration, ValidationError,
};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, HasSelf, Instance, InstancePre, Lift, Linker, Lower,
    ResourceTable, TypedFunc,
};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use self::bindings::PolicyModule;
use self::bindings::exports::prereg::policy::{policy as policy_export, renewal as renewal_export};
use self::bindings::prereg::policy::types as wit;
use crate::evaluation::Evaluation;
use crate::policy::{Policy, PolicyFailure, PolicyInfo, Validation};
use crate::{EPOCH_TICK, EngineError, Limits, PolicyEngine, sha256_hex};

mod bindings;
mod imports;

/// The data of one store: the evaluation the imports answer from, a deny-all
/// WASI context, and the store's limits.
pub(crate) struct StoreState {
    pub(crate) evaluation: Option<Evaluation>,
    /// The engine's limits (import calls, string sizes).
    pub(crate) limits: Limits,
    /// Made when the guest first calls WASI: most evaluations never do, and
    /// making one (its random number generators, clocks and streams) was 6%
    /// of an instantiation.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limiter: Limiter,
}

/// The store's limits, counting the times the guest grows its memory once it
/// is instantiated: in the pooling allocator each growth costs two
/// `mprotect` calls, and the reset after it, so `prereg policy bench` shows
/// them to a policy author ([`WasmPolicy::memory_grows`]).
struct Limiter {
    limits: StoreLimits,
    /// Counting (the instance is made).
    counting: bool,
    memory_grows: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed && self.counting && desired > current {
            self.memory_grows += 1;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Deny-all: no preopened folders, environment, arguments or sockets.
        let ctx = self.wasi.get_or_insert_with(|| WasiCtxBuilder::new().build());
        WasiCtxView { ctx, table: &mut self.table }
    }
}

/// A policy component, compiled once and linked, ready to instantiate.
pub struct WasmPolicy {
    engine: PolicyEngine,
    pre: InstancePre<StoreState>,
    /// Where its exported functions are.
    exports: ExportIndices,
    /// Times its instances grew their memory after instantiation, in all.
    memory_grows: AtomicU64,
    info: PolicyInfo,
    test_cases: Option<Vec<u8>>,
}

impl WasmPolicy {
    /// Compiles and links a component, and asks it for its metadata.
    /// `source` names it in messages (`built-in`, or the file path).
    pub fn new(engine: &PolicyEngine, bytes: &[u8], source: &str) -> Result<Self, EngineError> {
        let facts = Self::check(engine, bytes, source)?;
        let component = Component::new(engine.engine(), bytes)
            .map_err(|e| EngineError::Invalid { path: source.into(), message: format!("{e:#}") })?;
        Self::link(engine, component, facts, sha256_hex(bytes), source)
    }

    /// The built-in default policy ([`crate::builtin`]).
    pub fn builtin(engine: &PolicyEngine) -> Result<Self, EngineError> {
        Self::new(engine, crate::builtin::DEFAULT_POLICY_COMPONENT, crate::builtin::SOURCE)
    }

    /// The policy component in the file at `path`.
    pub fn from_file(engine: &PolicyEngine, path: &std::path::Path) -> Result<Self, EngineError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read { path: shown.clone(), source })?;
        Self::new(engine, &bytes, &shown)
    }

    /// The checks made before compiling: size, a component, WIT version,
    /// imports.
    pub(crate) fn check(
        engine: &PolicyEngine,
        bytes: &[u8],
        source: &str,
    ) -> Result<crate::inspect::ComponentFacts, EngineError> {
        let max = engine.limits().max_component_bytes;
        if bytes.len() > max {
            return Err(EngineError::TooLarge { path: source.into(), size: bytes.len(), max });
        }
        crate::inspect::inspect(bytes, source)
    }

    /// Links a compiled component and asks it for its metadata.
    pub(crate) fn link(
        engine: &PolicyEngine,
        component: Component,
        facts: crate::inspect::ComponentFacts,
        sha256: String,
        source: &str,
    ) -> Result<Self, EngineError> {
        let invalid = |e: wasmtime::Error| EngineError::Invalid { path: source.into(), message: format!("{e:#}") };
        let mut linker: Linker<StoreState> = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(invalid)?;
        PolicyModule::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state).map_err(invalid)?;
        let pre = linker.instantiate_pre(&component).map_err(invalid)?;
        // The exports are found by semver-compatible name: a policy of WIT
        // 0.1.0 exports `prereg:policy/policy@0.1.0` and no `renewal`. The
        // generated indices check that the interfaces are whole; the calls
        // use ours, one function at a time.
        policy_export::GuestIndices::new(&pre).map_err(invalid)?;
        let decides_renewals = renewal_export::GuestIndices::new(&pre).is_ok();
        let exports = ExportIndices::find(pre.component(), decides_renewals).map_err(invalid)?;
        let mut policy = WasmPolicy {
            engine: engine.clone(),
            pre,
            exports,
            memory_grows: AtomicU64::new(0),
            test_cases: facts.test_cases,
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                wit_version: facts.wit_version.unwrap_or_else(|| prereg_core::WIT_VERSION.into()),
                sha256,
                source: source.into(),
            },
        };
        let (meta, _) = policy.run(None, |module, store| module.metadata(store));
        let meta = meta.map_err(|f| EngineError::Metadata { path: source.into(), message: f.to_string() })?;
        policy.info.name = meta.name.chars().take(64).collect();
        policy.info.version = meta.version.chars().take(64).collect();
        Ok(policy)
    }

    /// Instantiates the policy in a fresh store and calls nothing: the fixed
    /// cost of every evaluation (`prereg policy bench`).
    pub fn instantiate_only(&self) -> Result<(), PolicyFailure> {
        self.run(None, |_, _| Ok(())).0
    }

    /// Runs `call` on a fresh instance in a fresh store, with the limits and
    /// the deadline; gives the evaluation back whatever happened.
    fn run<R>(
        &self,
        evaluation: Option<Evaluation>,
        call: impl FnOnce(&Exports, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> (Result<R, PolicyFailure>, Option<Evaluation>) {
        let limits = self.engine.limits();
        // Held until the store is gone, so its pooled slot is free again.
        let _slot = self.engine.permit();
        let state = StoreState {
            evaluation,
            limits,
            wasi: None,
            table: ResourceTable::new(),
            limiter: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.max_memory_bytes)
                    .instances(16)
                    .memories(16)
                    .tables(64)
                    .trap_on_grow_failure(true)
                    .build(),
                counting: false,
                memory_grows: 0,
            },
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(self.engine.deadline_ticks());
        // The deadline counts the guest's own time: time the host spent on
        // its behalf (a password check, which may wait for the pool of
        // checks) is given back when the deadline is reached.
        store.epoch_deadline_callback(|context| {
            let host = context.data().evaluation.as_ref().map(Evaluation::take_host_time).unwrap_or_default();
            let ticks = (host.as_micros() / EPOCH_TICK.as_micros()) as u64;
            if ticks > 0 { Ok(wasmtime::UpdateDeadline::Continue(ticks)) } else { Err(Trap::Interrupt.into()) }
        });
        let result = self.instantiate(&mut store).and_then(|module| {
            store.data_mut().limiter.counting = true;
            call(&module, &mut store)
        });
        let mut state = store.into_data();
        self.memory_grows.fetch_add(state.limiter.memory_grows, Ordering::Relaxed);
        let violation = state.evaluation.as_ref().and_then(Evaluation::violation);
        let result = result.map_err(|e| classify(&e, violation.as_deref()));
        (result, state.evaluation.take())
    }
}

/// Where a policy's exported functions are, found once when it is linked.
/// An instance then typechecks only the function it is asked to call:
/// loading all four (wasmtime's generated `load`) walked every type of the
/// interface on every instantiation, about 7% of a decision's instructions.
#[derive(Debug, Clone, Copy)]
struct ExportIndices {
    metadata: ComponentExportIndex,
    validate_registration: ComponentExportIndex,
    decide: ComponentExportIndex,
    /// None for a policy of WIT 0.1.0.
    decide_renewal: Option<ComponentExportIndex>,
}

impl ExportIndices {
    fn find(component: &Component, decides_renewals: bool) -> wasmtime::Result<Self> {
        let version = prereg_core::WIT_VERSION;
        let function = |interface: &str, name: &str| {
            let interface_name = format!("prereg:policy/{interface}@{version}");
            component
                .get_export_index(None, &interface_name)
                .and_then(|at| component.get_export_index(Some(&at), name))
                .ok_or_else(|| wasmtime::format_err!("no export `{name}` in `{interface_name}`"))
        };
        Ok(ExportIndices {
            metadata: function("policy", "metadata")?,
            validate_registration: function("policy", "validate-registration")?,
            decide: function("policy", "decide")?,
            decide_renewal: if decides_renewals { Some(function("renewal", "decide-renewal")?) } else { None },
        })
    }
}

/// The typed `validate-registration` export.
type ValidateRegistration =
    TypedFunc<(wit::RegistrationRequest,), (Result<wit::ValidRegistration, wit::ValidationError>,)>;

/// One instance of the policy, with where its functions are.
struct Exports {
    instance: Instance,
    at: ExportIndices,
}

impl Exports {
    /// Calls the function at `index`, typechecked here, once. (The guest's
    /// post-return runs within the call in wasmtime 48.)
    fn call<P, R>(&self, store: &mut Store<StoreState>, index: &ComponentExportIndex, params: P) -> wasmtime::Result<R>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let func = self.instance.get_typed_func::<P, R>(&mut *store, index)?;
        func.call(&mut *store, params)
    }

    fn metadata(&self, store: &mut Store<StoreState>) -> wasmtime::Result<wit::PolicyMetadata> {
        self.call::<(), (wit::PolicyMetadata,)>(store, &self.at.metadata, ()).map(|(m,)| m)
    }

    fn decide(
        &self,
        store: &mut Store<StoreState>,
        request: &wit::EnrollmentRequest,
    ) -> wasmtime::Result<wit::Decision> {
        self.call::<(&wit::EnrollmentRequest,), (wit::Decision,)>(store, &self.at.decide, (request,)).map(|(d,)| d)
    }

    /// `validate-registration`, typechecked once for all the calls a batch
    /// of validations makes on this instance.
    fn validate_registration(&self, store: &mut Store<StoreState>) -> wasmtime::Result<ValidateRegistration> {
        self.instance.get_typed_func(&mut *store, self.at.validate_registration)
    }

    fn decide_renewal(
        &self,
        store: &mut Store<StoreState>,
        request: &renewal_export::RenewalRequest,
    ) -> wasmtime::Result<wit::Decision> {
        let Some(index) = &self.at.decide_renewal else {
            return Err(wasmtime::format_err!("the instance has no renewal interface"));
        };
        self.call::<(&renewal_export::RenewalRequest,), (wit::Decision,)>(store, index, (request,)).map(|(d,)| d)
    }
}

impl WasmPolicy {
    /// How many times its instances grew their linear memory after they were
    /// made, in all evaluations so far. Each growth of a pooled memory costs
    /// two `mprotect` calls (and the larger reset after it): a policy that
    /// grows in every decision is slower than one whose initial memory holds
    /// what a decision allocates.
    pub fn memory_grows(&self) -> u64 {
        self.memory_grows.load(Ordering::Relaxed)
    }

    /// Whether the policy decides renewals itself (WIT 0.1.1 and later).
    pub fn decides_renewals(&self) -> bool {
        self.exports.decide_renewal.is_some()
    }

    fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Exports> {
        let instance = self.pre.instantiate(&mut *store)?;
        Ok(Exports { instance, at: self.exports })
    }
}

/// Names a failure for the operator.
fn classify(error: &wasmtime::Error, violation: Option<&str>) -> PolicyFailure {
    if let Some(v) = violation {
        return PolicyFailure { kind: "budget", message: v.to_owned() };
    }
    let message = format!("{error:#}");
    let kind = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "timeout",
        _ if message.contains("memory") && (message.contains("limit") || message.contains("grow")) => "memory",
        Some(Trap::StackOverflow) => "stack",
        _ => "trap",
    };
    PolicyFailure { kind, message }
}

impl Policy for WasmPolicy {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn test_cases(&self) -> Option<&[u8]> {
        self.test_cases.as_deref()
    }

    fn decide(
        &self,
        evaluation: Evaluation,
        request: &EnrollmentRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        let wit_request = wit::EnrollmentRequest {
            procedure: request.procedure.clone(),
            fqdn: request.fqdn.clone(),
            ip: request.ip.clone(),
            serial: request.serial.clone(),
            has_password: request.has_password,
        };
        let max_string = self.engine.limits().max_string_bytes;
        let (result, evaluation) = self.run(Some(evaluation), |module, store| module.decide(store, &wit_request));
        let Some(evaluation) = evaluation else { unreachable!("run gives back the evaluation it was given") };
        (result.and_then(|d| lift_decision(d, max_string)), evaluation)
    }

    fn decide_renewal(
        &self,
        evaluation: Evaluation,
        request: &RenewalRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        if !self.decides_renewals() {
            let decision = crate::policy::decide_renewal_by_default(&self.info, &evaluation, request);
            return (Ok(decision), evaluation);
        }
        let wit_request = renewal_export::RenewalRequest {
            procedure: request.procedure.clone(),
            fqdn: request.fqdn.clone(),
            ip: request.ip.clone(),
            serial: request.serial.clone(),
            registration: request.registration,
            certificate_serial: request.certificate_serial.clone(),
            certificate_expires_at: request.certificate_expires_at,
        };
        let max_string = self.engine.limits().max_string_bytes;
        let (result, evaluation) =
            self.run(Some(evaluation), |module, store| module.decide_renewal(store, &wit_request));
        let Some(evaluation) = evaluation else { unreachable!("run gives back the evaluation it was given") };
        (result.and_then(|d| lift_decision(d, max_string)), evaluation)
    }

    fn validate_registration(&self, evaluation: Evaluation, request: &RegistrationRequest) -> (Validation, Evaluation) {
        let (mut answers, evaluation) = self.validate_registrations(evaluation, std::slice::from_ref(request));
        let answer = answers.pop().unwrap_or_else(|| {
            Err(PolicyFailure { kind: "invalid-output", message: "no answer to the validation".into() })
        });
        (answer, evaluation)
    }

    /// One instance answers the requests in turn, each call with the whole
    /// deadline and import budget. A call that fails takes its instance with
    /// it: that request gets the failure, and the rest a fresh instance.
    fn validate_registrations(
        &self,
        evaluation: Evaluation,
        requests: &[RegistrationRequest],
    ) -> (Vec<Validation>, Evaluation) {
        let ticks = self.engine.deadline_ticks();
        let mut evaluation = evaluation;
        let mut answers = Vec::with_capacity(requests.len());
        let mut rest = requests;
        while !rest.is_empty() {
            let (outcome, back) = self.run(Some(evaluation), |module, store| {
                let validate = module.validate_registration(store)?;
                let mut lifted = Vec::with_capacity(rest.len());
                for request in rest {
                    store.set_epoch_deadline(ticks);
                    if let Some(evaluation) = store.data_mut().evaluation.as_mut() {
                        evaluation.start_call();
                    }
                    let wit_request = wit::RegistrationRequest {
                        procedure: request.procedure.clone(),
                        fqdn: request.fqdn.clone(),
                        ip: request.ip.clone(),
                        serial: request.serial.clone(),
                        has_password: request.has_password,
                    };
                    match validate.call(&mut *store, (wit_request,)) {
                        Ok((answer,)) => lifted.push(answer),
                        Err(failure) => return Ok((lifted, Some(failure))),
                    }
                }
                Ok((lifted, None))
            });
            let Some(back) = back else { unreachable!("run gives back the evaluation it was given") };
            evaluation = back;
            match outcome {
                Ok((lifted, failure)) => {
                    rest = &rest[lifted.len()..];
                    answers.extend(lifted.into_iter().map(|answer| self.lift_validation(answer)));
                    if let Some(failure) = failure {
                        answers.push(Err(classify(&failure, evaluation.violation().as_deref())));
                        rest = &rest[1..];
                    }
                }
                Err(failure) => {
                    // Not even an instance: every request left fails alike.
                    answers.extend(rest.iter().map(|_| Err(failure.clone())));
                    rest = &[];
                }
            }
        }
        (answers, evaluation)
    }
}

impl WasmPolicy {
    /// A validation as the guest returned it, checked and in host types.
    fn lift_validation(&self, answer: Result<wit::ValidRegistration, wit::ValidationError>) -> Validation {
        let max_string = self.engine.limits().max_string_bytes;
        match answer {
            Ok(v) if v.pattern.len() > max_string => bounded_output("pattern", &v.pattern, max_string)
                .map(|()| Err(ValidationError::new(Field::Fqdn, String::new()))),
            Err(e) if e.message.len() > max_string => bounded_output("message", &e.message, max_string)
                .map(|()| Err(ValidationError::new(Field::Fqdn, String::new()))),
            Ok(v) => Ok(Ok(ValidRegistration {
                domain: v.domain,
                pattern: v.pattern,
                ip: v.ip,
                serial: v.serial,
                wildcards: v.wildcards,
            })),
            Err(e) => match Field::parse(&e.field) {
                Some(field) => Ok(Err(ValidationError::new(field, e.message.chars().take(1024).collect::<String>()))),
                None => Err(PolicyFailure {
                    kind: "invalid-output",
                    message: format!("validation error names an unknown field {:?}", e.field),
                }),
            },
        }
    }
}

/// A policy that returns an oversized string fails (closed), whatever it said.
fn bounded_output(what: &str, value: &str, max: usize) -> Result<(), PolicyFailure> {
    if value.len() > max {
        return Err(PolicyFailure {
            kind: "invalid-output",
            message: format!("the policy returned a {what} of {} bytes; at most {max} are accepted", value.len()),
        });
    }
    Ok(())
}

/// A decision as the guest returned it, checked and in host types.
fn lift_decision(d: wit::Decision, max_string: usize) -> Result<Decision, PolicyFailure> {
    bounded_output("explanation", &d.explanation, max_string)?;
    Ok(Decision {
        allowed: d.allowed,
        reason: reason(d.reason),
        registration: d.registration,
        explanation: d.explanation.chars().take(1024).collect(),
    })
}

fn reason(r: wit::Reason) -> Reason {
    match r {
        wit::Reason::UnknownProcedure => Reason::UnknownProcedure,
        wit::Reason::NotRequired => Reason::NotRequired,
        wit::Reason::InvalidFqdn => Reason::InvalidFqdn,
        wit::Reason::DomainNotAllowed => Reason::DomainNotAllowed,
        wit::Reason::NoRegistration => Reason::NoRegistration,
        wit::Reason::IpMismatch => Reason::IpMismatch,
        wit::Reason::SerialMismatch => Reason::SerialMismatch,
        wit::Reason::PasswordRequired => Reason::PasswordRequired,
        wit::Reason::BadPassword => Reason::BadPassword,
        wit::Reason::Locked => Reason::Locked,
        wit::Reason::Matched => Reason::Matched,
    }
}
