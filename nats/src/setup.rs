//! Creating or checking the stream: one call, typed errors.

use async_nats::jetstream::{
    self, ErrorCode,
    context::GetStreamErrorKind,
    stream::{Config, RetentionPolicy, StorageType},
};

use crate::{
    config::{Retention, Storage, StreamSpec},
    error::{Mismatch, SetupError},
};

/// Creates the stream of `spec`, or checks the existing one.
///
/// When a stream of that name exists, its subjects (as a set), retention,
/// storage and duplicate window must equal the specification's; otherwise
/// the call fails with [`SetupError::Conflict`], listing every field that
/// disagrees, and changes nothing on the server. With `create == false`, a
/// missing stream is [`SetupError::Missing`].
///
/// # Errors
///
/// [`SetupError::InvalidSpec`] for a bad name or no subjects,
/// [`SetupError::Conflict`], [`SetupError::Missing`], or
/// [`SetupError::Server`] when the server cannot be asked (JetStream off,
/// timeout).
pub async fn ensure_stream(
    context: &jetstream::Context,
    spec: &StreamSpec,
    create: bool,
) -> Result<jetstream::stream::Stream, SetupError> {
    if spec.name.is_empty()
        || spec
            .name
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    {
        return Err(SetupError::InvalidSpec(format!(
            "stream name {:?} is empty or has '.', '*', '>' or whitespace",
            spec.name
        )));
    }
    if spec.subjects.is_empty() {
        return Err(SetupError::InvalidSpec("no subjects".into()));
    }
    match context.get_stream(&spec.name).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| SetupError::Server(e.to_string()))?;
            let mismatches = compare(spec, &info.config);
            if mismatches.is_empty() {
                Ok(stream)
            } else {
                Err(SetupError::Conflict {
                    stream: spec.name.clone(),
                    mismatches,
                })
            }
        }
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                if !create {
                    return Err(SetupError::Missing(spec.name.clone()));
                }
                context
                    .create_stream(to_config(spec))
                    .await
                    .map_err(|e| SetupError::Server(e.to_string()))
            }
            _ => Err(SetupError::Server(e.to_string())),
        },
    }
}

fn to_config(spec: &StreamSpec) -> Config {
    Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        retention: retention(spec.retention),
        storage: storage(spec.storage),
        duplicate_window: spec.duplicate_window,
        ..Config::default()
    }
}

fn retention(r: Retention) -> RetentionPolicy {
    match r {
        Retention::Limits => RetentionPolicy::Limits,
        Retention::Interest => RetentionPolicy::Interest,
        Retention::WorkQueue => RetentionPolicy::WorkQueue,
    }
}

fn storage(s: Storage) -> StorageType {
    match s {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

fn compare(spec: &StreamSpec, found: &Config) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut want = spec.subjects.clone();
    want.sort();
    want.dedup();
    let mut have = found.subjects.clone();
    have.sort();
    have.dedup();
    if want != have {
        out.push(Mismatch {
            field: "subjects",
            expected: format!("{want:?}"),
            found: format!("{have:?}"),
        });
    }
    if retention(spec.retention) != found.retention {
        out.push(Mismatch {
            field: "retention",
            expected: format!("{:?}", spec.retention),
            found: format!("{:?}", found.retention),
        });
    }
    if storage(spec.storage) != found.storage {
        out.push(Mismatch {
            field: "storage",
            expected: format!("{:?}", spec.storage),
            found: format!("{:?}", found.storage),
        });
    }
    if spec.duplicate_window != found.duplicate_window {
        out.push(Mismatch {
            field: "duplicate_window",
            expected: format!("{:?}", spec.duplicate_window),
            found: format!("{:?}", found.duplicate_window),
        });
    }
    out
}
