//! Project uploads (`POST /projects/:id/uploads`): a file as a multipart
//! form, read from disk as it is sent, with an exact `Content-Length`.
//!
//! An upload that is sent twice (its answer lost) only leaves an unused
//! file in the project, so it is simply sent again.

use std::fs::File;
use std::io::{Chain, Cursor, Read};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{GitLab, Method, Payload, Written};

/// GitLab's answer to an upload.
#[derive(Debug, Clone, Deserialize)]
pub struct Upload {
    /// Relative to the project: `/uploads/<secret>/<file name>`.
    pub url: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub markdown: String,
}

/// A file to send as the `file` part of a form.
pub(super) struct FilePart<'a> {
    pub path: &'a Path,
    pub file_name: String,
    pub content_type: String,
}

/// The form's bytes: head, the file, tail.
type FormBody = Chain<Chain<Cursor<Vec<u8>>, File>, Cursor<Vec<u8>>>;

pub(super) struct Form {
    pub content_type: String,
    pub len: u64,
    pub body: FormBody,
}

impl FilePart<'_> {
    /// The form, opened afresh for each attempt.
    pub fn form(&self) -> Result<Form> {
        let file = File::open(self.path)
            .with_context(|| format!("opening {} to upload it", self.path.display()))?;
        let file_len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", self.path.display()))?
            .len();
        let boundary = format!(
            "rp-devops-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: {}\r\n\r\n",
            self.file_name, self.content_type
        )
        .into_bytes();
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        Ok(Form {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            len: head.len() as u64 + file_len + tail.len() as u64,
            body: Cursor::new(head).chain(file).chain(Cursor::new(tail)),
        })
    }
}

/// A file name safe inside a quoted header parameter: no quotes,
/// backslashes, control characters or path separators; at most 200 bytes.
pub fn safe_file_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' | '/' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = out.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return "attachment".to_owned();
    }
    out = trimmed.to_owned();
    if out.len() > 200 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// A MIME type safe in a header; anything odd becomes octet-stream.
fn safe_content_type(content_type: Option<&str>) -> String {
    match content_type.map(str::trim) {
        Some(t)
            if !t.is_empty()
                && t.len() < 128
                && t.contains('/')
                && t.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '+' | '-' | '_')
                }) =>
        {
            t.to_owned()
        }
        _ => "application/octet-stream".to_owned(),
    }
}

impl GitLab {
    /// Upload a file to the project; the answer's `url` links it from any
    /// issue or note of the project.
    pub fn upload_file(
        &self,
        project: &str,
        path: &Path,
        file_name: &str,
        content_type: Option<&str>,
    ) -> Result<Written<Upload>> {
        let api_path = format!("{}/uploads", Self::project_path(project));
        let part = FilePart {
            path,
            file_name: safe_file_name(file_name),
            content_type: safe_content_type(content_type),
        };
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let summary = format!(
            "upload {:?} ({})",
            part.file_name,
            bytesize::ByteSize(bytes)
        );
        self.write_payload(
            Method::Post,
            &api_path,
            Payload::File(&part),
            &summary,
            || Ok(None),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_break_the_header() {
        assert_eq!(safe_file_name("a\"b\r\n.txt"), "a_b__.txt");
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_file_name(" .. "), "attachment");
        assert_eq!(safe_file_name(&"é".repeat(300)).len(), 200);
        assert_eq!(safe_content_type(Some("image/png")), "image/png");
        assert_eq!(
            safe_content_type(Some("text/plain\r\nX-Evil: 1")),
            "application/octet-stream"
        );
    }

    #[test]
    fn the_form_has_its_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let part = FilePart {
            path: &path,
            file_name: "f.bin".into(),
            content_type: "application/octet-stream".into(),
        };
        let mut form = part.form().unwrap();
        let mut body = Vec::new();
        form.body.read_to_end(&mut body).unwrap();
        assert_eq!(body.len() as u64, form.len);
        assert!(
            form.content_type
                .starts_with("multipart/form-data; boundary=rp-devops-")
        );
    }
}
