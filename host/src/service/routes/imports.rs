//! Bulk imports: submit (multipart: the signed request, then the file),
//! status with live progress, and the per-row report.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, State};

use crate::service::extract::{Path, Query};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{ParameterRefusals, ReadRefusals, blocking, next_page, page};
use crate::import::{ImportProgress, RowError, RowSink};
use crate::registry::{ImportFile, unix_now};
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::{ApiError, Problem};
use crate::service::signed::{FlattenedJws, file_part, multipart_error, signed_part};
use crate::service::state::RunningImport;
use crate::store::ImportRecord;

pub use crate::api::{ImportView, ReportPage};

/// The multipart form of an import: `request` first, then `file`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The signed `import.csv` request, a JWS in flattened JSON serialization.
    /// Its `request` claim: `{"action": "import.csv", "procedure", "sha256"
    /// (of the file), "partial", "dry_run"}`.
    request: FlattenedJws,
    /// The CSV file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A page of the per-row report.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only rows after this row number (the `next_after` of the previous page).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn view(state: &AppState, mut import: ImportRecord) -> ImportView {
    // An import of this process that failed where even its record could not
    // be written says so, rather than `running` for ever.
    if import.status == crate::store::ImportStatus::Running
        && let Some(cause) = state.import_failure(import.id)
    {
        import.status = crate::store::ImportStatus::Failed;
        import.message = cause;
    }
    let progress = state.import_progress(import.id);
    let report = format!("/v1/imports/{}/report", import.id);
    ImportView { import, progress, report }
}

fn report_path(state: &AppState, id: u64) -> PathBuf {
    state.data().imports().join(format!("{id}.report.jsonl"))
}

/// The latest imports of the officer's domains, newest first.
#[utoipa::path(get, path = "/v1/imports", operation_id = "listImports", tag = "imports",
    security(("officer" = [])),
    responses((status = 200, description = "The latest 100 imports", body = [ImportView]), ReadRefusals))]
pub async fn list(State(state): State<AppState>, officer: Officer) -> Result<Json<Vec<ImportView>>, ApiError> {
    let registry = state.registry().clone();
    let imports = blocking(move || {
        let domains: std::collections::HashMap<String, String> =
            registry.procedures()?.into_iter().map(|p| (p.name, p.domain)).collect();
        let mut imports = registry.imports(if officer.domains().is_some() { 1000 } else { 100 })?;
        imports.retain(|i| domains.get(&i.procedure).is_some_and(|d| officer.reads(d)));
        imports.truncate(100);
        Ok(imports)
    })
    .await?;
    Ok(Json(imports.into_iter().map(|i| view(&state, i)).collect()))
}

/// An import, if it belongs to one of the officer's domains (another
/// domain's is not found, as if it did not exist).
fn readable_import(registry: &crate::Registry, officer: &Officer, id: u64) -> Result<ImportRecord, ApiError> {
    let import = registry.import_record(id)?;
    let domain = registry.procedure(&import.procedure)?.map(|p| p.domain);
    if domain.is_some_and(|d| officer.reads(&d)) {
        Ok(import)
    } else {
        Err(crate::RegistryError::NotFound(format!("import {id}")).into())
    }
}

/// Starts an import. The signature is checked before the file is received;
/// the file is read through once (structure, limits, header, SHA-256) before
/// this answers, so a broken file is refused here. The rows then run in the
/// background: poll the status.
#[utoipa::path(post, path = "/v1/imports", operation_id = "submitImport", tag = "imports",
    request_body(content = ImportUpload, content_type = "multipart/form-data",
        description = "Two parts, in this order: `request` (the signed request), then `file`. The server reads `request` first and checks its signature before it keeps a byte of the file: a form whose first part is not `request` is refused (400)."),
    responses(
        (status = 202, description = "Accepted: the rows are being imported", body = ImportView),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Signature refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Officer not allowed in the domain", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Replayed request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File, or its `request` part (over 64 KiB), too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file cannot be imported, or is not the signed one", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Shutting down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    mut form: Multipart,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    if state.shutting_down() {
        return Err(ApiError::unavailable("shutting down: no new imports"));
    }
    // 1. The signed request, checked before the file is accepted.
    let jws = signed_part(&mut form, "the signed import.csv request").await?;
    let registry = state.registry().clone();
    let checked_jws = jws.clone();
    let info = blocking(move || Ok(registry.check_import_request(&checked_jws, unix_now())?)).await?;
    // 2. The file, streamed to disk (owner-only: it may hold passwords).
    let mut field = file_part(&mut form, "the CSV file").await?;
    let name = field.file_name().filter(|n| !n.is_empty()).unwrap_or("upload.csv").to_owned();
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    let folder = state.data().imports();
    tokio::fs::create_dir_all(&folder).await.map_err(|e| ApiError::storage_io(&folder.display().to_string(), &e))?;
    let upload = Upload::new(&folder);
    let mut out = upload.create().await?;
    let mut size = 0u64;
    let limit = state.limits().max_upload_bytes;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request is too large",
                format!("{name}: larger than the {limit} bytes accepted"),
            ));
        }
        out.write_all(&chunk).await.map_err(|e| ApiError::storage_io("saving the upload", &e))?;
    }
    out.flush().await.map_err(|e| ApiError::storage_io("saving the upload", &e))?;
    drop(out);
    tracing::info!(file = %name, bytes = size, procedure = %info.procedure, dry_run = info.dry_run, partial = info.partial, "import upload received");
    // 3. Prepare (scan, record) now; run the rows in the background.
    let progress = Arc::new(ImportProgress::new());
    let registry = state.registry().clone();
    let path = upload.path.clone();
    let prepare_progress = progress.clone();
    let prepared = blocking(move || {
        Ok(registry.prepare_import(&jws, ImportFile { path: &path, name: &name }, unix_now(), prepare_progress)?)
    })
    .await?;
    let record = prepared.record().clone();
    let id = record.id;
    let report = report_path(&state, id);
    let worker_state = state.clone();
    let thread_progress = progress.clone();
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new().name(format!("import-{id}")).spawn(move || {
        let _request = span.enter();
        let upload = upload;
        let ended = match JsonlReport::create(&report) {
            Ok(mut sink) => {
                let result = prepared.run(&mut sink).map_err(|e| e.to_string());
                match sink.finish() {
                    Ok(()) => result,
                    Err(e) => result.and(Err(format!("cannot write the import report: {e}"))),
                }
            }
            Err(e) => Err(prepared.fail(&format!("cannot write the import report {}: {e}", report.display())).message),
        };
        match ended {
            Ok(record) => worker_state.metrics().import_finished(&record),
            Err(cause) => {
                tracing::error!(import = id, error = %cause, "import failed");
                // Said here too, in case even recording it failed.
                worker_state.import_failed(id, cause);
            }
        }
        drop(upload);
        drop(thread_progress);
        worker_state.remove_import(id);
    });
    match spawned {
        Ok(thread) => state.add_import(id, RunningImport { progress, thread: Some(thread) }),
        Err(e) => return Err(ApiError::internal(format!("cannot start the import: {e}"))),
    }
    let mut view = view(&state, record);
    if view.progress.is_none() {
        // Finished already: show the final record.
        let registry = state.registry().clone();
        view.import = blocking(move || Ok(registry.import_record(id)?)).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// An import's status, with live progress while it runs.
#[utoipa::path(get, path = "/v1/imports/{id}", operation_id = "getImport", tag = "imports",
    params(("id" = u64, Path, description = "Import id", maximum = 9223372036854775807_u64)),
    security(("officer" = [])),
    responses(
        (status = 200, description = "The import", body = ImportView),
        ReadRefusals,
        (status = 400, description = "An id that is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn status(
    State(state): State<AppState>,
    officer: Officer,
    Path(id): Path<u64>,
) -> Result<Json<ImportView>, ApiError> {
    let progress = state.import_progress(id);
    let registry = state.registry().clone();
    let import = blocking(move || readable_import(&registry, &officer, id)).await?;
    let mut view = view(&state, import);
    view.progress = view.progress.or(progress);
    Ok(Json(view))
}

/// The bad rows of an import: row, line, column, kind and reason.
#[utoipa::path(get, path = "/v1/imports/{id}/report", operation_id = "getImportReport", tag = "imports",
    params(("id" = u64, Path, description = "Import id", maximum = 9223372036854775807_u64), ReportQuery),
    security(("officer" = [])),
    responses(
        (status = 200, description = "A page of bad rows", body = ReportPage),
        ReadRefusals,
        ParameterRefusals,
        (status = 404, description = "No such import", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report(
    State(state): State<AppState>,
    officer: Officer,
    Path(id): Path<u64>,
    Query(query): Query<ReportQuery>,
) -> Result<Json<ReportPage>, ApiError> {
    let (after, limit) = page(query.after, query.limit)?;
    let limit = limit as usize;
    let registry = state.registry().clone();
    let path = report_path(&state, id);
    let page = blocking(move || {
        readable_import(&registry, &officer, id)?;
        // No report was written (the import failed before it could be).
        if !path.is_file() {
            return Ok(ReportPage { items: Vec::new(), next_after: None });
        }
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ReportPage { items: Vec::new(), next_after: None });
            }
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", path.display()))),
        };
        let mut items = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            // A line being written is skipped; it shows on the next read.
            let Ok(row) = serde_json::from_str::<RowError>(&line) else { continue };
            if row.row > after {
                items.push(row);
                if items.len() > limit {
                    break;
                }
            }
        }
        let next_after = next_page(&mut items, limit, |r| r.row);
        Ok(ReportPage { items, next_after })
    })
    .await?;
    Ok(Json(page))
}

/// An uploaded file, deleted when dropped (it may hold passwords).
struct Upload {
    path: PathBuf,
}

impl Upload {
    fn new(folder: &FsPath) -> Self {
        let mut id = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        // Named for this process: another starting on the same data folder
        // removes only the uploads of processes that are gone.
        let token = crate::process::process_token();
        Upload { path: folder.join(format!("upload-{token}-{}.csv", crate::audit::hex(&id))) }
    }

    async fn create(&self) -> Result<tokio::fs::File, ApiError> {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        options.open(&self.path).await.map_err(|e| ApiError::storage_io(&self.path.display().to_string(), &e))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot delete an upload");
        }
    }
}

/// The per-row report as JSON lines.
pub struct JsonlReport {
    out: BufWriter<std::fs::File>,
}

impl JsonlReport {
    /// Creates (or truncates) the report file.
    pub fn create(path: &FsPath) -> std::io::Result<Self> {
        Ok(JsonlReport { out: BufWriter::new(std::fs::File::create(path)?) })
    }

    /// Flushes it.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl RowSink for JsonlReport {
    fn bad_row(&mut self, error: &RowError) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, error)?;
        self.out.write_all(b"\n")
    }
}
