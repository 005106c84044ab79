// prereg RA page. The officer's private key is read from a PKCS#8 file into
// this page's memory only; every write is signed here with WebCrypto as a
// JWS (flattened JSON) and sent to the REST API, and every read carries a
// short-lived access token signed the same way (Authorization: Bearer).
// Nothing secret is stored, and no cookie is used.
"use strict";

const officer = { key: null, alg: null, kid: null, name: null };
let instanceId = null;
// The current access token and when it expires (Unix seconds).
const access = { token: null, exp: 0 };

const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function pemToDer(pem) {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const bin = atob(body);
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return der;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// RFC 7638 thumbprint, as the server computes key ids.
async function thumbprint(jwk) {
  const canonical = jwk.kty === "EC"
    ? `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`
    : `{"crv":"${jwk.crv}","kty":"OKP","x":"${jwk.x}"}`;
  return b64url(await sha256(enc.encode(canonical)));
}

async function importKey(der) {
  try {
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, true, ["sign"]);
    return { key, alg: "ES256" };
  } catch (_) {
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    return { key, alg: "EdDSA" };
  }
}

async function api(method, path, body, contentType) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    if (body instanceof FormData) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = contentType || "application/json";
    }
  }
  const token = await accessToken();
  if (token) init.headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, init);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(data.detail || String(data));
    error.problem = data;
    throw error;
  }
  return data;
}

// The instance (open to anyone): read without a token, which needs its id.
async function instanceInfo() {
  const response = await fetch("/v1/instance");
  if (!response.ok) throw new Error(`GET /v1/instance: ${response.status}`);
  return response.json();
}

async function instance() {
  if (!instanceId) instanceId = (await instanceInfo()).instance_id;
  return instanceId;
}

async function signCompact(header, claims) {
  const protectedPart = b64url(enc.encode(JSON.stringify(header)));
  const payload = b64url(enc.encode(JSON.stringify(claims)));
  const algorithm = officer.alg === "ES256" ? { name: "ECDSA", hash: "SHA-256" } : { name: "Ed25519" };
  const signature = await crypto.subtle.sign(algorithm, officer.key, enc.encode(`${protectedPart}.${payload}`));
  return { protected: protectedPart, payload, signature: b64url(signature) };
}

// An access token (at most five minutes), made again a minute before it ends.
async function accessToken() {
  if (!officer.key) return null;
  const now = Math.floor(Date.now() / 1000);
  if (access.token && access.exp - now > 60) return access.token;
  const header = { alg: officer.alg, kid: officer.kid, typ: "prereg-access+jws" };
  const aud = await instance();
  const jws = await signCompact(header, { aud, iat: now, exp: now + 240 });
  Object.assign(access, { token: `${jws.protected}.${jws.payload}.${jws.signature}`, exp: now + 240 });
  return access.token;
}

// An HTML fragment of the page (`/ui/...`), read with the access token.
async function fragment(path) {
  const token = await accessToken();
  const response = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.text();
  if (!response.ok) {
    let detail = text;
    try { detail = JSON.parse(text).detail; } catch (_) { /* not a problem document */ }
    throw new Error(detail);
  }
  return text;
}

async function sign(request) {
  if (!officer.key) throw new Error("load your officer key first (top right)");
  const now = Math.floor(Date.now() / 1000);
  const jti = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const header = { alg: officer.alg, kid: officer.kid, typ: "prereg-request+jws" };
  const claims = { aud: await instance(), iat: now, exp: now + 300, jti, request };
  return signCompact(header, claims);
}

function show(element, text, ok) {
  element.textContent = text;
  element.className = "message " + (ok === undefined ? "" : ok ? "good" : "bad");
}

function fieldError(form, error) {
  form.querySelectorAll(".field-error").forEach((e) => e.classList.remove("field-error"));
  const field = error.problem && error.problem.field;
  if (field) {
    const input = form.querySelector(`[name="${field.replace("-", "_")}"]`);
    if (input) input.classList.add("field-error");
  }
}

// --- the officer key --------------------------------------------------------

async function loadKey(file) {
  const status = $("key-status");
  try {
    const { key, alg } = await importKey(pemToDer(await file.text()));
    const jwk = await crypto.subtle.exportKey("jwk", key);
    const kid = await thumbprint(jwk);
    Object.assign(officer, { key, alg, kid, name: null });
    Object.assign(access, { token: null, exp: 0 });
    let officers;
    try {
      officers = await api("GET", "/v1/officers");
    } catch (e) {
      throw new Error(`key ${kid} is not an officer of this instance (${e.message})`);
    }
    const me = officers.find((o) => o.kid === kid);
    if (!me) throw new Error(`key ${kid} is not an officer of this instance`);
    officer.name = me.name;
    $("main").innerHTML = await fragment("/ui/main");
    wireMain();
    openTab(location.hash.length > 1 ? location.hash.slice(1) : "registrations");
    show(status, `Signing as ${me.name} (${alg}, domains ${me.domains.join(", ")})`, true);
  } catch (e) {
    Object.assign(officer, { key: null, alg: null, kid: null, name: null });
    Object.assign(access, { token: null, exp: 0 });
    show(status, `Key not loaded: ${e.message}`, false);
  }
}

// --- registrations ----------------------------------------------------------

async function loadRegistrations(params) {
  const query = new URLSearchParams(params).toString();
  $("registrations").innerHTML = await fragment(`/ui/registrations?${query}`);
}

async function changeState(id, action) {
  const message = $("list-message");
  try {
    const request = { action: `registration.${action}`, id: Number(id) };
    const outcome = await api("POST", `/v1/registrations/${id}/${action}`, await sign(request));
    show(message, `${outcome.action} ${outcome.object} (audit #${outcome.audit_seq})`, true);
    await loadRegistrations({ q: $("search-q").value, state: $("search-state").value });
  } catch (e) {
    show(message, e.message, false);
  }
}

// --- imports ----------------------------------------------------------------

function csvField(value) {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function b64urlDecode(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// The file's digest, keyed (HMAC-SHA256) by a key agreed with the instance
// key over an ephemeral X25519 key (HKDF-SHA256): only the instance can
// derive it again, so the signed request, which the audit log keeps, holds
// no digest a guess of a password in the file could be checked against.
async function keyedDigest(bytes) {
  const info = await instanceInfo();
  if (!info.sealing_key) throw new Error("the instance publishes no key to key the file's digest with");
  const instanceKey = b64urlDecode(info.sealing_key);
  const ephemeral = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const ephemeralRaw = new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey));
  const peer = await crypto.subtle.importKey("raw", instanceKey, { name: "X25519" }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: "X25519", public: peer }, ephemeral.privateKey, 256);
  const salt = new Uint8Array(64);
  salt.set(ephemeralRaw, 0);
  salt.set(instanceKey, 32);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const keyBits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info: enc.encode("prereg import digest v1") }, ikm, 256);
  const hmacKey = await crypto.subtle.importKey("raw", keyBits, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, bytes));
  return { sha256: hex(mac), digest_key: b64url(ephemeralRaw) };
}

async function startImport(procedure, file, partial, dryRun) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const digest = await keyedDigest(bytes);
  const request = { action: "import.csv", procedure, ...digest, partial, dry_run: dryRun };
  const form = new FormData();
  form.append("request", JSON.stringify(await sign(request)));
  form.append("file", new Blob([bytes], { type: "text/csv" }), file.name);
  return api("POST", "/v1/imports", form);
}

async function waitForImport(view, onProgress) {
  while (view.import.status === "running") {
    if (view.progress && onProgress) onProgress(view.progress);
    await new Promise((r) => setTimeout(r, 250));
    view = await api("GET", `/v1/imports/${view.import.id}`);
  }
  return view;
}

async function importReport(id) {
  const rows = [];
  let after = 0;
  for (;;) {
    const page = await api("GET", `/v1/imports/${id}/report?after=${after}&limit=1000`);
    rows.push(...page.items);
    if (page.next_after == null) return rows;
    after = page.next_after;
  }
}

async function runImport(dryRun) {
  const result = $("import-result");
  const table = $("import-errors");
  const bar = $("imp-progress");
  const file = $("imp-file").files[0];
  table.hidden = true;
  if (!file) return show(result, "choose a CSV file first", false);
  try {
    show(result, dryRun ? "checking…" : "importing…");
    bar.hidden = false;
    bar.value = 0;
    let view = await startImport($("imp-procedure").value, file, $("imp-partial").checked, dryRun);
    view = await waitForImport(view, (p) => {
      bar.max = Math.max(p.total, 1);
      bar.value = p.done;
      show(result, `${p.phase}: ${p.done} of ${p.total} rows, ${p.errors} bad`);
    });
    bar.value = bar.max;
    const record = view.import;
    const ok = record.status === "completed" && record.errors === 0;
    show(result, `Import ${record.id} ${record.status}: ${record.message}`, ok);
    const rows = await importReport(record.id);
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const value of [row.row, row.line, row.column || "", row.kind, row.message]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.hidden = rows.length === 0;
    if (!dryRun) loadRegistrations({});
  } catch (e) {
    bar.hidden = true;
    show(result, e.message, false);
  }
}

// --- one registration -------------------------------------------------------

async function register(event) {
  event.preventDefault();
  const form = event.target;
  const result = $("register-result");
  const value = (name) => form.elements[name].value.trim();
  const number = (name) => (value(name) === "" ? null : Number(value(name)));
  try {
    const password = form.elements.password.value;
    let text;
    if (password === "") {
      const request = {
        action: "registration.create",
        procedure: value("procedure"),
        fqdn: value("fqdn"),
        ip: value("ip") || null,
        serial: value("serial") || null,
        password_hash: null,
        valid_days: number("valid_days"),
        max_enrollments: number("max_enrollments"),
      };
      const created = await api("POST", "/v1/registrations", await sign(request));
      const r = created.registration;
      text = `Registered ${r.pattern} as registration ${r.id} in domain ${r.domain} (audit #${created.outcome.audit_seq})`;
    } else {
      // The password goes in a one-row import file, hashed on arrival; it
      // never enters the signed request that the audit log keeps.
      const columns = ["fqdn", "ip", "serial", "password", "valid_days", "max_enrollments"];
      const row = [value("fqdn"), value("ip"), value("serial"), password, value("valid_days"), value("max_enrollments")];
      const csv = `${columns.join(",")}\r\n${row.map(csvField).join(",")}\r\n`;
      const file = new File([csv], "registration.csv", { type: "text/csv" });
      const view = await waitForImport(await startImport(value("procedure"), file, false, false));
      if (view.import.created !== 1) {
        const [bad] = await importReport(view.import.id);
        const error = new Error(bad ? `${bad.column || "row"}: ${bad.message}` : view.import.message);
        error.problem = { field: bad && bad.column };
        throw error;
      }
      const page = await api("GET", `/v1/registrations?q=${encodeURIComponent(value("fqdn").toLowerCase())}&limit=1000`);
      const r = page.items.filter((x) => x.import_id === view.import.id)[0];
      text = r ? `Registered ${r.pattern} as registration ${r.id} in domain ${r.domain}, with a password` : view.import.message;
    }
    fieldError(form, {});
    show(result, text, true);
    form.elements.password.value = "";
    loadRegistrations({});
  } catch (e) {
    fieldError(form, e);
    show(result, e.message, false);
  }
}

// --- checks -----------------------------------------------------------------

async function check(event) {
  event.preventDefault();
  const form = event.target;
  const out = $("check-result");
  const value = (name) => form.elements[name].value.trim() || null;
  try {
    const report = await api("POST", "/v1/decisions/check", {
      procedure: value("procedure"),
      fqdn: value("fqdn") || "",
      ip: value("ip"),
      serial: value("serial"),
      password: form.elements.password.value || null,
    });
    out.replaceChildren();
    const verdict = document.createElement("p");
    verdict.className = report.allowed ? "good" : "bad";
    verdict.id = "check-verdict";
    verdict.textContent = `${report.allowed ? "ALLOW" : "DENY"} ${report.reason}` +
      (report.registration ? ` (registration ${report.registration}, ${report.pattern})` : "");
    const why = document.createElement("p");
    why.textContent = report.explanation;
    const policy = document.createElement("p");
    policy.className = "muted";
    policy.textContent = `policy ${report.policy.name} ${report.policy.version}, sha256 ${report.policy.sha256}`;
    out.append(verdict, why, policy);
  } catch (e) {
    show(out, e.message, false);
  }
}

// --- wiring -----------------------------------------------------------------

function openTab(name) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("active", s.id === `tab-${name}`));
}

// The officer's part of the page, once it is loaded.
function wireMain() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadRegistrations({ q: $("search-q").value, state: $("search-state").value });
  });
  $("registrations").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.id === "next-page") {
      loadRegistrations({ q: button.dataset.q, state: button.dataset.state, after: button.dataset.after });
    } else if (button.classList.contains("disable")) {
      changeState(button.dataset.id, "disable");
    } else if (button.classList.contains("reopen")) {
      changeState(button.dataset.id, "reopen");
    }
  });
  $("register-form").addEventListener("submit", register);
  $("imp-dry-run").addEventListener("click", () => runImport(true));
  $("imp-run").addEventListener("click", () => runImport(false));
  $("check-form").addEventListener("submit", check);
  $("audit-refresh").addEventListener("click", async () => {
    try {
      $("audit").innerHTML = await fragment("/ui/audit");
    } catch (e) {
      show($("chain-status"), e.message, false);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
    openTab(b.dataset.tab);
    history.replaceState(null, "", `#${b.dataset.tab}`);
  }));
  $("key-file").addEventListener("change", (e) => e.target.files[0] && loadKey(e.target.files[0]));
  document.body.dataset.ready = "true";
});
