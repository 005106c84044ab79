//! The CA that issues certificates for allowed enrollments, kept in the data
//! folder's `ca/` (keys mode 0600, never in the database):
//!
//! - `ca.crt`, `ca.key`: the issuing CA (EC P-256 from `prereg ca init`, or an
//!   imported EC P-256 or RSA CA);
//! - `ra.crt`, `ra.key`: an RSA certificate signed by the CA for SCEP, which
//!   needs RSA key transport (clients encrypt their requests to it) and signs
//!   SCEP responses.

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
        Ok(Ca { cert, key, ra_cert, ra_key })
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
        };
        if ca.ra_key.rsa().is_none() {
            return Err(PkiError::Invalid(format!("{}: the RA key must be RSA", files.path("ra.key").display())));
        }
        Ok(Some(ca))
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
    /// `days` (never past the CA's own end), signed by the CA.
    pub fn issue(&self, request: &Issue<'_>) -> Result<Certificate, PkiError> {
        PublicKey::from_spki(request.spki)?;
        let mut attributes = vec![(oid::CN, request.fqdn)];
        if let Some(serial) = request.serial {
            attributes.push((oid::SERIAL_NUMBER, serial));
        }
        let ips: Vec<IpAddr> = request.ip.into_iter().collect();
        let not_after = (request.now + u64::from(request.days) * 86_400).min(self.cert.not_after);
        let template = CertificateTemplate {
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
        assert!(Ca::init(&data, "Again", now).unwrap_err().to_string().contains("already has a CA"));
    }
}
