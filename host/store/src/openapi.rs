//! OpenAPI schemas of the closed sets the API sends and takes as strings
//! (a registration's state, a procedure's protocol, a reason code): each an
//! enum of its values, from the one list in `prereg-core`, so the document
//! cannot drift from the code.

use prereg_core::{Protocol, Reason, RegistrationState};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// A string schema whose values are `values`.
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, example: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.into_iter().map(str::to_owned)))
        .examples([example])
        .build()
}

/// `open`, `used`, `disabled`, `locked`.
pub fn registration_state() -> Object {
    string_enum(RegistrationState::ALL.iter().map(|s| s.as_str()), "open")
}

/// `scep`, `cmp`, `est`, `acme`, `other`.
pub fn protocol() -> Object {
    string_enum(Protocol::ALL.iter().map(|p| p.as_str()), "scep")
}

/// SPEC.md's reason codes (`matched`, `no-registration`, ...).
pub fn reason() -> Object {
    string_enum(Reason::ALL.iter().map(|r| r.code()), "matched")
}
