//! A policy that misbehaves on purpose, to test the host's sandbox.
//!
//! What it does depends on the first label of the name it is asked about:
//!
//! | first label | behaviour |
//! | --- | --- |
//! | `loop` | spins forever (the host's epoch deadline must stop it) |
//! | `oom` | allocates until memory runs out (the host's memory cap must stop it) |
//! | `trap` | panics, which traps |
//! | `nonsense` | allows, naming a registration the host never offered |
//! | `liar` | says `allowed` with a deny reason |
//! | `greedy` | allows via `not-required` on a procedure that requires preregistration |
//! | `chatty` | logs a 1 MiB line (the host must cut it) and denies |
//! | `deep` | recurses without end (the stack overflows: a trap) |
//! | `storm` | calls a host import ten million times (the import budget must stop it) |
//! | `huge` | allows with an 8 MiB explanation (the host must refuse the output) |
//! | `malformed` | returns an explanation that is not UTF-8 (lifting it must fail) |
//! | `snoop` | reads what WASI offers (environment, arguments, the clock, random bytes), writes to standard output and error, and denies, saying what it found (the host's deny-all WASI context must give it nothing; files and sockets are not even linked) |
//! | anything else | denies with `no-registration` |
//!
//! Renewals misbehave by the same table; anything else is allowed,
//! `matched`, naming the request's registration after looking up the
//! candidates, whatever their state, pins or domain (the host's renewal
//! guard must refuse what the rules would).
//!
//! Never use it for real decisions: it exists for `tests/all/sandbox.rs`.

#![allow(unsafe_code)]

use std::hint::black_box;

use prereg_sdk::prelude::*;

/// Recursion the optimizer cannot remove (it never returns, on purpose).
#[allow(unconditional_recursion, reason = "the point of the `deep` case")]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[(depth % 256) as usize] = 1;
    black_box(&mut frame);
    recurse(black_box(depth + 1)).wrapping_add(u64::from(frame[0]))
}

/// The hostile policy.
pub struct Hostile;

fn misbehave(host: &impl PolicyHost, name: &str) -> Option<Decision> {
    match name.split('.').next().unwrap_or_default() {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let chunk = vec![black_box(1u8); 1 << 20];
                hoard.push(black_box(chunk));
                black_box(&hoard);
            }
        }
        "trap" => panic!("hostile policy: trap on purpose"),
        "nonsense" => {
            Some(Decision::new(Reason::Matched, Some(u64::MAX - 7), "allowing a registration nobody offered"))
        }
        "liar" => Some(Decision {
            allowed: true,
            reason: Reason::NoRegistration,
            registration: None,
            explanation: "lying".into(),
        }),
        "greedy" => Some(Decision::new(Reason::NotRequired, None, "claims preregistration is not required")),
        "deep" => Some(Decision::new(Reason::NoRegistration, None, format!("depth {}", recurse(black_box(0))))),
        "storm" => {
            let mut sum = 0u64;
            for _ in 0..10_000_000u32 {
                sum = black_box(sum.wrapping_add(host.now()));
            }
            Some(Decision::new(Reason::NoRegistration, None, format!("{sum}")))
        }
        "huge" => Some(Decision {
            allowed: true,
            reason: Reason::Matched,
            registration: None,
            explanation: "x".repeat(black_box(8 << 20)),
        }),
        "malformed" => {
            let bytes = black_box(vec![0xff, 0xfe, b'x', 0xc3]);
            // Deliberately broken: the canonical ABI carries these bytes as a
            // string, and the host must refuse to lift them.
            let explanation = unsafe { String::from_utf8_unchecked(bytes) };
            Some(Decision { allowed: true, reason: Reason::Matched, registration: None, explanation })
        }
        "chatty" => {
            host.log(LogLevel::Warn, &"x".repeat(1 << 20));
            None
        }
        "snoop" => {
            let environment = black_box(std::env::vars_os().count());
            let arguments = black_box(std::env::args_os().count());
            let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).is_ok();
            // A seeded hash map draws random bytes from WASI.
            let random = black_box(std::collections::hash_map::RandomState::new());
            black_box(random);
            println!("hostile policy: to standard output");
            eprintln!("hostile policy: to standard error");
            Some(Decision::new(
                Reason::NoRegistration,
                None,
                format!("snooped: {environment} environment variables, {arguments} arguments, clock {clock}"),
            ))
        }
        _ => None,
    }
}

impl Policy for Hostile {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "hostile".into(), version: "0.0.1".into() }
    }

    fn validate_registration(
        host: &impl PolicyHost,
        request: RegistrationRequest,
    ) -> Result<ValidRegistration, ValidationError> {
        misbehave(host, &request.fqdn);
        Err(ValidationError::new(Field::Fqdn, "the hostile policy accepts no registrations"))
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        misbehave(host, &request.fqdn)
            .unwrap_or_else(|| Decision::new(Reason::NoRegistration, None, "the hostile policy denies"))
    }

    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        if let Some(decision) = misbehave(host, &request.fqdn) {
            return decision;
        }
        if let (Some(procedure), Ok(fqdn)) = (host.procedure(&request.procedure), Fqdn::parse(&request.fqdn)) {
            let _ = host.candidates(&procedure.domain, &fqdn);
        }
        Decision::new(Reason::Matched, Some(request.registration), "the hostile policy renews everything")
    }
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(Hostile);
