//! Issue 19: the CMP server against RFC 4210 / RFC 9483 (Lightweight CMP
//! Profile), driven by messages built here with the pki crate's client code
//! (`prereg::enroll::cmp::client`) and a header written field by field, so
//! that every fault a conformance suite sends can be sent: nonces and
//! transactions, where errors go and which failInfo they carry, the MAC
//! checked before the body, messageTime, generalInfo, certConf, PBMAC1
//! iteration counts and the PBES2 alias. Each answer is read back: its
//! body, failInfo bits, protection and the nonces it echoes.

use std::path::{Path, PathBuf};

use prereg::enroll::cmp::NOT_AUTHENTICATED;
use prereg::enroll::cmp::client::{self, Confirmation, Template};
use prereg::enroll::cmp::message::{self, FailInfo, body_tag};
use prereg::enroll::cmp::protection::MacAlgorithm;
use prereg::pki::keys::{DigestAlg, SigningKey};
use prereg::pki::{asn1, oid, x509};

use crate::cmp::openssl;
use crate::common::{Server, audit_records, audited_enrollments, run_local};

const SECRET: &str = "s3cret-enough";

/// A data folder with a CA, a CMP procedure, a registration with a
/// password (many enrollments) and one without.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_local(&dir, &["init"]);
    run_local(&dir, &["ca", "init", "--name", "Test CA"]);
    run_local(&dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "cmp"]);
    std::fs::write(dir.join("pw"), SECRET).unwrap();
    let args = ["register", "--procedure", "routers", "--fqdn", "*.dept.example.com", "--password-file", "pw"];
    run_local(&dir, &[&args[..], &["--max-enrollments", "1000"]].concat());
    run_local(&dir, &["register", "--procedure", "routers", "--fqdn", "nopw.example.com"]);
    (tmp, dir)
}

/// `prereg serve` with failure limits that a conformance run does not reach.
fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "10000"];
    args.extend_from_slice(extra);
    Server::start_with(dir, "server.log", &args)
}

/// A request's header, field by field; `None` leaves a field out.
#[derive(Clone)]
struct Head {
    pvno: u64,
    time: Option<Vec<u8>>,
    alg: Option<Vec<u8>>,
    kid: Option<Vec<u8>>,
    tid: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    recip: Option<Vec<u8>>,
    general_info: Vec<Vec<u8>>,
}

impl Head {
    fn new(fqdn: &str, alg: &MacAlgorithm) -> Self {
        Head {
            pvno: 2,
            time: Some(asn1::generalized_time(prereg::registry::unix_now())),
            alg: Some(alg.encode()),
            kid: Some(fqdn.as_bytes().to_vec()),
            tid: Some(message::fresh_nonce()),
            nonce: Some(message::fresh_nonce()),
            recip: None,
            general_info: Vec::new(),
        }
    }

    fn implicit(mut self) -> Self {
        self.general_info.push(asn1::seq(&[&asn1::oid(message::IMPLICIT_CONFIRM), &asn1::null()]));
        self
    }

    fn encode(&self) -> Vec<u8> {
        let explicit = |n: u8, inner: &[u8]| asn1::constructed(asn1::tag::explicit(n), &[inner]);
        let name = message::directory_name(&x509::write_name(&[(oid::CN, "device")]));
        let mut parts = vec![asn1::small(self.pvno), name, message::directory_name(&x509::write_name(&[]))];
        if let Some(time) = &self.time {
            parts.push(explicit(0, time));
        }
        if let Some(alg) = &self.alg {
            parts.push(explicit(1, alg));
        }
        if let Some(kid) = &self.kid {
            parts.push(explicit(2, &asn1::octet_string(kid)));
        }
        if let Some(tid) = &self.tid {
            parts.push(explicit(4, &asn1::octet_string(tid)));
        }
        if let Some(nonce) = &self.nonce {
            parts.push(explicit(5, &asn1::octet_string(nonce)));
        }
        if let Some(recip) = &self.recip {
            parts.push(explicit(6, &asn1::octet_string(recip)));
        }
        if !self.general_info.is_empty() {
            let refs: Vec<&[u8]> = self.general_info.iter().map(Vec::as_slice).collect();
            parts.push(explicit(8, &asn1::seq(&refs)));
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        asn1::seq(&refs)
    }

    /// The whole message, MAC-protected with `alg` under `secret`.
    fn message(&self, body: &[u8], alg: &MacAlgorithm, secret: &str) -> Vec<u8> {
        let mac = |part: &[u8]| alg.mac(secret.as_bytes(), part);
        message::encode(&self.encode(), body, Some(&mac))
    }
}

/// An `ir` for `fqdn` with the key `key`.
fn ir_body(fqdn: &str, key: &SigningKey) -> Vec<u8> {
    let template = Template { id: 0, common_name: Some(fqdn), serial_number: None, dns: &[], ips: &[] };
    client::cert_requests_body(body_tag::IR, &[client::cert_req_msg(&template, key).unwrap()])
}

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    /// The body's tag.
    pub body: u8,
    /// The PKIStatus of an error or of the first CertResponse (0 for other bodies).
    pub status: u64,
    /// Its statusString.
    pub text: Option<String>,
    /// Its failInfo bits.
    pub fail_bits: Vec<u8>,
    /// The certificate issued, if any.
    pub cert: Option<Vec<u8>>,
    read: message::Request,
    raw: Vec<u8>,
}

impl Answer {
    fn fail(&self) -> Option<u8> {
        self.fail_bits.first().copied()
    }

    /// Whether the answer is protected with a MAC under `secret` that verifies.
    fn protected_by(&self, secret: &str) -> bool {
        let (Some(alg), Some(mac)) = (&self.read.protection_alg, &self.read.protection) else { return false };
        let alg = MacAlgorithm::read(&asn1::parse(alg).unwrap(), 10_000_000).unwrap();
        alg.verify(secret.as_bytes(), &self.read.protected_part, mac)
    }
}

fn post(server: &Server, der: &[u8]) -> Answer {
    let url = format!("{}/.well-known/cmp/p/routers", server.url.trim_end_matches('/'));
    let mut response = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .content_type("application/pkixcmp")
        .send(der)
        .unwrap();
    let bytes = response.body_mut().read_to_vec().unwrap();
    read_answer(&bytes)
}

/// Reads a PKIMessage the server sent.
pub fn read_answer(der: &[u8]) -> Answer {
    let read = message::read(der).unwrap();
    let whole = asn1::parse(der).unwrap();
    let mut parts = whole.children().unwrap();
    parts.required("header").unwrap();
    let body = parts.required("body").unwrap();
    let content = body.children().unwrap().required("content").unwrap();
    let (status_info, cert) = match body.tag {
        body_tag::ERROR => (content.children().unwrap().required("status").unwrap(), None),
        body_tag::IP | body_tag::CP | body_tag::KUP => {
            let mut rep = content.children().unwrap();
            let mut responses = rep.required("response").unwrap();
            if responses.tag == 0xa1 {
                responses = rep.required("response").unwrap();
            }
            let first = responses.children().unwrap().required("CertResponse").unwrap();
            let mut r = first.children().unwrap();
            r.required("certReqId").unwrap();
            let status = r.required("status").unwrap();
            let cert = r.next_value().unwrap().map(|pair| {
                let inner = pair.children().unwrap().required("certOrEncCert").unwrap();
                inner.children().unwrap().required("certificate").unwrap().raw.to_vec()
            });
            (status, cert)
        }
        other => {
            return Answer {
                body: other,
                status: 0,
                text: None,
                fail_bits: Vec::new(),
                cert: None,
                read,
                raw: der.to_vec(),
            };
        }
    };
    let mut s = status_info.children().unwrap();
    let status = s.required("status").unwrap().small_uint().unwrap();
    let mut text = None;
    let mut fail_bits = Vec::new();
    while let Some(part) = s.next_value().unwrap() {
        if part.tag == asn1::tag::SEQUENCE {
            text = Some(part.children().unwrap().required("s").unwrap().text().unwrap());
        } else if part.tag == asn1::tag::BIT_STRING {
            // A named-bit BIT STRING: its first octet counts the unused bits.
            let bits = &part.content[1..];
            for (i, byte) in bits.iter().enumerate() {
                for b in 0..8 {
                    if byte & (0x80 >> b) != 0 {
                        fail_bits.push(u8::try_from(i * 8 + b).unwrap());
                    }
                }
            }
        }
    }
    Answer { body: body.tag, status, text, fail_bits, cert, read, raw: der.to_vec() }
}

/// Every answer echoes the request's transactionID and senderNonce (as its
/// recipNonce) and carries a fresh 128-bit senderNonce.
fn assert_echoes(answer: &Answer, head: &Head) {
    if head.tid.as_ref().is_some_and(|t| t.len() == 16) {
        assert_eq!(answer.read.transaction_id, head.tid, "transactionID echoed");
    }
    if head.nonce.as_ref().is_some_and(|n| n.len() >= 16) {
        assert_eq!(answer.read.recip_nonce, head.nonce, "recipNonce is the request's senderNonce");
    }
    let nonce = answer.read.sender_nonce.as_ref().expect("a senderNonce");
    assert_eq!(nonce.len(), 16);
    assert_ne!(Some(nonce), head.nonce.as_ref());
}

fn pbm() -> MacAlgorithm {
    MacAlgorithm::pbm_sha256(1000)
}

/// RFC 9483 §3.5: header faults get an unprotected `error` with the
/// failInfo that names them, before any decision (nothing is audited).
#[test]
fn header_faults_get_an_error_with_the_right_fail_info_and_decide_nothing() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let key = SigningKey::generate_p256();
    let fqdn = "a.dept.example.com";
    let alg = pbm();
    let body = ir_body(fqdn, &key);
    let base = Head::new(fqdn, &alg);
    let now = prereg::registry::unix_now();
    let with = |change: &dyn Fn(&mut Head)| {
        let mut head = base.clone();
        head.tid = Some(message::fresh_nonce());
        head.nonce = Some(message::fresh_nonce());
        change(&mut head);
        head
    };
    let algorithm = |dotted: &str| Some(asn1::algorithm(dotted));
    // PBM with SHA3-256 as its one-way function.
    let pbm_sha3 = asn1::seq(&[
        &asn1::oid("1.2.840.113533.7.66.13"),
        &asn1::seq(&[
            &asn1::octet_string(&[1; 16]),
            &asn1::algorithm("2.16.840.1.101.3.4.2.8"),
            &asn1::small(1000),
            &asn1::algorithm(oid::HMAC_SHA256),
        ]),
    ]);
    let cases: Vec<(&str, Head, FailInfo)> = vec![
        ("pvno 1", with(&|h| h.pvno = 1), FailInfo::UnsupportedVersion),
        ("pvno 4", with(&|h| h.pvno = 4), FailInfo::UnsupportedVersion),
        ("no transactionID", with(&|h| h.tid = None), FailInfo::BadDataFormat),
        ("an 8-byte transactionID", with(&|h| h.tid = Some(vec![1; 8])), FailInfo::BadDataFormat),
        ("a 1 KiB transactionID", with(&|h| h.tid = Some(vec![1; 1024])), FailInfo::BadDataFormat),
        ("no senderNonce", with(&|h| h.nonce = None), FailInfo::BadSenderNonce),
        ("an 8-byte senderNonce", with(&|h| h.nonce = Some(vec![2; 8])), FailInfo::BadSenderNonce),
        ("a recipNonce in an ir", with(&|h| h.recip = Some(vec![3; 16])), FailInfo::BadRecipientNonce),
        ("a messageTime an hour late", with(&|h| h.time = Some(asn1::generalized_time(now - 3600))), FailInfo::BadTime),
        (
            "an implicitConfirm that is not NULL",
            with(&|h| h.general_info = vec![asn1::seq(&[&asn1::oid(message::IMPLICIT_CONFIRM), &asn1::small(1)])]),
            FailInfo::BadDataFormat,
        ),
        (
            "a confirmWaitTime that is a UTCTime",
            with(&|h| {
                h.general_info = vec![asn1::seq(&[&asn1::oid(message::CONFIRM_WAIT_TIME), &asn1::x509_time(now)])]
            }),
            FailInfo::BadDataFormat,
        ),
        ("HMAC-SHA256 alone", with(&|h| h.alg = algorithm(oid::HMAC_SHA256)), FailInfo::BadAlg),
        ("KMAC128", with(&|h| h.alg = algorithm("2.16.840.1.101.3.4.2.19")), FailInfo::BadAlg),
        ("AES-GMAC", with(&|h| h.alg = algorithm("2.16.840.1.101.3.4.1.9")), FailInfo::BadAlg),
        ("PBM over SHA3-256", with(&|h| h.alg = Some(pbm_sha3.clone())), FailInfo::BadAlg),
        ("ECDSA with SHA-384", with(&|h| h.alg = algorithm("1.2.840.10045.4.3.3")), FailInfo::BadAlg),
        // A signature where a MAC keyed by the registration's password belongs.
        ("an ir signed with ECDSA", with(&|h| h.alg = algorithm(oid::ECDSA_SHA256)), FailInfo::WrongIntegrity),
        ("no protectionAlg", with(&|h| h.alg = None), FailInfo::BadMessageCheck),
        ("no senderKID", with(&|h| h.kid = None), FailInfo::BadMessageCheck),
    ];
    for (what, head, fail) in &cases {
        let answer = post(&server, &head.message(&body, &alg, SECRET));
        assert_eq!(answer.body, body_tag::ERROR, "{what}: {answer:?}");
        assert_eq!((answer.status, answer.fail()), (2, Some(*fail as u8)), "{what}: {:?}", answer.text);
        assert_eq!(answer.fail_bits.len(), 1, "{what}");
        assert!(answer.read.protection.is_none(), "{what}: unauthenticated, so unprotected");
        assert_echoes(&answer, head);
    }
    // A message that is not CMP at all.
    let answer = post(&server, b"\x30\x03\x02\x01\x02");
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadDataFormat as u8)));
    assert!(audited_enrollments(&dir).is_empty(), "no header fault reaches a decision");

    // The window is the operator's: 0 does not check messageTime.
    assert!(server.stop().success());
    let server = serve(&dir, &["--cmp-time-window-seconds", "0"]);
    let head = with(&|h| h.time = Some(asn1::generalized_time(now - 400 * 86_400)));
    let answer = post(&server, &head.message(&body, &alg, SECRET).clone());
    assert_eq!((answer.body, answer.status), (body_tag::IP, 0), "{:?}", answer.text);
}

/// RFC 9483 §3.6.4: a message whose MAC does not verify gets an `error`
/// (badMessageCheck), not an `ip`; so does a senderKID that names no
/// registration that can enroll, with the same words, so that the answer
/// does not tell whether a name is registered. The audit log tells the
/// operator which it was.
#[test]
fn a_mac_that_does_not_verify_and_an_unknown_reference_get_the_same_error() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let key = SigningKey::generate_p256();
    let alg = pbm();
    let wrong = Head::new("a.dept.example.com", &alg);
    let wrong_answer = post(&server, &wrong.message(&ir_body("a.dept.example.com", &key), &alg, "guessed"));
    let unknown = Head::new("nobody.example.org", &alg);
    let unknown_answer = post(&server, &unknown.message(&ir_body("nobody.example.org", &key), &alg, SECRET));
    // The registration without a password cannot key a MAC.
    let nopw = Head::new("nopw.example.com", &alg);
    let nopw_answer = post(&server, &nopw.message(&ir_body("nopw.example.com", &key), &alg, SECRET));
    for (answer, head) in [(&wrong_answer, &wrong), (&unknown_answer, &unknown), (&nopw_answer, &nopw)] {
        assert_eq!(answer.body, body_tag::ERROR);
        assert_eq!(answer.fail(), Some(FailInfo::BadMessageCheck as u8));
        assert_eq!(answer.text.as_deref(), Some(NOT_AUTHENTICATED));
        assert!(answer.read.protection.is_none());
        assert_echoes(answer, head);
    }
    let decisions: Vec<(String, String)> =
        audited_enrollments(&dir).iter().map(|e| (e.outcome.clone(), e.reason.clone())).collect();
    let expected = [("denied", "bad-password"), ("denied", "no-registration"), ("refused", "password-required")];
    assert_eq!(decisions, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
}

/// Once the MAC verifies, every answer is protected, and what is wrong with
/// the request's content is a rejection in the `ip`/`cp` with its failInfo,
/// audited as a refusal: a bad proof of possession, a bad PKCS#10
/// signature, a key not supported, a key too small, two requests, a
/// certReqId other than 0, a PKCS#10 version other than 0.
#[test]
fn content_faults_are_rejected_in_a_protected_answer_with_their_fail_info() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let alg = pbm();
    let fqdn = "c.dept.example.com";
    let key = SigningKey::generate_p256();
    let template = Template { id: 0, common_name: Some(fqdn), serial_number: None, dns: &[], ips: &[] };

    // Signed by another key than the template's.
    let cert_request = client::cert_request(&template, &key.spki_der().unwrap());
    let other = SigningKey::generate_p256();
    let popo = asn1::constructed(
        0xa1,
        &[&other.signature_algorithm(), &asn1::bit_string(&other.sign(&cert_request).unwrap())],
    );
    let bad_pop = client::cert_requests_body(body_tag::IR, &[asn1::seq(&[&cert_request, &popo])]);
    // No proof of possession at all.
    let no_pop = client::cert_requests_body(body_tag::CR, &[asn1::seq(&[&cert_request])]);
    // Keys openssl makes: P-384 (not supported) and RSA-1024 (too small).
    let spki_of = |args: &[&str]| -> Vec<u8> {
        let made = openssl(&dir, args);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let out = openssl(&dir, &["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
        assert!(out.status.success());
        out.stdout
    };
    let p384 = spki_of(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "k.pem"]);
    let rsa1024 = spki_of(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "k.pem"]);
    let with_spki = |spki: &[u8]| {
        let request = client::cert_request(&template, spki);
        let popo = asn1::constructed(0xa1, &[&key.signature_algorithm(), &asn1::bit_string(&[0; 64])]);
        client::cert_requests_body(body_tag::IR, &[asn1::seq(&[&request, &popo])])
    };
    let good = client::cert_req_msg(&template, &key).unwrap();
    let two = client::cert_requests_body(body_tag::IR, &[good.clone(), good.clone()]);
    let id_one = client::cert_requests_body(
        body_tag::IR,
        &[client::cert_req_msg(&Template { id: 1, ..template.clone() }, &key).unwrap()],
    );
    // A p10cr whose signature does not verify, and one of version 1.
    let csr = csr_der(&dir, fqdn);
    let mut broken = csr.clone();
    let last = broken.len() - 1;
    broken[last] ^= 0x01;
    let v1 = {
        let value = asn1::parse(&csr).unwrap();
        let mut parts = value.children().unwrap();
        let info = parts.required("info").unwrap();
        let rest: Vec<Vec<u8>> = parts.remaining().unwrap().iter().map(|v| v.raw.to_vec()).collect();
        let mut fields: Vec<Vec<u8>> =
            info.children().unwrap().remaining().unwrap().iter().map(|v| v.raw.to_vec()).collect();
        fields[0] = asn1::small(1);
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let info = asn1::seq(&refs);
        asn1::seq(&[&info, &rest[0], &rest[1]])
    };
    // A template naming another device than the senderKID.
    let elsewhere = ir_body("d.dept.example.com", &key);

    let cases: Vec<(&str, Vec<u8>, u8, FailInfo)> = vec![
        ("a POP by another key", bad_pop, body_tag::IP, FailInfo::BadPop),
        ("no POP", no_pop, body_tag::CP, FailInfo::BadPop),
        ("a P-384 key", with_spki(&p384), body_tag::IP, FailInfo::BadAlg),
        ("an RSA-1024 key", with_spki(&rsa1024), body_tag::IP, FailInfo::BadCertTemplate),
        ("two requests", two, body_tag::IP, FailInfo::BadRequest),
        ("certReqId 1", id_one, body_tag::IP, FailInfo::BadRequest),
        ("a bad PKCS#10 signature", client::p10cr_body(&broken), body_tag::CP, FailInfo::BadPop),
        ("PKCS#10 version 1", client::p10cr_body(&v1), body_tag::CP, FailInfo::BadDataFormat),
        ("another device", elsewhere, body_tag::IP, FailInfo::BadCertTemplate),
    ];
    for (what, body, answer_tag, fail) in &cases {
        let head = Head::new(fqdn, &alg);
        let answer = post(&server, &head.message(body, &alg, SECRET));
        assert_eq!(answer.body, *answer_tag, "{what}: {answer:?}");
        assert_eq!((answer.status, answer.fail()), (2, Some(*fail as u8)), "{what}: {:?}", answer.text);
        assert!(answer.cert.is_none());
        assert!(answer.protected_by(SECRET), "{what}: authenticated, so protected");
        assert_echoes(&answer, &head);
    }
    let audited = audited_enrollments(&dir);
    assert_eq!(audited.len(), cases.len());
    assert!(audited.iter().all(|e| e.outcome == "refused"), "{audited:?}");
    let details: Vec<String> = audit_records(&dir)
        .iter()
        .filter(|r| r["action"] == "enroll")
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(details[0].contains("badPOP"), "{details:?}");
    assert!(details[3].contains("badCertTemplate") && details[3].contains("1024"), "{details:?}");
    // Nothing was counted: the registration enrolls now.
    let head = Head::new(fqdn, &alg).implicit();
    let answer = post(&server, &head.message(&ir_body(fqdn, &key), &alg, SECRET));
    assert_eq!((answer.body, answer.status), (body_tag::IP, 0), "{:?}", answer.text);
    assert!(answer.read.implicit_confirm);
}

fn csr_der(dir: &Path, fqdn: &str) -> Vec<u8> {
    let subject = format!("/CN={fqdn}");
    let args = ["req", "-new", "-key", "csr.key", "-subj", &subject, "-outform", "DER"];
    let key = openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "csr.key"]);
    assert!(key.status.success());
    let out = openssl(dir, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// RFC 4210 §5.1.1: a transactionID that started a transaction cannot start
/// another (transactionIdInUse, protected once authenticated); the same
/// message resent is answered with the transaction's certificate.
#[test]
fn a_transaction_id_in_use_is_refused() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let alg = pbm();
    let fqdn = "t.dept.example.com";
    let key = SigningKey::generate_p256();
    // Refused for its content: the transactionID is used all the same.
    let first = Head::new(fqdn, &alg);
    let refused = post(&server, &first.message(&client::cert_requests_body(body_tag::IR, &[]), &alg, SECRET));
    assert_eq!((refused.body, refused.fail()), (body_tag::IP, Some(FailInfo::BadDataFormat as u8)));
    let mut again = Head::new(fqdn, &alg);
    again.tid = first.tid.clone();
    let answer = post(&server, &again.message(&ir_body(fqdn, &key), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::TransactionIdInUse as u8)));
    assert!(answer.protected_by(SECRET));
    assert_echoes(&answer, &again);

    // Issued; the same message resent gets the same certificate; a new
    // request (another senderNonce) in that transaction is refused.
    let issued_head = Head::new(fqdn, &alg).implicit();
    let request = issued_head.message(&ir_body(fqdn, &key), &alg, SECRET);
    let issued = post(&server, &request);
    assert_eq!(issued.status, 0, "{:?}", issued.text);
    let resent = post(&server, &request);
    assert_eq!(resent.cert, issued.cert);
    let mut other = Head::new(fqdn, &alg).implicit();
    other.tid = issued_head.tid.clone();
    let answer = post(&server, &other.message(&ir_body(fqdn, &key), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::TransactionIdInUse as u8)));
    assert!(answer.protected_by(SECRET));
    let allowed = audited_enrollments(&dir).iter().filter(|e| e.outcome == "allowed").count();
    assert_eq!(allowed, 1, "counted once");
}

/// RFC 9483 §4.1.1: a certConf holds exactly one CertStatus for the issued
/// certReqId with the right certHash, answers the server's senderNonce as
/// its recipNonce, and carries no failInfo with an acceptance; anything else
/// is a protected `error` with its failInfo and leaves the certificate
/// waiting. After the confirmation, or after implicit confirmation was
/// granted, the transaction is over: certConfirmed.
#[test]
fn cert_conf_is_checked_before_it_settles_anything() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let alg = pbm();
    let fqdn = "k.dept.example.com";
    let key = SigningKey::generate_p256();
    let head = Head::new(fqdn, &alg);
    let ip = post(&server, &head.message(&ir_body(fqdn, &key), &alg, SECRET));
    assert_eq!(ip.status, 0, "{:?}", ip.text);
    assert!(!ip.read.implicit_confirm);
    let cert = ip.cert.clone().unwrap();
    let server_nonce = ip.read.sender_nonce.clone().unwrap();
    let conf_head = |recip: Option<Vec<u8>>| Head { nonce: Some(message::fresh_nonce()), recip, ..head.clone() };
    let accept =
        Confirmation { certificate: &cert, cert_req_id: 0, hash: DigestAlg::Sha256, name_hash: false, status: None };
    let wrong_cert = b"not the certificate".to_vec();
    type Case<'a> = (&'a str, Option<Vec<u8>>, Vec<Confirmation<'a>>, FailInfo);
    let cases: Vec<Case<'_>> = vec![
        ("no recipNonce", None, vec![accept.clone()], FailInfo::BadRecipientNonce),
        ("another recipNonce", Some(vec![9; 16]), vec![accept.clone()], FailInfo::BadRecipientNonce),
        ("no CertStatus", Some(server_nonce.clone()), vec![], FailInfo::BadRequest),
        ("two CertStatus", Some(server_nonce.clone()), vec![accept.clone(), accept.clone()], FailInfo::BadRequest),
        (
            "certReqId 1",
            Some(server_nonce.clone()),
            vec![Confirmation { cert_req_id: 1, ..accept.clone() }],
            FailInfo::BadCertId,
        ),
        (
            "another certificate's hash",
            Some(server_nonce.clone()),
            vec![Confirmation { certificate: &wrong_cert, ..accept.clone() }],
            FailInfo::BadCertId,
        ),
        (
            "a SHA-384 hash the hashAlg does not name",
            Some(server_nonce.clone()),
            vec![Confirmation { hash: DigestAlg::Sha384, ..accept.clone() }],
            FailInfo::BadCertId,
        ),
        (
            "SHA-1 named",
            Some(server_nonce.clone()),
            vec![Confirmation { hash: DigestAlg::Sha1, name_hash: true, ..accept.clone() }],
            FailInfo::BadAlg,
        ),
        (
            "an acceptance with a failInfo",
            Some(server_nonce.clone()),
            vec![Confirmation { status: Some((0, Some(FailInfo::BadPop))), ..accept.clone() }],
            FailInfo::BadRequest,
        ),
    ];
    for (what, recip, statuses, fail) in &cases {
        let h = conf_head(recip.clone());
        let answer = post(&server, &h.message(&client::cert_conf_body(statuses), &alg, SECRET));
        assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(*fail as u8)), "{what}: {:?}", answer.text);
        assert!(answer.protected_by(SECRET), "{what}");
        assert_echoes(&answer, &h);
    }
    // A wrong secret: unprotected badMessageCheck.
    let h = conf_head(Some(server_nonce.clone()));
    let answer = post(&server, &h.message(&client::cert_conf_body(std::slice::from_ref(&accept)), &alg, "guessed"));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadMessageCheck as u8)));
    assert!(answer.read.protection.is_none());

    // The right one, hashAlg SHA-384 named (CMP v3): pkiConf, and the certificate is issued.
    let right = Confirmation { hash: DigestAlg::Sha384, name_hash: true, ..accept.clone() };
    let mut h = conf_head(Some(server_nonce.clone()));
    h.pvno = 3;
    let answer = post(&server, &h.message(&client::cert_conf_body(std::slice::from_ref(&right)), &alg, SECRET));
    assert_eq!(answer.body, body_tag::PKI_CONF, "{:?}", answer.text);
    assert!(answer.protected_by(SECRET));
    assert_eq!(answer.read.pvno, 3);
    assert_echoes(&answer, &h);
    // Again: the transaction is over.
    let h = conf_head(Some(server_nonce.clone()));
    let answer = post(&server, &h.message(&client::cert_conf_body(&[right]), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::CertConfirmed as u8)));

    // Implicit confirmation granted: a certConf is answered certConfirmed.
    let head = Head::new("m.dept.example.com", &alg).implicit();
    let ip = post(&server, &head.message(&ir_body("m.dept.example.com", &key), &alg, SECRET));
    assert!(ip.read.implicit_confirm);
    let cert = ip.cert.unwrap();
    let h =
        Head { nonce: Some(message::fresh_nonce()), recip: ip.read.sender_nonce.clone(), general_info: vec![], ..head };
    let conf = Confirmation { certificate: &cert, ..accept };
    let answer = post(&server, &h.message(&client::cert_conf_body(&[conf]), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::CertConfirmed as u8)));
    assert!(answer.protected_by(SECRET));
}

/// PBMAC1 with 262,144 iterations (current guidance) is served, up to the
/// configured bound; a key derivation labelled PBES2 instead of PBKDF2 (as
/// some CMP libraries write it) is read as PBKDF2.
#[test]
fn pbmac1_at_current_iteration_counts_and_the_pbes2_label_are_served() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let key = SigningKey::generate_p256();
    let strong = MacAlgorithm::pbmac1_sha256(262_144);
    let head = Head::new("p.dept.example.com", &strong).implicit();
    let answer = post(&server, &head.message(&ir_body("p.dept.example.com", &key), &strong, SECRET));
    assert_eq!((answer.body, answer.status), (body_tag::IP, 0), "{:?}", answer.text);
    assert!(answer.protected_by(SECRET));

    // The PBES2 label: the same DER with …5.13 where …5.12 belongs.
    let alg = MacAlgorithm::pbmac1_sha256(1000);
    let pbkdf2 = asn1::oid("1.2.840.113549.1.5.12");
    let pbes2 = asn1::oid("1.2.840.113549.1.5.13");
    let encoded = alg.encode();
    let at = encoded.windows(pbkdf2.len()).position(|w| w == pbkdf2).unwrap();
    let mut relabelled = encoded.clone();
    relabelled[at..at + pbes2.len()].copy_from_slice(&pbes2);
    let mut head = Head::new("q.dept.example.com", &alg).implicit();
    head.alg = Some(relabelled);
    let answer = post(&server, &head.message(&ir_body("q.dept.example.com", &key), &alg, SECRET));
    assert_eq!((answer.body, answer.status), (body_tag::IP, 0), "{:?}", answer.text);

    // Above the configured bound: badAlg, before anything is decided.
    assert!(server.stop().success());
    let server = serve(&dir, &["--cmp-max-iterations", "200000"]);
    let head = Head::new("r.dept.example.com", &strong);
    let answer = post(&server, &head.message(&ir_body("r.dept.example.com", &key), &strong, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadAlg as u8)));
    assert!(answer.text.unwrap().contains("iteration count 262144 is outside 100 to 200000"));
}

/// A message signed with `key`, its certificate `cert` first in extraCerts,
/// the sender its subject.
fn signed(head: &Head, body: &[u8], key: &SigningKey, cert: &[u8]) -> Vec<u8> {
    let mut head = head.clone();
    head.alg = Some(key.signature_algorithm());
    head.kid = None;
    let subject = x509::Certificate::from_der(cert).unwrap().subject;
    let mut header = head.encode();
    // The sender: the certificate's subject (the second field of the header).
    let parsed = asn1::parse(&header).unwrap();
    let fields: Vec<Vec<u8>> = parsed.children().unwrap().remaining().unwrap().iter().map(|v| v.raw.to_vec()).collect();
    let mut fields = fields;
    fields[1] = message::directory_name(&subject);
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    header = asn1::seq(&refs);
    let sign = |part: &[u8]| key.sign(part).unwrap();
    message::encode_with_certs(&header, body, Some(&sign), &[cert])
}

/// Whether an answer is signed by the instance's RA certificate (sent in
/// extraCerts, issued by the CA).
fn signed_by_the_ra(answer: &Answer, dir: &Path) -> bool {
    let ca_pem = std::fs::read_to_string(dir.join("data/ca/ca.crt")).unwrap();
    let ca = x509::Certificate::from_der(&x509::pem_blocks(&ca_pem, "CERTIFICATE").unwrap()[0]).unwrap();
    let Some(ra) = answer.read.extra_certs.first() else { return false };
    let ra = x509::Certificate::from_der(ra).unwrap();
    let alg = asn1::parse(answer.read.protection_alg.as_ref().unwrap()).unwrap();
    let alg = alg.children().unwrap().required("algorithm").unwrap().oid().unwrap();
    ra.verify_signed_by(&ca.public_key().unwrap()).is_ok()
        && ra
            .public_key()
            .unwrap()
            .verify(&alg, &answer.read.protected_part, answer.read.protection.as_ref().unwrap(), "answer")
            .is_ok()
}

/// Enrolls `fqdn` with `key` (implicit confirmation); its certificate.
fn enroll(server: &Server, fqdn: &str, key: &SigningKey) -> Vec<u8> {
    let alg = pbm();
    let head = Head::new(fqdn, &alg).implicit();
    let answer = post(server, &head.message(&ir_body(fqdn, key), &alg, SECRET));
    assert_eq!(answer.status, 0, "{:?}", answer.text);
    answer.cert.unwrap()
}

/// RFC 9483 §4.1.3: `kur`, signed with the device's current certificate,
/// gets a new certificate for the same device under the new key, in a `kup`
/// signed by the RA, not counted, audited as `renew`; its certConf is signed
/// too. The attacker's variants: a certificate from another CA, a revoked
/// one, MAC protection, the old key again.
#[test]
fn kur_signed_with_the_current_certificate_renews_it() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let fqdn = "u.dept.example.com";
    let old_key = SigningKey::generate_p256();
    let old = enroll(&server, fqdn, &old_key);
    let new_key = SigningKey::generate_p256();
    let kur = |key: &SigningKey| {
        let template = Template { id: 0, common_name: Some(fqdn), serial_number: None, dns: &[], ips: &[] };
        client::cert_requests_body(body_tag::KUR, &[client::cert_req_msg(&template, key).unwrap()])
    };
    let alg = pbm();
    let head = Head::new(fqdn, &alg);
    let answer = post(&server, &signed(&head, &kur(&new_key), &old_key, &old));
    assert_eq!((answer.body, answer.status), (body_tag::KUP, 0), "{:?}", answer.text);
    assert!(signed_by_the_ra(&answer, &dir));
    assert_echoes(&answer, &head);
    let new = answer.cert.clone().unwrap();
    let new_cert = x509::Certificate::from_der(&new).unwrap();
    assert_eq!(new_cert.spki, new_key.spki_der().unwrap());
    assert_eq!(new_cert.subject_info().unwrap().common_name.as_deref(), Some(fqdn));
    // Its certConf, signed by the old certificate as the kur was.
    let conf =
        Confirmation { certificate: &new, cert_req_id: 0, hash: DigestAlg::Sha256, name_hash: false, status: None };
    let conf_head =
        Head { nonce: Some(message::fresh_nonce()), recip: answer.read.sender_nonce.clone(), ..head.clone() };
    let mac_conf =
        post(&server, &conf_head.message(&client::cert_conf_body(std::slice::from_ref(&conf)), &alg, SECRET));
    assert_eq!((mac_conf.body, mac_conf.fail()), (body_tag::ERROR, Some(FailInfo::WrongIntegrity as u8)));
    let confirmed = post(&server, &signed(&conf_head, &client::cert_conf_body(&[conf]), &old_key, &old));
    assert_eq!(confirmed.body, body_tag::PKI_CONF, "{:?}", confirmed.text);
    assert!(signed_by_the_ra(&confirmed, &dir));
    let renewals: Vec<_> = audit_records(&dir).into_iter().filter(|r| r["action"] == "renew").collect();
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0]["outcome"], "allowed");
    // Counted once (the ir), not for the kur.
    let shown = run_local(&dir, &["show", "1", "--json"]);
    assert!(shown.contains("\"enrollments\": 1"), "{shown}");

    // The old key again: badCertTemplate.
    let head = Head::new(fqdn, &alg);
    let answer = post(&server, &signed(&head, &kur(&old_key), &old_key, &old));
    assert_eq!(
        (answer.body, answer.fail()),
        (body_tag::KUP, Some(FailInfo::BadCertTemplate as u8)),
        "{:?}",
        answer.text
    );
    assert!(signed_by_the_ra(&answer, &dir));
    let refused = audited_enrollments(&dir);
    assert_eq!(refused.last().map(|e| e.outcome.as_str()), Some("refused"), "audited: {refused:?}");
    // MAC-protected kur: wrongIntegrity.
    let head = Head::new(fqdn, &alg);
    let answer = post(&server, &head.message(&kur(&new_key), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::WrongIntegrity as u8)));
    // A certificate from another CA, with the same name: signerNotTrusted.
    let stranger_key = SigningKey::generate_p256();
    let spki = stranger_key.spki_der().unwrap();
    let name = x509::write_name(&[(oid::CN, fqdn)]);
    let now = prereg::registry::unix_now();
    let template = x509::CertificateTemplate {
        subject: name.clone(),
        spki: &spki,
        not_before: now - 60,
        not_after: now + 3600,
        extensions: vec![],
    };
    let stranger = x509::sign_certificate(&template, &name, &[9], &stranger_key).unwrap();
    let head = Head::new(fqdn, &alg);
    let answer = post(&server, &signed(&head, &kur(&new_key), &stranger_key, &stranger));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::SignerNotTrusted as u8)));
    assert!(answer.read.protection.is_none());
    // The signature of another key over a genuine certificate: badMessageCheck.
    let head = Head::new(fqdn, &alg);
    let answer = post(&server, &signed(&head, &kur(&new_key), &stranger_key, &old));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadMessageCheck as u8)));
}

/// RFC 9483 §4.2: `rr` revokes the device's certificate, signed with its
/// key or MAC-protected with the registration's password; it goes on the
/// CRL with the reason asked for. A wrong MAC counts toward the lockout;
/// a signed rr revokes only the signer's own certificate; a revoked
/// certificate signs nothing more.
#[test]
fn rr_revokes_the_devices_certificate_onto_the_crl() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let alg = pbm();
    let (a_key, b_key) = (SigningKey::generate_p256(), SigningKey::generate_p256());
    let a = enroll(&server, "ra.dept.example.com", &a_key);
    let b = enroll(&server, "rb.dept.example.com", &b_key);
    let rr = |cert: &[u8], reason: Option<u8>| {
        let cert = x509::Certificate::from_der(cert).unwrap();
        let serial = asn1::parse(&cert.serial).unwrap().content.to_vec();
        let template = asn1::seq(&[&asn1::tlv(0x81, &serial), &asn1::constructed(0xa3, &[&cert.issuer])]);
        let mut parts = vec![template];
        if let Some(code) = reason {
            let value = asn1::octet_string(&asn1::tlv(0x0a, &[code]));
            parts.push(asn1::seq(&[&asn1::seq(&[&asn1::oid(oid::CRL_REASON), &value])]));
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        asn1::constructed(body_tag::RR, &[&asn1::seq(&[&asn1::seq(&refs)])])
    };
    // Signed by a, for b's certificate: notAuthorized, signed answer.
    let head = Head::new("ra.dept.example.com", &alg);
    let answer = post(&server, &signed(&head, &rr(&b, None), &a_key, &a));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::NotAuthorized as u8)));
    assert!(signed_by_the_ra(&answer, &dir));
    // Signed by a, for a's own: revoked, keyCompromise.
    let head = Head::new("ra.dept.example.com", &alg);
    let answer = post(&server, &signed(&head, &rr(&a, Some(1)), &a_key, &a));
    assert_eq!((answer.body, answer.status), (body_tag::RP, 0), "{:?}", answer.text);
    assert!(signed_by_the_ra(&answer, &dir));
    assert_echoes(&answer, &head);
    // Revoked, it signs nothing more.
    let head = Head::new("ra.dept.example.com", &alg);
    let answer = post(&server, &signed(&head, &rr(&a, None), &a_key, &a));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::CertRevoked as u8)));

    // By MAC, with a wrong secret: badMessageCheck, a failure counted.
    let head = Head::new("rb.dept.example.com", &alg);
    let answer = post(&server, &head.message(&rr(&b, None), &alg, "guessed"));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadMessageCheck as u8)));
    assert_eq!(answer.text.as_deref(), Some(NOT_AUTHENTICATED));
    let shown = run_local(&dir, &["show", "1", "--json"]);
    assert!(shown.contains("\"failed_attempts\": 1"), "{shown}");
    // By MAC, naming another device than the certificate's: the same answer.
    let head = Head::new("ra.dept.example.com", &alg);
    let answer = post(&server, &head.message(&rr(&b, None), &alg, SECRET));
    assert_eq!(answer.text.as_deref(), Some(NOT_AUTHENTICATED));
    // By MAC, right: revoked (superseded), MAC-protected answer.
    let head = Head::new("rb.dept.example.com", &alg);
    let answer = post(&server, &head.message(&rr(&b, Some(4)), &alg, SECRET));
    assert_eq!((answer.body, answer.status), (body_tag::RP, 0), "{:?}", answer.text);
    assert!(answer.protected_by(SECRET));
    // Again: certRevoked.
    let head = Head::new("rb.dept.example.com", &alg);
    let answer = post(&server, &head.message(&rr(&b, None), &alg, SECRET));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::CertRevoked as u8)));

    // Both on the CRL, with their reasons; both revocations audited.
    run_local(&dir, &["ca", "crl", "--out", "crl.der"]);
    let out = openssl(&dir, &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]);
    let crl = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for cert in [&a, &b] {
        let serial = x509::Certificate::from_der(cert).unwrap().serial_hex();
        assert!(crl.contains(&serial.trim_start_matches("00").to_string()), "{serial} not in {crl}");
    }
    assert!(crl.contains("key compromise") && crl.contains("superseded"), "{crl}");
    let revocations: Vec<_> = audit_records(&dir)
        .into_iter()
        .filter(|r| r["action"] == "certificate.revoke" && r["outcome"] == "ok")
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(revocations, ["keyCompromise", "superseded"]);
}

/// RFC 9483 §4.3: `genm` for the CA certificates, a root CA update, a
/// request template, a CRL update, and RFC 4210's key types and current
/// CRL; unprotected (public information, answered unprotected), MAC-protected
/// (answered in kind) or signed (answered signed). An unknown infoType is
/// a badRequest.
#[test]
fn genm_answers_ca_certificates_templates_and_crls() {
    let (_tmp, dir) = setup();
    let server = serve(&dir, &[]);
    let alg = pbm();
    let itav = |kind: &str, value: Option<Vec<u8>>| match value {
        Some(v) => asn1::seq(&[&asn1::oid(kind), &v]),
        None => asn1::seq(&[&asn1::oid(kind)]),
    };
    let genm = |items: &[Vec<u8>]| {
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        asn1::constructed(body_tag::GENM, &[&asn1::seq(&refs)])
    };
    let ca_pem = std::fs::read_to_string(dir.join("data/ca/ca.crt")).unwrap();
    let ca = x509::pem_blocks(&ca_pem, "CERTIFICATE").unwrap().remove(0);
    use prereg::enroll::cmp::general as g;
    let asked = genm(&[
        itav(g::CA_CERTS, None),
        itav(g::ROOT_CA_CERT, Some(ca.clone())),
        itav(g::CERT_REQ_TEMPLATE, None),
        itav(g::CRL_STATUS_LIST, Some(asn1::seq(&[&asn1::seq(&[&asn1::constructed(0xa1, &[&asn1::seq(&[])])])]))),
        itav(g::SIGN_KEY_PAIR_TYPES, None),
        itav(g::CURRENT_CRL, None),
    ]);
    // Unprotected.
    let mut head = Head::new("g.dept.example.com", &alg);
    head.alg = None;
    let answer = post(&server, &message::encode(&head.encode(), &asked, None));
    assert_eq!(answer.body, body_tag::GENP, "{:?}", answer.text);
    assert!(answer.read.protection.is_none());
    assert_echoes(&answer, &head);
    let infos = genp_infos(&answer);
    let kinds: Vec<&str> = infos.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [g::CA_CERTS, g::ROOT_CA_KEY_UPDATE, g::CERT_REQ_TEMPLATE, g::CRLS, g::SIGN_KEY_PAIR_TYPES, g::CURRENT_CRL]
    );
    assert_eq!(infos[0].1.as_deref(), Some(asn1::seq(&[&ca]).as_slice()), "the CA certificate");
    assert!(infos[1].1.is_none() && infos[2].1.is_none(), "no root update, no template required");
    let crls = asn1::parse(infos[3].1.as_ref().unwrap()).unwrap();
    assert_eq!(crls.children().unwrap().remaining().unwrap().len(), 1, "the CA's CRL");
    assert!(infos[5].1.is_some());

    // MAC-protected: answered in kind.
    let head = Head::new("g.dept.example.com", &alg);
    let answer = post(&server, &head.message(&genm(&[itav(g::CA_CERTS, None)]), &alg, SECRET));
    assert_eq!(answer.body, body_tag::GENP, "{:?}", answer.text);
    assert!(answer.protected_by(SECRET));
    // MAC-protected with a wrong secret: badMessageCheck, counted like an enrollment's.
    let head = Head::new("g.dept.example.com", &alg);
    let answer = post(&server, &head.message(&genm(&[itav(g::CA_CERTS, None)]), &alg, "guessed"));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadMessageCheck as u8)));
    // Signed by an enrolled device: answered signed.
    let key = SigningKey::generate_p256();
    let cert = enroll(&server, "h.dept.example.com", &key);
    let head = Head::new("h.dept.example.com", &alg);
    let answer = post(&server, &signed(&head, &genm(&[itav(g::CA_CERTS, None)]), &key, &cert));
    assert_eq!(answer.body, body_tag::GENP, "{:?}", answer.text);
    assert!(signed_by_the_ra(&answer, &dir));
    // Unknown infoType; nothing asked.
    let mut head = Head::new("g.dept.example.com", &alg);
    head.alg = None;
    let answer = post(&server, &message::encode(&head.encode(), &genm(&[itav("1.2.3.4", None)]), None));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadRequest as u8)));
    let answer = post(&server, &message::encode(&head.encode(), &genm(&[]), None));
    assert_eq!((answer.body, answer.fail()), (body_tag::ERROR, Some(FailInfo::BadRequest as u8)));
}

/// The InfoTypeAndValues of a `genp`.
fn genp_infos(answer: &Answer) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let body = asn1::parse(&answer.raw).unwrap();
    let mut parts = body.children().unwrap();
    parts.required("header").unwrap();
    let genp = parts.required("body").unwrap();
    let content = genp.children().unwrap().required("content").unwrap();
    for info in content.children().unwrap().remaining().unwrap() {
        let mut i = info.children().unwrap();
        let kind = i.required("infoType").unwrap().oid().unwrap();
        let value = i.next_value().unwrap().map(|v| v.raw.to_vec());
        out.push((kind, value));
    }
    out
}
