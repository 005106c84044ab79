//! What a policy file is, read before wasmtime compiles it: a component (not
//! a core module, not something else), and the WIT version its SDK recorded
//! in the `prereg:wit-version` custom section (as Zed's extension API does),
//! so that an incompatible policy is refused with the versions this host
//! supports rather than with a linker error.

use wasmparser::{Encoding, Parser, Payload};

use crate::EngineError;

/// The custom section the SDK's `export_policy!` writes.
pub const WIT_VERSION_SECTION: &str = "prereg:wit-version";

/// The custom section that carries a policy's own test cases (the SDK's
/// `export_policy!(P, cases = "cases.toml")`); the host runs them at load.
pub const TEST_CASES_SECTION: &str = "prereg:test-cases";

/// Largest test-case file a policy may embed (and `prereg policy test` reads), in bytes.
pub const MAX_TEST_CASES_BYTES: usize = 256 << 10;

/// The interfaces a policy may import: its own host interface and the parts
/// of WASI a Rust `wasm32-wasip2` program imports even when unused (served
/// deny-all). Anything else (files, sockets, HTTP, an unknown interface) is
/// refused at load.
pub const ALLOWED_IMPORTS: [&str; 5] = ["prereg:policy/", "wasi:io/", "wasi:cli/", "wasi:clocks/", "wasi:random/"];

/// What the file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFacts {
    /// The WIT version recorded by the SDK, if the policy was built with it.
    pub wit_version: Option<String>,
    /// The interfaces the component imports (`wasi:io/streams@0.2.6`, ...).
    pub imports: Vec<String>,
    /// The test cases the policy ships (TOML), if any.
    pub test_cases: Option<Vec<u8>>,
}

/// The WIT versions this host runs: the same major version, and for 0.x the
/// same minor version, as the WIT it was built with.
pub fn supported_versions() -> String {
    let host = prereg_core::WIT_VERSION;
    match parse(host) {
        Some((0, minor, _)) => format!("0.{minor}.x"),
        Some((major, _, _)) => format!("{major}.x"),
        None => host.to_owned(),
    }
}

/// Whether a guest built against WIT `guest` runs on this host.
pub fn compatible(guest: &str) -> bool {
    match (parse(guest), parse(prereg_core::WIT_VERSION)) {
        (Some((0, g_minor, _)), Some((0, h_minor, _))) => g_minor == h_minor,
        (Some((g_major, _, _)), Some((h_major, _, _))) => g_major == h_major && g_major != 0,
        _ => false,
    }
}

fn parse(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.split(['-', '+']).next()?.parse().ok()?;
    Some((major, minor, patch))
}

/// Reads the file's structure: refuses what is not a component, and a
/// component built against an incompatible WIT version.
pub fn inspect(bytes: &[u8], source: &str) -> Result<ComponentFacts, EngineError> {
    let invalid = |message: String| EngineError::Invalid { path: source.into(), message };
    if bytes.is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(invalid("not a WebAssembly file (it does not start with \\0asm)".into()));
    }
    let mut wit_version = None;
    let mut imports = Vec::new();
    let mut test_cases = None;
    let mut top = true;
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(format!("truncated or malformed: {e}")))?;
        match payload {
            Payload::Version { encoding, .. } if top => {
                top = false;
                if encoding == Encoding::Module {
                    return Err(invalid(
                        "a core WebAssembly module, not a component: build the policy for wasm32-wasip2 with \
                         prereg-sdk (or turn it into a component with wasm-tools component new)"
                            .into(),
                    ));
                }
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed import: {e}")))?;
                    imports.push(import.name.0.to_owned());
                }
            }
            Payload::CustomSection(section) if section.name() == WIT_VERSION_SECTION => {
                let text = std::str::from_utf8(section.data())
                    .map_err(|_| invalid(format!("its {WIT_VERSION_SECTION} section is not text")))?;
                let found = text.trim().to_owned();
                if !compatible(&found) {
                    return Err(EngineError::WitVersion {
                        path: source.into(),
                        found,
                        supported: supported_versions(),
                    });
                }
                wit_version = Some(found);
            }
            Payload::CustomSection(section) if section.name() == TEST_CASES_SECTION => {
                let max = MAX_TEST_CASES_BYTES;
                if section.data().len() > max {
                    return Err(invalid(format!(
                        "its {TEST_CASES_SECTION} section has {} bytes; at most {max} are accepted",
                        section.data().len()
                    )));
                }
                test_cases = Some(section.data().to_vec());
            }
            _ => {}
        }
    }
    if let Some(import) = imports.iter().find(|i| !ALLOWED_IMPORTS.iter().any(|a| i.starts_with(a))) {
        return Err(EngineError::ForbiddenImport {
            path: source.into(),
            import: import.clone(),
            allowed: ALLOWED_IMPORTS.iter().map(|a| format!("{a}*")).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(ComponentFacts { wit_version, imports, test_cases })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(compatible(prereg_core::WIT_VERSION));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.0.0"));
        assert!(!compatible("banana"));
        assert_eq!(supported_versions(), "0.1.x");
    }

    /// The built-in policy imports its own world (its types and host
    /// interface) and nothing else: it is
    /// built without WASI (`host/engine/build.rs`), whose imports every fresh
    /// instance would link.
    #[test]
    fn the_default_policy_imports_its_host_interface_only() {
        let facts = inspect(crate::builtin::DEFAULT_POLICY_COMPONENT, "built-in").unwrap();
        let version = prereg_core::WIT_VERSION;
        assert_eq!(facts.imports, [format!("prereg:policy/types@{version}"), format!("prereg:policy/host@{version}")]);
    }

    #[test]
    fn refusals() {
        let e = |bytes: &[u8]| inspect(bytes, "p.wasm").unwrap_err().to_string();
        assert!(e(b"").contains("empty"));
        assert!(e(b"hello world").contains("does not start with"));
        assert!(e(&[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]).contains("core WebAssembly module"));
        // A component header, then a section that runs past the end.
        assert!(e(&[0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0, 1, 0x7f]).contains("truncated or malformed"));
    }
}
