//! The CA that issues certificates for allowed enrollments, kept in the data
//! folder's `ca/` (keys mode 0600, never in the database):
//!
//! - `ca.crt`, `ca.key`: the issuing CA (EC P-256 from `prereg ca init`, or an
//!   imported EC P-256 or RSA CA);
//! - `ra.crt`, `ra.key`: an RSA certificate signed by the CA for SCEP, which
//!   needs RSA key transport (clients encrypt their requests to it) and signs
//!   SCEP responses;
//! - `ca.toml`: settings (`crl_url`, the URL every issued certificate names
//!   in its CRL Distribution Points; without it `prereg serve` names its own
//!   listen address; `est_procedure`, the token procedure EST serves
//!   without a label).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::errors::PkiError;
use super::keys::{PublicKey, SigningKey};
use super::x509::{self, Certificate, CertificateTemplate};
use super::{asn1, oid};
use crate::data_dir::{DataDir, write_new_file};

/// Validity of the CA certificate made by `ca init`: 10 years.
const CA_DAYS: u64 = 3650;
/// Validity of the RA certificate: 2 years.
const RA_DAYS: u64 = 730;
/// Issued certificates start this long before the decision (clock skew).
const BACKDATE_SECONDS: u64 = 300;

/// The CA's files.
#[derive(Debug, Clone)]
pub struct CaFiles {
    root: PathBuf,
}

impl CaFiles {
    /// The CA folder of a data folder.
    pub fn of(data: &DataDir) -> Self {
        CaFiles { root: data.root().join("ca") }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.crt")
    }
    /// The RA certificate (PEM).
    pub fn ra_cert(&self) -> PathBuf {
        self.path("ra.crt")
    }
    /// The settings (TOML).
    pub fn settings(&self) -> PathBuf {
        self.path("ca.toml")
    }
    /// The trust anchors of EST procedures for devices' manufacturer
    /// certificates (IDevID): `anchors/<procedure>.pem`.
    pub fn anchors(&self) -> PathBuf {
        self.path("anchors")
    }
    /// Every anchor file, for the TLS handshake's client roots.
    pub fn anchor_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.anchors())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            .collect();
        files.sort();
        files
    }
}

/// What `ca.toml` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSettings {
    /// The URL of the CRL, named in every issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    /// The token procedure EST serves without a label
    /// (`/.well-known/est/simpleenroll`), for clients that cannot name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub est_procedure: Option<String>,
    /// How each EST procedure's devices may authenticate a first enrollment
    /// (`basic`, `challenge`, `idevid`); a procedure not named takes all.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub est_auth: std::collections::BTreeMap<String, Vec<EstAuth>>,
    /// The EST procedures whose re-enrollment revokes the certificate it
    /// replaces (reason superseded); the others revoke nothing.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub est_reenroll_revokes: std::collections::BTreeSet<String>,
}

/// A way an EST device authenticates its first enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstAuth {
    /// HTTP Basic: the FQDN and the registration's password.
    Basic,
    /// The CSR's challengePassword: the registration's password.
    Challenge,
    /// The device's manufacturer certificate in the TLS handshake.
    Idevid,
}

impl EstAuth {
    /// Every way.
    pub const ALL: [EstAuth; 3] = [EstAuth::Basic, EstAuth::Challenge, EstAuth::Idevid];

    /// Its name in `ca.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EstAuth::Basic => "basic",
            EstAuth::Challenge => "challenge",
            EstAuth::Idevid => "idevid",
        }
    }

    /// The way named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        EstAuth::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl CaSettings {
    fn read(files: &CaFiles) -> Result<Self, PkiError> {
        let path = files.settings();
        let file_error = |message: String| PkiError::File { path: path.display().to_string(), message };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let settings: CaSettings = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
                if let Some(url) = &settings.crl_url {
                    check_crl_url(url).map_err(file_error)?;
                }
                Ok(settings)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CaSettings::default()),
            Err(e) => Err(file_error(e.to_string())),
        }
    }
}

/// A CRL URL must be plain HTTP (RFC 5280 §4.2.1.13: relying parties fetch
/// CRLs over HTTP; HTTPS would need a certificate checked against a CRL).
pub fn check_crl_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("the CRL URL {url:?} must start with http:// (RFC 5280 CRLs are fetched over HTTP)"))?;
    if rest.is_empty() || rest.starts_with('/') || url.len() > 1024 || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("the CRL URL {url:?} needs a host and no spaces (at most 1024 characters)"));
    }
    Ok(())
}

/// The anchors of `anchors/*.pem`, by procedure (the file's stem).
fn read_anchors(files: &CaFiles) -> Result<std::collections::BTreeMap<String, Vec<Certificate>>, PkiError> {
    let mut anchors = std::collections::BTreeMap::new();
    for path in files.anchor_files() {
        let Some(procedure) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let text = fs::read_to_string(&path)
            .map_err(|e| PkiError::File { path: path.display().to_string(), message: e.to_string() })?;
        let blocks = x509::pem_blocks(&text, "CERTIFICATE")
            .map_err(|message| PkiError::File { path: path.display().to_string(), message })?;
        let certificates = blocks.iter().map(|der| Certificate::from_der(der)).collect::<Result<Vec<_>, _>>()?;
        anchors.insert(procedure, certificates);
    }
    Ok(anchors)
}

/// A certificate request the CA has been told to issue.
#[derive(Debug, Clone)]
pub struct Issue<'a> {
    /// The device FQDN (CN and DNS SAN).
    pub fqdn: &'a str,
    /// Its IP address (IP SAN).
    pub ip: Option<IpAddr>,
    /// Its serial number (subject serialNumber).
    pub serial: Option<&'a str>,
    /// The requester's SubjectPublicKeyInfo (DER).
    pub spki: &'a [u8],
    /// Days of validity.
    pub days: u32,
    /// Now, Unix seconds.
    pub now: u64,
}

/// The CA.
#[derive(Debug)]
pub struct Ca {
    cert: Certificate,
    key: SigningKey,
    ra_cert: Certificate,
    ra_key: SigningKey,
    settings: CaSettings,
    /// EST procedures' manufacturer trust anchors, by procedure.
    anchors: std::collections::BTreeMap<String, Vec<Certificate>>,
}

impl Ca {
    /// Creates a new CA in the data folder: an EC P-256 CA named `name` and an
    /// RSA RA certificate. Refuses if the folder has a CA.
    pub fn init(data: &DataDir, name: &str, now: u64) -> Result<Ca, PkiError> {
        let key = SigningKey::generate_p256();
        let spki = key.spki_der()?;
        let subject = x509::write_name(&[(oid::CN, name)]);
        let ski = x509::key_identifier(&spki)?;
        let template = CertificateTemplate {
            subject: subject.clone(),
            spki: &spki,
            not_before: now.saturating_sub(BACKDATE_SECONDS),
            not_after: now + CA_DAYS * 86_400,
            extensions: vec![
                x509::extension(oid::BASIC_CONSTRAINTS, true, &asn1::seq(&[&[asn1::tag::BOOLEAN, 1, 0xff]])),
                // keyCertSign, cRLSign
                x509::extension(oid::KEY_USAGE, true, &[0x03, 0x02, 0x01, 0x06]),
                x509::extension(oid::SUBJECT_KEY_ID, false, &asn1::octet_string(&ski)),
            ],
        };
        let der = x509::sign_certificate(&template, &subject, &random_serial(), &key)?;
        let cert = Certificate::from_der(&der)?;
        Self::install(data, cert, key, now)
    }

    /// Uses an existing CA: its certificate and private key as PEM files.
    pub fn import(data: &DataDir, cert_path: &Path, key_path: &Path, now: u64) -> Result<Ca, PkiError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| PkiError::File { path: p.display().to_string(), message: e.to_string() })
        };
        let cert_text = read(cert_path)?;
        let blocks = x509::pem_blocks(&cert_text, "CERTIFICATE")
            .map_err(|message| PkiError::File { path: cert_path.display().to_string(), message })?;
        let Some(first) = blocks.first() else {
            return Err(PkiError::File {
                path: cert_path.display().to_string(),
                message: "no PEM CERTIFICATE block".into(),
            });
        };
        let cert = Certificate::from_der(first)?;
        let key = SigningKey::from_pem(&read(key_path)?, &key_path.display().to_string())?;
        if key.spki_der()? != cert.spki {
            return Err(PkiError::Invalid(format!(
                "{} is not the private key of the certificate in {}",
                key_path.display(),
                cert_path.display()
            )));
        }
        if !cert.is_ca()? {
            return Err(PkiError::Invalid(format!(
                "the certificate in {} is not a CA certificate (it needs basicConstraints CA:TRUE and keyCertSign)",
                cert_path.display()
            )));
        }
        if cert.not_after <= now {
            return Err(PkiError::Invalid(format!("the CA certificate in {} has expired", cert_path.display())));
        }
        Self::install(data, cert, key, now)
    }

    /// Makes the RA certificate and writes the four files (never over an existing CA).
    fn install(data: &DataDir, cert: Certificate, key: SigningKey, now: u64) -> Result<Ca, PkiError> {
        let files = CaFiles::of(data);
        if files.ca_cert().exists() {
            return Err(PkiError::Invalid(format!(
                "{} already has a CA; move the ca folder away to replace it",
                data.root().display()
            )));
        }
        let ra_key = SigningKey::generate_rsa();
        let ra_spki = ra_key.spki_der()?;
        let ra_subject = {
            let ca_name = cert.subject_info()?.common_name.unwrap_or_else(|| "prereg".into());
            x509::write_name(&[(oid::CN, &format!("{ca_name} SCEP RA"))])
        };
        let template = CertificateTemplate {
            subject: ra_subject,
            spki: &ra_spki,
            not_before: now.saturating_sub(BACKDATE_SECONDS),
            not_after: (now + RA_DAYS * 86_400).min(cert.not_after),
            extensions: vec![
                // digitalSignature, keyEncipherment: it signs responses and receives requests.
                x509::extension(oid::KEY_USAGE, true, &[0x03, 0x02, 0x05, 0xa0]),
                x509::extension(oid::SUBJECT_KEY_ID, false, &asn1::octet_string(&x509::key_identifier(&ra_spki)?)),
                authority_key_id(&cert)?,
            ],
        };
        let ra_der = x509::sign_certificate(&template, &cert.subject, &random_serial(), &key)?;
        let ra_cert = Certificate::from_der(&ra_der)?;

        let file_error =
            |p: &Path, e: std::io::Error| PkiError::File { path: p.display().to_string(), message: e.to_string() };
        data.ensure().map_err(|e| file_error(data.root(), e))?;
        fs::create_dir_all(&files.root).map_err(|e| file_error(&files.root, e))?;
        for (name, contents, private) in [
            ("ca.key", key.to_pem()?, true),
            ("ra.key", ra_key.to_pem()?, true),
            ("ra.crt", x509::pem("CERTIFICATE", &ra_cert.der), false),
            // Last: its presence means the CA is complete.
            ("ca.crt", x509::pem("CERTIFICATE", &cert.der), false),
        ] {
            let path = files.path(name);
            write_new_file(&path, contents.as_bytes(), private).map_err(|e| file_error(&path, e))?;
        }
        Ok(Ca { cert, key, ra_cert, ra_key, settings: CaSettings::default(), anchors: Default::default() })
    }

    /// Sets (or, with `None`, clears) the CRL URL in `ca.toml`.
    pub fn set_crl_url(data: &DataDir, url: Option<&str>) -> Result<(), PkiError> {
        if let Some(url) = url {
            check_crl_url(url).map_err(PkiError::Invalid)?;
        }
        Self::change_settings(data, |settings| settings.crl_url = url.map(str::to_owned))
    }

    /// Sets (or, with `None`, clears) the procedure EST serves without a
    /// label, in `ca.toml`.
    pub fn set_est_procedure(data: &DataDir, procedure: Option<&str>) -> Result<(), PkiError> {
        Self::change_settings(data, |settings| settings.est_procedure = procedure.map(str::to_owned))
    }

    fn change_settings(data: &DataDir, change: impl FnOnce(&mut CaSettings)) -> Result<(), PkiError> {
        let files = CaFiles::of(data);
        if !files.ca_cert().exists() {
            return Err(PkiError::Invalid(format!("{} has no CA", data.root().display())));
        }
        let path = files.settings();
        let file_error = |message: String| PkiError::File { path: path.display().to_string(), message };
        let mut settings = CaSettings::read(&files)?;
        change(&mut settings);
        let text = toml::to_string(&settings).map_err(|e| file_error(e.to_string()))?;
        let temporary = path.with_extension("toml.new");
        fs::write(&temporary, text).map_err(|e| file_error(e.to_string()))?;
        fs::rename(&temporary, &path).map_err(|e| file_error(e.to_string()))
    }

    /// The data folder's CA, if it has one.
    pub fn load(data: &DataDir) -> Result<Option<Ca>, PkiError> {
        let files = CaFiles::of(data);
        if !files.ca_cert().exists() {
            return Ok(None);
        }
        let read = |name: &str| {
            let path = files.path(name);
            fs::read_to_string(&path)
                .map_err(|e| PkiError::File { path: path.display().to_string(), message: e.to_string() })
        };
        let cert_of = |name: &str| -> Result<Certificate, PkiError> {
            let blocks = x509::pem_blocks(&read(name)?, "CERTIFICATE")
                .map_err(|message| PkiError::File { path: files.path(name).display().to_string(), message })?;
            let der = blocks.first().ok_or_else(|| PkiError::File {
                path: files.path(name).display().to_string(),
                message: "no CERTIFICATE block".into(),
            })?;
            Certificate::from_der(der)
        };
        let key_of = |name: &str| SigningKey::from_pem(&read(name)?, &files.path(name).display().to_string());
        let ca = Ca {
            cert: cert_of("ca.crt")?,
            key: key_of("ca.key")?,
            ra_cert: cert_of("ra.crt")?,
            ra_key: key_of("ra.key")?,
            settings: CaSettings::read(&files)?,
            anchors: read_anchors(&files)?,
        };
        if ca.ra_key.rsa().is_none() {
            return Err(PkiError::Invalid(format!("{}: the RA key must be RSA", files.path("ra.key").display())));
        }
        Ok(Some(ca))
    }

    /// This CA with `url` as its CRL URL unless `ca.toml` sets one
    /// (`prereg serve` passes its own address).
    pub fn with_default_crl_url(mut self, url: &str) -> Self {
        if self.settings.crl_url.is_none() {
            self.settings.crl_url = Some(url.to_owned());
        }
        self
    }

    /// The URL issued certificates name for the CRL, if there is one.
    pub fn crl_url(&self) -> Option<&str> {
        self.settings.crl_url.as_deref()
    }

    /// Adds the CA certificates of the PEM file `path` to the trust anchors
    /// of EST procedure `procedure`: a device presenting a certificate
    /// (IDevID) that chains to one may enroll without a password, its
    /// subject serialNumber standing for the registration's serial.
    pub fn add_est_anchor(data: &DataDir, procedure: &str, path: &Path) -> Result<usize, PkiError> {
        let files = CaFiles::of(data);
        if !files.ca_cert().exists() {
            return Err(PkiError::Invalid(format!("{} has no CA", data.root().display())));
        }
        let file_error = |p: &Path, message: String| PkiError::File { path: p.display().to_string(), message };
        let text = fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?;
        let blocks = x509::pem_blocks(&text, "CERTIFICATE").map_err(|m| file_error(path, m))?;
        if blocks.is_empty() {
            return Err(file_error(path, "no CERTIFICATE block".into()));
        }
        for der in &blocks {
            if !Certificate::from_der(der)?.is_ca()? {
                return Err(file_error(path, "holds a certificate that is not a CA certificate".into()));
            }
        }
        fs::create_dir_all(files.anchors()).map_err(|e| file_error(&files.anchors(), e.to_string()))?;
        let target = files.anchors().join(format!("{procedure}.pem"));
        let mut existing = fs::read_to_string(&target).unwrap_or_default();
        for der in &blocks {
            existing.push_str(&x509::pem("CERTIFICATE", der));
        }
        fs::write(&target, existing).map_err(|e| file_error(&target, e.to_string()))?;
        Ok(blocks.len())
    }

    /// Sets how EST procedure `procedure`'s devices may authenticate a first
    /// enrollment (`ways` empty: every way), in `ca.toml`.
    pub fn set_est_auth(data: &DataDir, procedure: &str, ways: &[EstAuth]) -> Result<(), PkiError> {
        Self::change_settings(data, |settings| {
            if ways.is_empty() || EstAuth::ALL.iter().all(|a| ways.contains(a)) {
                settings.est_auth.remove(procedure);
            } else {
                let mut ways = ways.to_vec();
                ways.sort();
                ways.dedup();
                settings.est_auth.insert(procedure.to_owned(), ways);
            }
        })
    }

    /// Sets whether EST procedure `procedure`'s re-enrollment revokes the
    /// certificate it replaces, in `ca.toml`.
    pub fn set_est_reenroll_revokes(data: &DataDir, procedure: &str, revokes: bool) -> Result<(), PkiError> {
        Self::change_settings(data, |settings| {
            if revokes {
                settings.est_reenroll_revokes.insert(procedure.to_owned());
            } else {
                settings.est_reenroll_revokes.remove(procedure);
            }
        })
    }

    /// Whether EST procedure `procedure`'s re-enrollment revokes the
    /// certificate it replaces.
    pub fn est_reenroll_revokes(&self, procedure: &str) -> bool {
        self.settings.est_reenroll_revokes.contains(procedure)
    }

    /// Whether EST procedure `procedure`'s devices may authenticate `way`.
    pub fn est_allows(&self, procedure: &str, way: EstAuth) -> bool {
        self.settings.est_auth.get(procedure).is_none_or(|ways| ways.contains(&way))
    }

    /// The ways EST procedure `procedure`'s devices may authenticate.
    pub fn est_ways(&self, procedure: &str) -> Vec<EstAuth> {
        EstAuth::ALL.into_iter().filter(|w| self.est_allows(procedure, *w)).collect()
    }

    /// The manufacturer trust anchors of EST procedure `procedure`.
    pub fn est_anchors(&self, procedure: &str) -> &[Certificate] {
        self.anchors.get(procedure).map_or(&[], Vec::as_slice)
    }

    /// The token procedure EST serves without a label, if one is set.
    pub fn est_procedure(&self) -> Option<&str> {
        self.settings.est_procedure.as_deref()
    }

    /// Signs a CRL listing `revoked`, with cRLNumber `number`.
    pub fn sign_crl(
        &self,
        revoked: &[crate::store::RevokedCertificate],
        number: u64,
        this_update: u64,
        next_update: u64,
    ) -> Result<Vec<u8>, PkiError> {
        let entries = revoked
            .iter()
            .map(|r| {
                Ok(x509::RevokedEntry {
                    serial: super::unhex(&r.serial)
                        .ok_or_else(|| PkiError::Invalid(format!("a stored serial is not hex: {:?}", r.serial)))?,
                    revoked_at: r.revoked_at,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        x509::sign_crl(
            &x509::CrlTemplate {
                issuer: &self.cert.subject,
                this_update,
                next_update,
                number,
                revoked: &entries,
                authority_key_id: Some(authority_key_id(&self.cert)?),
            },
            &self.key,
        )
    }

    /// Whether `crl` (DER) was issued by this CA: its issuer is this CA's
    /// subject and its signature verifies with this CA's key.
    pub fn signed_crl(&self, crl: &[u8]) -> bool {
        let check = || -> Option<bool> {
            let value = asn1::parse(crl).ok()?;
            let mut parts = value.children().ok()?;
            let tbs = parts.required("tbsCertList").ok()?;
            let alg = parts.required("signatureAlgorithm").ok()?;
            let alg = alg.children().ok()?.required("algorithm").ok()?.oid().ok()?;
            let signature = parts.required("signature").ok()?.bit_string_bytes().ok()?;
            let mut fields = tbs.children().ok()?;
            fields.optional(asn1::tag::INTEGER).ok()?;
            fields.required("signature").ok()?;
            let issuer = fields.required("issuer").ok()?;
            let key = self.cert.public_key().ok()?;
            Some(issuer.raw == self.cert.subject.as_slice() && key.verify(&alg, tbs.raw, &signature, "CRL").is_ok())
        };
        check().unwrap_or(false)
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The SCEP RA certificate.
    pub fn ra_certificate(&self) -> &Certificate {
        &self.ra_cert
    }

    /// The SCEP RA key (RSA).
    pub fn ra_key(&self) -> &SigningKey {
        &self.ra_key
    }

    /// Issues a certificate: CN = the FQDN, a DNS SAN with the FQDN, an IP SAN
    /// when there is an address, the serialNumber when there is one, valid for
    /// `days` (never past the CA's own end), naming the CRL when the CA has a
    /// CRL URL, signed by the CA. The enrollment front passes the canonical
    /// name the decision matched and only what the registration pins.
    pub fn issue(&self, request: &Issue<'_>) -> Result<Certificate, PkiError> {
        PublicKey::from_spki(request.spki)?;
        let mut attributes = vec![(oid::CN, request.fqdn)];
        if let Some(serial) = request.serial {
            attributes.push((oid::SERIAL_NUMBER, serial));
        }
        let ips: Vec<IpAddr> = request.ip.into_iter().collect();
        let not_after = (request.now + u64::from(request.days) * 86_400).min(self.cert.not_after);
        let mut template = CertificateTemplate {
            subject: x509::write_name(&attributes),
            spki: request.spki,
            not_before: request.now.saturating_sub(BACKDATE_SECONDS),
            not_after,
            extensions: vec![
                x509::extension(oid::BASIC_CONSTRAINTS, true, &asn1::seq(&[])),
                // digitalSignature, keyEncipherment
                x509::extension(oid::KEY_USAGE, true, &[0x03, 0x02, 0x05, 0xa0]),
                x509::extension(
                    oid::EXT_KEY_USAGE,
                    false,
                    &asn1::seq(&[&asn1::oid(oid::KP_CLIENT_AUTH), &asn1::oid(oid::KP_SERVER_AUTH)]),
                ),
                x509::extension(oid::SUBJECT_ALT_NAME, false, &x509::alt_names_value(&[request.fqdn], &ips)),
                x509::extension(oid::SUBJECT_KEY_ID, false, &asn1::octet_string(&x509::key_identifier(request.spki)?)),
                authority_key_id(&self.cert)?,
            ],
        };
        if let Some(url) = &self.settings.crl_url {
            template.extensions.push(x509::extension(
                oid::CRL_DISTRIBUTION_POINTS,
                false,
                &x509::crl_distribution_points_value(url),
            ));
        }
        let der = x509::sign_certificate(&template, &self.cert.subject, &random_serial(), &self.key)?;
        Certificate::from_der(&der)
    }
}

impl Ca {
    /// Issues a TLS server certificate (serverAuth only) for `dns` names and
    /// `ips`: the service's own (`prereg serve --tls-self`). CN = the first
    /// name; valid for `days` (never past the CA's own end).
    pub fn issue_server(
        &self,
        dns: &[&str],
        ips: &[IpAddr],
        spki: &[u8],
        days: u32,
        now: u64,
    ) -> Result<Certificate, PkiError> {
        let first_ip = ips.first().map(ToString::to_string);
        let cn = dns.first().copied().or(first_ip.as_deref()).unwrap_or("prereg");
        let san = x509::extension(oid::SUBJECT_ALT_NAME, false, &x509::alt_names_value(dns, ips));
        self.issue_tls(cn, oid::KP_SERVER_AUTH, Some(san), spki, days, now)
    }

    /// Issues a TLS client certificate (clientAuth only) named `name`: a CA
    /// caller's, for mutual TLS (`prereg ca issue-client`).
    pub fn issue_client(&self, name: &str, spki: &[u8], days: u32, now: u64) -> Result<Certificate, PkiError> {
        self.issue_tls(name, oid::KP_CLIENT_AUTH, None, spki, days, now)
    }

    fn issue_tls(
        &self,
        cn: &str,
        purpose: &str,
        san: Option<Vec<u8>>,
        spki: &[u8],
        days: u32,
        now: u64,
    ) -> Result<Certificate, PkiError> {
        PublicKey::from_spki(spki)?;
        let not_after = (now + u64::from(days) * 86_400).min(self.cert.not_after);
        let mut extensions = vec![
            x509::extension(oid::BASIC_CONSTRAINTS, true, &asn1::seq(&[])),
            // digitalSignature, keyEncipherment
            x509::extension(oid::KEY_USAGE, true, &[0x03, 0x02, 0x05, 0xa0]),
            x509::extension(oid::EXT_KEY_USAGE, false, &asn1::seq(&[&asn1::oid(purpose)])),
            x509::extension(oid::SUBJECT_KEY_ID, false, &asn1::octet_string(&x509::key_identifier(spki)?)),
            authority_key_id(&self.cert)?,
        ];
        extensions.extend(san);
        let template = CertificateTemplate {
            subject: x509::write_name(&[(oid::CN, cn)]),
            spki,
            not_before: now.saturating_sub(BACKDATE_SECONDS),
            not_after,
            extensions,
        };
        let der = x509::sign_certificate(&template, &self.cert.subject, &random_serial(), &self.key)?;
        Certificate::from_der(&der)
    }
}

fn authority_key_id(issuer: &Certificate) -> Result<Vec<u8>, PkiError> {
    let id = x509::key_identifier(&issuer.spki)?;
    Ok(x509::extension(oid::AUTHORITY_KEY_ID, false, &asn1::seq(&[&asn1::tlv(0x80, &id)])))
}

/// A random positive 127-bit serial number (RFC 5280: at most 20 octets; CA/B: 64 bits of entropy).
fn random_serial() -> Vec<u8> {
    use rand_core::RngCore;
    let mut serial = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_issue_load_and_refuse_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        let now = 1_790_000_000;
        let ca = Ca::init(&data, "Test CA", now).unwrap();
        let ca_key = ca.certificate().public_key().unwrap();
        ca.certificate().verify_signed_by(&ca_key).unwrap();
        ca.ra_certificate().verify_signed_by(&ca_key).unwrap();

        let device = SigningKey::generate_p256();
        let spki = device.spki_der().unwrap();
        let cert = ca
            .issue(&Issue {
                fqdn: "router5.dept.example.com",
                ip: Some("10.1.2.3".parse().unwrap()),
                serial: Some("FTX1"),
                spki: &spki,
                days: 30,
                now,
            })
            .unwrap();
        cert.verify_signed_by(&ca_key).unwrap();
        assert!(ca.certificate().is_ca().unwrap());
        assert!(!cert.is_ca().unwrap());
        assert!(!ca.ra_certificate().is_ca().unwrap());
        let info = cert.subject_info().unwrap();
        assert_eq!(info.common_name.as_deref(), Some("router5.dept.example.com"));
        assert_eq!(info.serial_number.as_deref(), Some("FTX1"));
        assert_eq!(cert.not_after, now + 30 * 86_400);
        assert_eq!(cert.spki, spki);

        let loaded = Ca::load(&data).unwrap().unwrap();
        assert_eq!(loaded.certificate().der, ca.certificate().der);
        assert_eq!(cert.extension(oid::CRL_DISTRIBUTION_POINTS).unwrap(), None, "no CRL URL, no CDP");

        // A CRL URL: refused unless plain HTTP; named by every certificate.
        assert!(Ca::set_crl_url(&data, Some("https://ca.example.com/crl")).is_err());
        assert!(Ca::set_crl_url(&data, Some("http:///crl")).is_err());
        Ca::set_crl_url(&data, Some("http://ca.example.com/ca/crl")).unwrap();
        let loaded = Ca::load(&data).unwrap().unwrap().with_default_crl_url("http://127.0.0.1:1/ca/crl");
        assert_eq!(loaded.crl_url(), Some("http://ca.example.com/ca/crl"));
        let issued =
            loaded.issue(&Issue { fqdn: "a.example.com", ip: None, serial: None, spki: &spki, days: 1, now }).unwrap();
        let cdp = issued.extension(oid::CRL_DISTRIBUTION_POINTS).unwrap().unwrap();
        assert_eq!(x509::read_crl_distribution_points(&cdp).unwrap(), vec!["http://ca.example.com/ca/crl"]);

        // A CRL of this CA is recognised; one of another CA is not.
        let revoked =
            [crate::store::RevokedCertificate { serial: issued.serial_hex(), revoked_at: now, reason: Some(1) }];
        let crl = loaded.sign_crl(&revoked, 1, now, now + 86_400).unwrap();
        assert!(loaded.signed_crl(&crl));
        let other = tempfile::tempdir().unwrap();
        let other = Ca::init(&DataDir::new(other.path().join("d")), "Other", now).unwrap();
        assert!(!other.signed_crl(&crl));
        assert!(!loaded.signed_crl(&crl[..crl.len() - 1]));
        assert!(Ca::init(&data, "Again", now).unwrap_err().to_string().contains("already has a CA"));
    }
}
