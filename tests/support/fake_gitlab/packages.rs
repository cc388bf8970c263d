//! The fake GitLab's generic package registry:
//! `PUT /projects/:id/packages/generic/:name/:version/:file` stores the
//! body's bytes as they came, `GET` of the same path answers them. Like
//! GitLab, the job token may publish and download, names and versions are
//! checked, and a missing file is `404 Package Not Found`.
//!
//! The files live here, keyed by the fake's URL, so that `fake_gitlab.rs`
//! only needs its dispatch line.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;

use super::{FakeGitLab, FakeProject, RecordedRequest, State, decode, json_response, message};

/// (fake URL, project id, package, version, file) → content.
type Files = HashMap<(String, u64, String, String, String), Bytes>;

static FILES: LazyLock<Mutex<Files>> = LazyLock::new(Mutex::default);

fn files() -> MutexGuard<'static, Files> {
    FILES.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeGitLab {
    /// A file of a generic package, as published.
    pub fn package_file(
        &self,
        project_id: u64,
        name: &str,
        version: &str,
        file: &str,
    ) -> Option<Bytes> {
        files()
            .get(&(
                self.url.clone(),
                project_id,
                name.into(),
                version.into(),
                file.into(),
            ))
            .cloned()
    }

    /// Replace a published file's bytes (a tampered download).
    pub fn tamper_package_file(
        &self,
        project_id: u64,
        name: &str,
        version: &str,
        file: &str,
        bytes: &[u8],
    ) {
        files().insert(
            (
                self.url.clone(),
                project_id,
                name.into(),
                version.into(),
                file.into(),
            ),
            Bytes::copy_from_slice(bytes),
        );
    }
}

fn valid(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 255
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        && !part.starts_with('.')
}

pub fn route(
    s: &State,
    project: &FakeProject,
    request: &RecordedRequest,
    rest: &[&str],
) -> Option<Response<Full<Bytes>>> {
    let ["packages", "generic", name, version, file] = rest else {
        return None;
    };
    let (name, version, file) = (decode(name), decode(version), decode(file));
    if !(valid(&name) && valid(&version) && valid(&file)) {
        return Some(message(
            400,
            "400 Bad request - package name, version or file name is invalid",
        ));
    }
    let key = (s.base_url.clone(), project.id, name, version, file);
    Some(match request.method.as_str() {
        "PUT" => {
            files().insert(key, request.raw.clone());
            json_response(201, &serde_json::json!({ "message": "201 Created" }))
        }
        "GET" => match files().get(&key) {
            Some(bytes) => Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .body(Full::new(bytes.clone()))
                .expect("response"),
            None => message(404, "404 Package Not Found"),
        },
        _ => message(405, "405 Method Not Allowed"),
    })
}
