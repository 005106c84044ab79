//! The C ABI of prereg-engine, for CA hosts written in Java, Go or C: create
//! an engine, load a policy (the built-in default, or a component's bytes),
//! decide enrollments with host callbacks, free. The header is
//! `include/prereg.h`, generated from this file by cbindgen (`build.rs`);
//! `README.md` tells the life of a decision.
//!
//! Ownership: every `prereg_*_new`, `prereg_policy_*` and `prereg_decide`
//! result is owned by the caller and freed with its `_free` function (each
//! accepts NULL). Strings passed in are borrowed for the call; strings given
//! out live as long as the object that gives them.
//!
//! Callbacks answer through a `prereg_answer` handed to them: the engine
//! copies what it is given at once, so the host may pass pointers into its
//! own buffers. A callback returns 0 when it answered, anything else when
//! its storage failed: the decision is then a `policy-error` (never an
//! allow), with `prereg_decision_host_failed` true.
//!
//! Threads: an engine and a policy may be shared by threads; each
//! `prereg_decide` runs on the calling thread and calls the host's callbacks
//! on it, before it returns.

// This crate is the boundary with C: raw pointers in and out.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use prereg_core::{
    EnrollmentRequest, Fqdn, LogLevel, PasswordCheck, Procedure, Protocol, Registration, RegistrationState,
};
use prereg_engine::{Candidate, HostCalls, HostError, Limits, Policy, PolicyEngine, PolicyHost, WasmPolicy};

/// An engine: one per process (it runs a ticker thread for deadlines).
pub struct PreregEngine(PolicyEngine);

/// A policy, compiled and ready to decide.
pub struct PreregPolicy {
    policy: WasmPolicy,
    name: CString,
    sha256: CString,
}

impl PreregPolicy {
    fn new(policy: WasmPolicy) -> Self {
        let (name, sha256) = (c_text(&policy.info().name), c_text(&policy.info().sha256));
        PreregPolicy { policy, name, sha256 }
    }
}

/// Why a call failed: read with `prereg_error_message`, free with
/// `prereg_error_free`.
pub struct PreregError(CString);

/// A decision, checked by the host guard.
pub struct PreregDecision {
    allowed: bool,
    reason: CString,
    registration: u64,
    explanation: CString,
    host_failed: bool,
}

/// Where a callback puts its answer (owned by the engine, valid during the
/// callback only).
pub struct PreregAnswer {
    procedure: Option<Procedure>,
    candidates: Vec<Candidate>,
    /// The first thing that made the answer unusable.
    fault: Option<String>,
}

/// An enrollment protocol.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreregProtocol {
    /// SCEP (RFC 8894).
    Scep = 0,
    /// CMP (RFC 9483).
    Cmp = 1,
    /// EST (RFC 7030).
    Est = 2,
    /// ACME (RFC 8555).
    Acme = 3,
    /// Another CA asking through a webhook.
    Other = 4,
}

/// The state of a registration.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreregState {
    /// May be used.
    Open = 0,
    /// Used up.
    Used = 1,
    /// Disabled by an officer.
    Disabled = 2,
    /// Locked after wrong passwords.
    Locked = 3,
}

/// The outcome of comparing the request's password with a registration's.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreregPasswordCheck {
    /// The passwords match.
    Match = 0,
    /// They differ.
    Mismatch = 1,
    /// The registration has one; the request none.
    NotProvided = 2,
    /// The registration has none.
    NotSet = 3,
}

/// A token procedure, as the host gives it (strings borrowed for the call).
#[repr(C)]
pub struct PreregProcedure {
    /// Its name.
    pub name: *const c_char,
    /// The domain that scopes its registrations.
    pub domain: *const c_char,
    /// The protocol it serves: a `PREREG_PROTOCOL_*` value (a plain
    /// integer, so that a wrong value is refused, not undefined behaviour).
    pub protocol: u32,
    /// Whether a device must be preregistered.
    pub require_preregistration: bool,
    /// DNS names (and their subdomains) certificates may be issued for.
    pub allowed_domains: *const *const c_char,
    /// How many `allowed_domains` there are.
    pub allowed_domains_len: usize,
}

/// A preregistered device, as the host gives it (strings borrowed for the
/// call; NULL where optional).
#[repr(C)]
pub struct PreregRegistration {
    /// Its id (not 0).
    pub id: u64,
    /// The domain it was registered under.
    pub domain: *const c_char,
    /// Its canonical FQDN pattern (`router*.dept.example.com`).
    pub pattern: *const c_char,
    /// The IP address it must enroll from, or NULL.
    pub ip: *const c_char,
    /// The serial number it must present, or NULL.
    pub serial: *const c_char,
    /// Whether it has a password.
    pub has_password: bool,
    /// Its state: a `PREREG_STATE_*` value.
    pub state: u32,
    /// End of validity in Unix seconds, or 0 for none.
    pub expires_at: u64,
    /// Most enrollments, or 0 for no limit.
    pub max_enrollments: u32,
    /// Enrollments so far.
    pub enrollments: u32,
}

/// An enrollment request (strings borrowed for the call; NULL where
/// optional). The password stays with the host: `has_password` says whether
/// there is one, and `check_password` compares it.
#[repr(C)]
pub struct PreregRequest {
    /// The token procedure named by the request.
    pub procedure: *const c_char,
    /// The FQDN the device asks a certificate for.
    pub fqdn: *const c_char,
    /// Its IP address, or NULL.
    pub ip: *const c_char,
    /// Its serial number, or NULL.
    pub serial: *const c_char,
    /// Whether it presented a password.
    pub has_password: bool,
}

/// The host: the facts of one decision, as callbacks over `context`.
/// Each callback returns 0 when it answered, anything else when it could
/// not (storage failed).
#[repr(C)]
pub struct PreregHost {
    /// Passed to every callback.
    pub context: *mut c_void,
    /// The token procedure `name`: call `prereg_answer_procedure` if there
    /// is one, nothing if not.
    pub procedure:
        Option<unsafe extern "C" fn(context: *mut c_void, name: *const c_char, answer: *mut PreregAnswer) -> c_int>,
    /// The registrations of `domain` that may match the canonical name
    /// `fqdn` (at least every one whose pattern matches it): call
    /// `prereg_answer_candidate` for each.
    pub candidates: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            domain: *const c_char,
            fqdn: *const c_char,
            answer: *mut PreregAnswer,
        ) -> c_int,
    >,
    /// Compares the request's password with that of `registration`, and
    /// stores a `PREREG_PASSWORD_CHECK_*` value in `*check`.
    pub check_password: Option<unsafe extern "C" fn(context: *mut c_void, registration: u64, check: *mut u32) -> c_int>,
    /// A line the policy logs (level 0 debug, 1 info, 2 warn), or NULL to
    /// drop them.
    pub log: Option<unsafe extern "C" fn(context: *mut c_void, level: c_int, message: *const c_char)>,
    /// The time of the decision, in Unix seconds.
    pub now: u64,
}

/// Text given out to C: a NUL inside (which C would take for the end) becomes
/// a space.
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

/// Copies a borrowed C string; `None` for NULL.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string.
unsafe fn text(text: *const c_char, what: &str) -> Result<Option<String>, String> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { CStr::from_ptr(text) };
    bytes.to_str().map(|s| Some(s.to_owned())).map_err(|_| format!("{what} is not UTF-8"))
}

/// [`text`], required.
unsafe fn required(value: *const c_char, what: &str) -> Result<String, String> {
    // SAFETY: the caller's contract.
    unsafe { text(value, what) }?.ok_or_else(|| format!("{what} is NULL"))
}

fn error_out(error: *mut *mut PreregError, message: String) {
    if !error.is_null() {
        let message = c_text(&message);
        // SAFETY: `error` is NULL (checked) or points to a writable pointer.
        unsafe { *error = Box::into_raw(Box::new(PreregError(message))) };
    }
}

/// Runs `f`, turning an error or a panic into `*error` and NULL.
fn guarded<T>(error: *mut *mut PreregError, f: impl FnOnce() -> Result<T, String>) -> *mut T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Box::into_raw(Box::new(value)),
        Ok(Err(message)) => {
            error_out(error, message);
            std::ptr::null_mut()
        }
        Err(_) => {
            error_out(error, "internal error (a panic in prereg)".into());
            std::ptr::null_mut()
        }
    }
}

/// The version of prereg (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn prereg_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A new engine with the default limits (200 ms per decision, 32 MiB of
/// memory per policy instance). NULL on failure, with `*error` set if
/// `error` is not NULL.
#[unsafe(no_mangle)]
pub extern "C" fn prereg_engine_new(error: *mut *mut PreregError) -> *mut PreregEngine {
    guarded(error, || PolicyEngine::new(Limits::default()).map(PreregEngine).map_err(|e| e.to_string()))
}

/// Frees an engine (after every policy made with it).
///
/// # Safety
/// `engine` is NULL or came from `prereg_engine_new`, and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_engine_free(engine: *mut PreregEngine) {
    if !engine.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(engine) });
    }
}

/// The built-in default policy. NULL on failure, with `*error` set.
///
/// # Safety
/// `engine` came from `prereg_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_policy_builtin(
    engine: *const PreregEngine,
    error: *mut *mut PreregError,
) -> *mut PreregPolicy {
    guarded(error, || {
        // SAFETY: the caller's contract.
        let engine = unsafe { engine.as_ref() }.ok_or("engine is NULL")?;
        WasmPolicy::builtin(&engine.0).map(PreregPolicy::new).map_err(|e| e.to_string())
    })
}

/// A policy from the bytes of a component (`len` bytes at `bytes`, copied).
/// NULL on failure, with `*error` set (not a component, a forbidden import,
/// another WIT version...).
///
/// # Safety
/// `engine` came from `prereg_engine_new`; `bytes` points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_policy_load(
    engine: *const PreregEngine,
    bytes: *const u8,
    len: usize,
    error: *mut *mut PreregError,
) -> *mut PreregPolicy {
    guarded(error, || {
        // SAFETY: the caller's contract.
        let engine = unsafe { engine.as_ref() }.ok_or("engine is NULL")?;
        if bytes.is_null() {
            return Err("bytes is NULL".into());
        }
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(bytes, len) };
        WasmPolicy::new(&engine.0, bytes, "C caller").map(PreregPolicy::new).map_err(|e| e.to_string())
    })
}

/// The name a policy gives itself, valid while the policy is.
///
/// # Safety
/// `policy` is NULL or came from `prereg_policy_builtin` or `prereg_policy_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_policy_name(policy: *const PreregPolicy) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { policy.as_ref() }.map_or(std::ptr::null(), |p| p.name.as_ptr())
}

/// The SHA-256 of a policy's component (hex), valid while the policy is.
///
/// # Safety
/// `policy` is NULL or came from `prereg_policy_builtin` or `prereg_policy_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_policy_sha256(policy: *const PreregPolicy) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { policy.as_ref() }.map_or(std::ptr::null(), |p| p.sha256.as_ptr())
}

/// Frees a policy.
///
/// # Safety
/// `policy` is NULL or came from `prereg_policy_builtin` / `prereg_policy_load`,
/// and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_policy_free(policy: *mut PreregPolicy) {
    if !policy.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(policy) });
    }
}

/// Answers a `procedure` callback: the procedure exists. Returns 0, or -1
/// if the answer is unusable (a NULL or non-UTF-8 string), which fails the
/// decision as a host failure.
///
/// # Safety
/// `answer` is the one handed to the callback; `procedure` points to a
/// valid `prereg_procedure`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_answer_procedure(
    answer: *mut PreregAnswer,
    procedure: *const PreregProcedure,
) -> c_int {
    // SAFETY: the caller's contract.
    let (Some(answer), Some(p)) = (unsafe { answer.as_mut() }, unsafe { procedure.as_ref() }) else {
        return -1;
    };
    // SAFETY: the strings are borrowed for this call.
    let read = || -> Result<Procedure, String> {
        let mut allowed_domains = Vec::with_capacity(p.allowed_domains_len);
        if p.allowed_domains_len > 0 && p.allowed_domains.is_null() {
            return Err("allowed_domains is NULL".into());
        }
        for i in 0..p.allowed_domains_len {
            // SAFETY: `allowed_domains` holds `allowed_domains_len` strings.
            allowed_domains.push(unsafe { required(*p.allowed_domains.add(i), "an allowed domain") }?);
        }
        Ok(Procedure {
            // SAFETY: borrowed strings, per the contract.
            name: unsafe { required(p.name, "procedure name") }?,
            domain: unsafe { required(p.domain, "procedure domain") }?,
            protocol: match p.protocol {
                x if x == PreregProtocol::Scep as u32 => Protocol::Scep,
                x if x == PreregProtocol::Cmp as u32 => Protocol::Cmp,
                x if x == PreregProtocol::Est as u32 => Protocol::Est,
                x if x == PreregProtocol::Acme as u32 => Protocol::Acme,
                x if x == PreregProtocol::Other as u32 => Protocol::Other,
                x => return Err(format!("unknown protocol {x}")),
            },
            require_preregistration: p.require_preregistration,
            allowed_domains,
        })
    };
    match read() {
        Ok(procedure) => {
            answer.procedure = Some(procedure);
            0
        }
        Err(fault) => {
            answer.fault.get_or_insert(fault);
            -1
        }
    }
}

/// Answers a `candidates` callback with one more registration. Returns 0,
/// or -1 if it is unusable (a NULL or non-UTF-8 string, id 0), which fails
/// the decision as a host failure.
///
/// # Safety
/// `answer` is the one handed to the callback; `registration` points to a
/// valid `prereg_registration`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_answer_candidate(
    answer: *mut PreregAnswer,
    registration: *const PreregRegistration,
) -> c_int {
    // SAFETY: the caller's contract.
    let (Some(answer), Some(r)) = (unsafe { answer.as_mut() }, unsafe { registration.as_ref() }) else {
        return -1;
    };
    let read = || -> Result<Candidate, String> {
        if r.id == 0 {
            return Err("a registration has id 0".into());
        }
        let registration = Registration {
            id: r.id,
            // SAFETY: borrowed strings, per the contract.
            pattern: unsafe { required(r.pattern, "registration pattern") }?,
            ip: unsafe { text(r.ip, "registration ip") }?,
            serial: unsafe { text(r.serial, "registration serial") }?,
            has_password: r.has_password,
            state: match r.state {
                x if x == PreregState::Open as u32 => RegistrationState::Open,
                x if x == PreregState::Used as u32 => RegistrationState::Used,
                x if x == PreregState::Disabled as u32 => RegistrationState::Disabled,
                x if x == PreregState::Locked as u32 => RegistrationState::Locked,
                x => return Err(format!("unknown registration state {x}")),
            },
            expires_at: (r.expires_at != 0).then_some(r.expires_at),
            max_enrollments: (r.max_enrollments != 0).then_some(r.max_enrollments),
            enrollments: r.enrollments,
        };
        // SAFETY: borrowed string, per the contract.
        Ok(Candidate { registration, domain: unsafe { required(r.domain, "registration domain") }?.into() })
    };
    match read() {
        Ok(candidate) => {
            answer.candidates.push(candidate);
            0
        }
        Err(fault) => {
            answer.fault.get_or_insert(fault);
            -1
        }
    }
}

/// The C host as the engine's [`PolicyHost`].
struct CallbackHost {
    context: *mut c_void,
    procedure: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *mut PreregAnswer) -> c_int>,
    candidates: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *mut PreregAnswer) -> c_int>,
    check_password: Option<unsafe extern "C" fn(*mut c_void, u64, *mut u32) -> c_int>,
    log: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_char)>,
    now: u64,
}

// SAFETY: a `CallbackHost` lives within one `prereg_decide`, and wasmtime
// runs the policy, and so the callbacks, on the thread that called it; it is
// never used from another thread.
unsafe impl Send for CallbackHost {}

fn c_string(s: &str) -> Result<CString, HostError> {
    CString::new(s).map_err(|_| HostError::Unavailable("a string with a NUL byte".into()))
}

fn answered(status: c_int, answer: &mut PreregAnswer, what: &str) -> Result<(), HostError> {
    match (status, answer.fault.take()) {
        (_, Some(fault)) => Err(HostError::Unavailable(format!("the host's answer to {what}: {fault}"))),
        (0, None) => Ok(()),
        (status, None) => Err(HostError::Unavailable(format!("the host's {what} callback failed ({status})"))),
    }
}

impl PolicyHost for CallbackHost {
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
        let callback = self.procedure.ok_or(HostError::Unavailable("no procedure callback".into()))?;
        let name = c_string(name)?;
        let mut answer = PreregAnswer { procedure: None, candidates: Vec::new(), fault: None };
        // SAFETY: the host's callback, with its context, a live string and answer.
        let status = unsafe { callback(self.context, name.as_ptr(), &mut answer) };
        answered(status, &mut answer, "procedure")?;
        Ok(answer.procedure)
    }

    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError> {
        let callback = self.candidates.ok_or(HostError::Unavailable("no candidates callback".into()))?;
        let (domain, fqdn) = (c_string(domain)?, c_string(fqdn.as_str())?);
        let mut answer = PreregAnswer { procedure: None, candidates: Vec::new(), fault: None };
        // SAFETY: the host's callback, with its context, live strings and answer.
        let status = unsafe { callback(self.context, domain.as_ptr(), fqdn.as_ptr(), &mut answer) };
        answered(status, &mut answer, "candidates")?;
        if answer.candidates.len() > limit {
            return Err(HostError::TooMany);
        }
        Ok(answer.candidates)
    }

    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError> {
        let callback = self.check_password.ok_or(HostError::Unavailable("no check_password callback".into()))?;
        let mut check = u32::MAX;
        // SAFETY: the host's callback, with its context and a live out-parameter.
        let status = unsafe { callback(self.context, registration, &mut check) };
        if status != 0 {
            return Err(HostError::Unavailable(format!("the host's check_password callback failed ({status})")));
        }
        match check {
            x if x == PreregPasswordCheck::Match as u32 => Ok(PasswordCheck::Match),
            x if x == PreregPasswordCheck::Mismatch as u32 => Ok(PasswordCheck::Mismatch),
            x if x == PreregPasswordCheck::NotProvided as u32 => Ok(PasswordCheck::NotProvided),
            x if x == PreregPasswordCheck::NotSet as u32 => Ok(PasswordCheck::NotSet),
            x => Err(HostError::Unavailable(format!(
                "the host's check_password answered {x}, no PREREG_PASSWORD_CHECK_*"
            ))),
        }
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn log(&mut self, _policy: &str, level: LogLevel, message: &str) {
        let Some(callback) = self.log else {
            return;
        };
        let message = c_text(message);
        let level = match level {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warn => 2,
        };
        // SAFETY: the host's callback, with its context and a live string.
        unsafe { callback(self.context, level, message.as_ptr()) };
    }
}

/// Decides an enrollment request with `policy` over the `host`'s callbacks,
/// and checks the answer with the host guard (an allow must be backed by a
/// registration the host offered, a password that matched...). NULL on
/// failure (a NULL or non-UTF-8 argument), with `*error` set; a policy that
/// fails, or a host callback that fails, is a decision: `policy-error`.
///
/// # Safety
/// `policy` came from `prereg_policy_builtin` / `prereg_policy_load`; `host`
/// and `request` point to valid structures whose strings stay valid for the
/// call; the callbacks follow their contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decide(
    policy: *const PreregPolicy,
    host: *const PreregHost,
    request: *const PreregRequest,
    error: *mut *mut PreregError,
) -> *mut PreregDecision {
    guarded(error, || {
        // SAFETY: the caller's contract.
        let policy = unsafe { policy.as_ref() }.ok_or("policy is NULL")?;
        // SAFETY: the caller's contract.
        let host = unsafe { host.as_ref() }.ok_or("host is NULL")?;
        // SAFETY: the caller's contract.
        let r = unsafe { request.as_ref() }.ok_or("request is NULL")?;
        let request = EnrollmentRequest {
            // SAFETY: borrowed strings, per the contract.
            procedure: unsafe { required(r.procedure, "request procedure") }?,
            fqdn: unsafe { required(r.fqdn, "request fqdn") }?,
            ip: unsafe { text(r.ip, "request ip") }?,
            serial: unsafe { text(r.serial, "request serial") }?,
            has_password: r.has_password,
        };
        let callbacks = CallbackHost {
            context: host.context,
            procedure: host.procedure,
            candidates: host.candidates,
            check_password: host.check_password,
            log: host.log,
            now: host.now,
        };
        let decided = prereg_engine::decide(&policy.policy, Box::new(callbacks), &request, HostCalls::Live);
        Ok(PreregDecision {
            allowed: decided.decision.allowed,
            reason: c_text(decided.decision.reason.code()),
            registration: decided.decision.registration.unwrap_or(0),
            explanation: c_text(&decided.decision.explanation),
            host_failed: decided.trace.host_error.is_some(),
        })
    })
}

/// Whether the device may enroll.
///
/// # Safety
/// `decision` came from `prereg_decide`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_allowed(decision: *const PreregDecision) -> bool {
    // SAFETY: the caller's contract.
    unsafe { decision.as_ref() }.is_some_and(|d| d.allowed)
}

/// The reason code (`matched`, `no-registration`, `bad-password`,
/// `policy-error`...), valid while the decision is.
///
/// # Safety
/// `decision` came from `prereg_decide`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_reason(decision: *const PreregDecision) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { decision.as_ref() }.map_or(std::ptr::null(), |d| d.reason.as_ptr())
}

/// The registration the decision is about, or 0.
///
/// # Safety
/// `decision` came from `prereg_decide`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_registration(decision: *const PreregDecision) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { decision.as_ref() }.map_or(0, |d| d.registration)
}

/// The explanation for the operator, valid while the decision is.
///
/// # Safety
/// `decision` came from `prereg_decide`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_explanation(decision: *const PreregDecision) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { decision.as_ref() }.map_or(std::ptr::null(), |d| d.explanation.as_ptr())
}

/// Whether a host callback failed during the decision (it is then a
/// `policy-error` deny that the CA should report as its own failure).
///
/// # Safety
/// `decision` came from `prereg_decide`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_host_failed(decision: *const PreregDecision) -> bool {
    // SAFETY: the caller's contract.
    unsafe { decision.as_ref() }.is_some_and(|d| d.host_failed)
}

/// Frees a decision.
///
/// # Safety
/// `decision` is NULL or came from `prereg_decide`, and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_decision_free(decision: *mut PreregDecision) {
    if !decision.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(decision) });
    }
}

/// The message of an error, valid while the error is.
///
/// # Safety
/// `error` came from a failed call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_error_message(error: *const PreregError) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { error.as_ref() }.map_or(std::ptr::null(), |e| e.0.as_ptr())
}

/// Frees an error.
///
/// # Safety
/// `error` is NULL or came from a failed call, and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prereg_error_free(error: *mut PreregError) {
    if !error.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(error) });
    }
}
