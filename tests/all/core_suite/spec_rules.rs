//! SPEC.md, "Deciding an enrollment" and "Registering", rule by rule, through
//! the default policy component.

use std::sync::Arc;

use prereg::policy::NativeDefaultPolicy;
use prereg::registry::DecisionMode;
use prereg::signing::WriteRequest;

use crate::common::{Fixture, NOW, Reg, Req, req};

/// The SPEC.md worked examples.
#[test]
fn worked_examples() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("d-routers", "D", "scep", &[]);
    f.procedure("e-routers", "E", "scep", &[]);
    f.register("d-routers", "*.dept.example.com").unwrap();
    f.register("d-routers", "serial-*.example.com").unwrap();
    f.register("d-routers", "router1.example.com").unwrap();

    let r = f.check(req("d-routers", "router5.dept.example.com"));
    assert_eq!((r.allowed, r.reason.as_str(), r.pattern.as_deref()), (true, "matched", Some("*.dept.example.com")));
    let r = f.check(req("d-routers", "serial-1234.example.com"));
    assert_eq!((r.allowed, r.reason.as_str(), r.pattern.as_deref()), (true, "matched", Some("serial-*.example.com")));
    let r = f.check(Req { ip: Some("10.1.2.3"), serial: Some("FTX1"), ..req("d-routers", "router1.example.com") });
    assert_eq!((r.allowed, r.reason.as_str(), r.pattern.as_deref()), (true, "matched", Some("router1.example.com")));
    let r = f.check(req("e-routers", "router1.example.com"));
    assert_eq!((r.allowed, r.reason.as_str(), r.registration), (false, "no-registration", None));
    // Every decision names the policy that made it.
    assert_eq!(r.policy.name, "default");
    assert_eq!(r.policy.sha256.len(), 64);
}

/// Steps 1 to 4.
#[test]
fn procedure_requirement_name_and_allowed_domains() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("scep-d", "D", "scep", &["example.com"]);
    f.procedure("est-open", "D", "est", &[]);
    f.register("scep-d", "a.example.com").unwrap();

    assert_eq!(f.check(req("nope", "a.example.com")).reason, "unknown-procedure");
    let r = f.check(req("est-open", "anything.example.org"));
    assert_eq!((r.allowed, r.reason.as_str()), (true, "not-required"));
    for bad in ["*.example.com", "a..example.com", "-a.example.com", "a_b.example.com", ""] {
        assert_eq!(f.check(req("scep-d", bad)).reason, "invalid-fqdn", "{bad:?}");
    }
    assert_eq!(f.check(req("scep-d", "a.badexample.com")).reason, "domain-not-allowed");
    assert_eq!(f.check(req("scep-d", "a.example.org")).reason, "domain-not-allowed");
    // Canonical form: case, trailing dot.
    assert_eq!(f.check(req("scep-d", "A.Example.COM.")).reason, "matched");
}

/// An EST procedure that opts in to preregistration is enforced; SCEP and
/// CMP procedures cannot opt out.
#[test]
fn require_preregistration_setting() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.submit(WriteRequest::CreateProcedure {
        certificate_days: None,
        name: "est-strict".into(),
        domain: "D".into(),
        protocol: "est".into(),
        allowed_domains: vec![],
        require_preregistration: Some(true),
    })
    .unwrap();
    assert_eq!(f.check(req("est-strict", "x.example.com")).reason, "no-registration");
    let refused = f.submit(WriteRequest::CreateProcedure {
        certificate_days: None,
        name: "cmp-lax".into(),
        domain: "D".into(),
        protocol: "cmp".into(),
        allowed_domains: vec![],
        require_preregistration: Some(false),
    });
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("require-preregistration"), "{message}");
}

/// Step 5: candidates of the procedure's domain, shared by its procedures.
#[test]
fn domain_scoping_across_token_procedures() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("d-one", "D", "scep", &[]);
    f.procedure("d-two", "D", "cmp", &[]);
    f.procedure("e-one", "E", "scep", &[]);
    f.register("d-one", "router1.example.com").unwrap();
    assert_eq!(f.check(req("d-two", "router1.example.com")).reason, "matched");
    assert_eq!(f.check(req("e-one", "router1.example.com")).reason, "no-registration");
    // The same pattern is refused in the same domain, through another procedure...
    let dup = f.register("d-two", "Router1.example.com.").unwrap_err().to_string();
    assert!(dup.contains("already exists"), "{dup}");
    // ...and accepted in another domain.
    f.register("e-one", "router1.example.com").unwrap();
    assert_eq!(f.check(req("e-one", "router1.example.com")).reason, "matched");
}

/// Step 6: empty IP and serial match anything; set ones must be equal.
#[test]
fn ip_and_serial() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register_with(Reg { procedure: "p", fqdn: "ip.example.com", ip: Some("10.0.0.1"), ..Default::default() })
        .unwrap();
    f.register_with(Reg { procedure: "p", fqdn: "sn.example.com", serial: Some("FTX1234"), ..Default::default() })
        .unwrap();
    f.register_with(Reg { procedure: "p", fqdn: "v6.example.com", ip: Some("2001:DB8:0:0::1"), ..Default::default() })
        .unwrap();

    assert_eq!(f.check(Req { ip: Some("10.0.0.1"), ..req("p", "ip.example.com") }).reason, "matched");
    assert_eq!(f.check(Req { ip: Some("10.0.0.2"), ..req("p", "ip.example.com") }).reason, "ip-mismatch");
    assert_eq!(f.check(req("p", "ip.example.com")).reason, "ip-mismatch");
    assert_eq!(f.check(Req { ip: Some("2001:db8::1"), ..req("p", "v6.example.com") }).reason, "matched");
    assert_eq!(f.check(Req { serial: Some("ftx1234"), ..req("p", "sn.example.com") }).reason, "matched");
    assert_eq!(f.check(Req { serial: Some("FTX9"), ..req("p", "sn.example.com") }).reason, "serial-mismatch");
    assert_eq!(f.check(req("p", "sn.example.com")).reason, "serial-mismatch");
    let r = f.check(Req { ip: Some("10.0.0.2"), ..req("p", "ip.example.com") });
    assert!(r.registration.is_some(), "a mismatch names the registration that matched by name");
    // Invalid values are refused at registration, naming the field.
    let bad_ip =
        f.register_with(Reg { procedure: "p", fqdn: "x.example.com", ip: Some("10.0.0.300"), ..Default::default() });
    assert!(bad_ip.unwrap_err().to_string().starts_with("invalid ip:"));
}

/// Step 7: the most specific candidate decides, with no fall-through.
#[test]
fn most_specific_decides_without_fall_through() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let star = f.register("p", "*.example.com").unwrap();
    let prefix = f.register("p", "router*.example.com").unwrap();
    let exact = f
        .register_with(Reg { procedure: "p", fqdn: "router7.example.com", ip: Some("10.0.0.7"), ..Default::default() })
        .unwrap();
    let catch_all =
        f.register_with(Reg { procedure: "p", fqdn: "*", password: Some("pw"), ..Default::default() }).unwrap();

    assert_eq!(f.check(req("p", "printer.example.com")).registration, Some(star));
    assert_eq!(f.check(req("p", "router5.example.com")).registration, Some(prefix));
    assert_eq!(f.check(Req { ip: Some("10.0.0.7"), ..req("p", "router7.example.com") }).registration, Some(exact));
    // Step 6 filters first: the exact registration's IP does not match, so of
    // the remaining candidates the most specific (router*) decides.
    let r = f.check(Req { ip: Some("10.9.9.9"), ..req("p", "router7.example.com") });
    assert_eq!((r.allowed, r.reason.as_str(), r.registration), (true, "matched", Some(prefix)));
    // No fall-through at step 8: the most specific remaining candidate has a
    // password; a wrong one denies, although `*.example.com` has none.
    let locked_down = f
        .register_with(Reg { procedure: "p", fqdn: "gw*.example.com", password: Some("pw"), ..Default::default() })
        .unwrap();
    let r = f.check(Req { password: Some("wrong"), ..req("p", "gw1.example.com") });
    assert_eq!((r.allowed, r.reason.as_str(), r.registration), (false, "bad-password", Some(locked_down)));
    let r = f.check(req("p", "gw1.example.com"));
    assert_eq!((r.allowed, r.reason.as_str(), r.registration), (false, "password-required", Some(locked_down)));
    // When every name match fails on IP, the most specific one is named.
    // (In a domain of its own: the catch-all above would match it.)
    f.procedure("q", "Q", "scep", &[]);
    f.register_with(Reg { procedure: "q", fqdn: "pinned.example.net", ip: Some("10.0.0.9"), ..Default::default() })
        .unwrap();
    f.register("q", "*.example.net").unwrap();
    f.register_with(Reg { procedure: "q", fqdn: "*.pinned.example.org", serial: Some("S9"), ..Default::default() })
        .unwrap();
    assert_eq!(f.check(Req { ip: Some("10.0.0.8"), ..req("q", "pinned.example.net") }).reason, "matched");
    assert_eq!(f.check(Req { ip: Some("10.0.0.8"), ..req("q", "a.pinned.example.org") }).reason, "serial-mismatch");
    // The catch-all only decides where nothing more specific matches.
    let r = f.check(Req { password: Some("pw"), ..req("p", "other.org") });
    assert_eq!((r.reason.as_str(), r.registration), ("matched", Some(catch_all)));
}

/// Patterns: the SPEC wildcard cases, end to end.
#[test]
fn wildcard_cases() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "*.dept.example.com").unwrap();
    f.register("p", "serial-*.example.com").unwrap();
    f.register("p", "a.*.corp.example.net").unwrap();
    for (name, reason) in [
        ("router5.dept.example.com", "matched"),
        ("dept.example.com", "no-registration"),
        ("a.b.dept.example.com", "no-registration"),
        ("serial-1234.example.com", "matched"),
        ("serial-.example.com", "invalid-fqdn"),
        ("serial-1.x.example.com", "no-registration"),
        ("a.site1.corp.example.net", "matched"),
        ("b.site1.corp.example.net", "no-registration"),
    ] {
        assert_eq!(f.check(req("p", name)).reason, reason, "{name}");
    }
}

/// Registering: the pattern rules, with the field named.
#[test]
fn registration_validation_names_the_fault() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &["example.com"]);
    f.procedure("any", "D", "scep", &[]);
    for (fqdn, needle) in [
        ("*.com", "public suffix \"com\""),
        ("*.co.uk", "public suffix \"co.uk\""),
        ("example.*", "top-level label"),
        ("a**.example.com", "two wildcards in a row"),
        ("*.badexample.com", "outside the allowed domains"),
        ("a..example.com", "label 2 is empty"),
        (&format!("{}.example.com", "a".repeat(64)), "at most 63"),
    ] {
        let e = f.register("p", fqdn).unwrap_err().to_string();
        assert!(e.starts_with("invalid fqdn:") && e.contains(needle), "{fqdn}: {e}");
    }
    assert!(f.register("p", "*.example.com").is_ok());
    assert!(f.register("p", "x.a.example.com").is_ok());
    // The catch-all needs a password.
    let e = f.register("any", "*").unwrap_err().to_string();
    assert!(e.starts_with("invalid password:"), "{e}");
    assert!(
        f.register_with(Reg { procedure: "any", fqdn: "*", password: Some("s3cret"), ..Default::default() }).is_ok()
    );
    // With allowed domains, the catch-all has no literal part and is refused.
    let e = f.register_with(Reg { procedure: "p", fqdn: "*", password: Some("s3cret"), ..Default::default() });
    assert!(e.unwrap_err().to_string().contains("outside the allowed domains"));
    // Unknown procedure.
    assert!(f.register("nope", "a.example.com").unwrap_err().to_string().contains("unknown token procedure"));
}

/// The natively linked default policy and the component agree on a table
/// of decisions (they are the same code; this guards the boundary).
#[test]
fn native_and_wasm_agree() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &["example.com", "example.net"]);
    f.procedure("o", "D", "other", &[]);
    f.register("p", "*.dept.example.com").unwrap();
    f.register_with(Reg {
        procedure: "p",
        fqdn: "r1.example.com",
        ip: Some("10.1.1.1"),
        serial: Some("S1"),
        ..Default::default()
    })
    .unwrap();
    f.register_with(Reg { procedure: "p", fqdn: "pw.example.net", password: Some("pw"), ..Default::default() })
        .unwrap();
    let native = f.with_other_policy(Arc::new(NativeDefaultPolicy::default()));
    let cases = [
        req("p", "a.dept.example.com"),
        req("p", "dept.example.com"),
        req("p", "a.example.org"),
        req("x", "a.example.com"),
        req("o", "whatever"),
        req("p", "bad..name"),
        Req { ip: Some("10.1.1.1"), serial: Some("s1"), ..req("p", "r1.example.com") },
        Req { ip: Some("10.1.1.2"), ..req("p", "r1.example.com") },
        Req { ip: Some("10.1.1.1"), ..req("p", "r1.example.com") },
        req("p", "pw.example.net"),
        Req { password: Some("no"), ..req("p", "pw.example.net") },
        Req { password: Some("pw"), ..req("p", "pw.example.net") },
    ];
    for case in cases {
        let wasm = f.check(case);
        let native = native.decide(case.input(), DecisionMode::DryRun, NOW).unwrap();
        assert_eq!(
            (wasm.allowed, &wasm.reason, wasm.registration, &wasm.explanation),
            (native.allowed, &native.reason, native.registration, &native.explanation),
            "{}",
            case.fqdn
        );
    }
}

/// SPEC.md, "Names", through the guest: case, trailing dot, IDNA, label and
/// name lengths, bad characters, for registrations and requests alike.
#[test]
fn canonical_names_through_the_guest() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let idn = f.register("p", "Bücher.Example.COM.").unwrap();
    assert_eq!(f.registry.registration(idn).unwrap().pattern, "xn--bcher-kva.example.com");
    for spelling in ["xn--bcher-kva.example.com", "BÜCHER.example.com", "bücher.example.com.", " bücher.example.com "]
    {
        let r = f.check(req("p", spelling));
        assert_eq!((r.reason.as_str(), r.registration), ("matched", Some(idn)), "{spelling:?}");
    }
    // The same name in another spelling is a duplicate.
    assert!(f.register("p", "xn--BCHER-kva.example.com").unwrap_err().to_string().contains("already exists"));

    let l63 = "a".repeat(63);
    let l64 = "a".repeat(64);
    f.register("p", &format!("{l63}.example.com")).unwrap();
    assert_eq!(f.check(req("p", &format!("{}.example.com", l63.to_uppercase()))).reason, "matched");
    assert_eq!(f.check(req("p", &format!("{l64}.example.com"))).reason, "invalid-fqdn");
    // 253 octets pass, 254 do not.
    let long = format!("{l63}.{l63}.{l63}.{}.com", "b".repeat(57));
    assert_eq!(long.len(), 253);
    f.register("p", &long).unwrap();
    assert_eq!(f.check(req("p", &format!("{long}."))).reason, "matched");
    assert_eq!(f.check(req("p", &format!("x{long}"))).reason, "invalid-fqdn");
    let e = f.register("p", &format!("x{long}")).unwrap_err().to_string();
    assert!(e.contains("254 octets"), "{e}");
    for bad in [
        "a_b.example.com",
        "a b.example.com",
        "a..example.com",
        "-a.example.com",
        "a-.example.com",
        "xn--zz.example.com",
        ".",
    ] {
        assert_eq!(f.check(req("p", bad)).reason, "invalid-fqdn", "{bad:?}");
        assert!(f.register("p", bad).unwrap_err().to_string().starts_with("invalid fqdn:"), "{bad:?}");
    }
}
