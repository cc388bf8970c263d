//! Reading the upload's `multipart/form-data` body: the checks on the
//! request head, then field by field, with every check that can refuse the
//! upload made as soon as the fields seen so far allow it.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use futures_util::{Stream, StreamExt};

use super::part_header::{MAX_PART_HEADER, MultipartForm, PartHeaderTooLarge};
use super::{Rejection, ReleaseReceiver};
use crate::ops::publish_release::{PublishRequest, ReceivedFile, VersionLock};
use crate::release::publish::check_file_name;
use crate::release::{
    FIELD_FILE, FIELD_MD5, FIELD_PRODUCT, META_VERSION, is_md5_hex, is_valid_meta_key,
    is_valid_meta_value, is_valid_name, meta_key_rule, name_rule,
};

/// Room for the multipart framing and metadata fields on top of `max_size`.
const FORM_ALLOWANCE: u64 = 1024 * 1024;
/// Largest metadata field value.
const MAX_FIELD_BYTES: usize = 64 * 1024;

impl ReleaseReceiver {
    /// The largest body accepted.
    pub(super) fn body_limit(&self) -> u64 {
        body_limit(self.max_size)
    }

    /// The checks made on the request head alone, before one body byte is
    /// read; then the body as a multipart stream.
    pub(super) fn open_form(&self, request: Request) -> Result<MultipartForm, Rejection> {
        self.authorize(request.headers())?;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a multipart/form-data body",
            )
        })?;
        let limit = self.body_limit();
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(self.too_large());
        }
        let body = idle_timeout(request.into_body().into_data_stream(), self.idle_timeout);
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
        Ok(MultipartForm::new(body, boundary, constraints))
    }

    /// Read the whole form: everything up to the point where the artifact is
    /// on disk, hashed, and (when the form named its version early enough)
    /// its version locked. The rest is the publish operation's.
    pub(super) async fn receive_form(
        self: &Arc<Self>,
        multipart: &mut MultipartForm,
    ) -> Result<PublishRequest, Rejection> {
        let mut form = Form::default();
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| self.multipart_error(e))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let is_meta = ![FIELD_FILE, FIELD_PRODUCT, FIELD_MD5].contains(&name.as_str());
            if is_meta && form.meta.len() >= self.max_fields {
                return Err(Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "more than {} metadata fields (this server's release.max_fields)",
                        self.max_fields
                    ),
                ));
            }
            if name == FIELD_FILE {
                if form.file.is_some() {
                    return Err(Rejection::unprocessable("more than one `file` part"));
                }
                let file_name = field
                    .file_name()
                    .map(str::to_owned)
                    .ok_or_else(|| Rejection::unprocessable("the `file` part has no filename"))?;
                check_file_name(&file_name).map_err(Rejection::unprocessable)?;
                let received = self.receive_file(&mut field, form.product.clone()).await?;
                form.file = Some((file_name, received));
            } else {
                let value = read_text(&mut field, &name).await.map_err(|e| match e {
                    FieldError::Multipart(e) => self.multipart_error(e),
                    FieldError::Rejected(r) => r,
                })?;
                form.set(name, value)?;
            }
            // Fail fast, before a large file streams in, once we know enough.
            if let Some(product) = &form.product {
                self.publisher.product(product)?;
            }
            if let Some(version) = form.meta.get(META_VERSION) {
                if !is_valid_name(version) {
                    return Err(Rejection::unprocessable(name_rule("version", version)));
                }
                if let (Some(product), None) = (&form.product, &form.lock) {
                    form.lock = Some(self.publisher.reserve(product, version)?);
                }
            }
        }

        let Some((file_name, received)) = form.file else {
            return Err(Rejection::unprocessable(
                "no `file` part: send the artifact as -F file=@PATH",
            ));
        };
        let Some(product) = form.product else {
            return Err(Rejection::unprocessable("no `product` field"));
        };
        self.publisher.product(&product)?;
        let Some(md5) = form.md5 else {
            return Err(Rejection::unprocessable(
                "no `md5` field: send the artifact's MD5 in hex",
            ));
        };
        Ok(PublishRequest {
            product,
            file_name,
            received,
            md5,
            meta: form.meta,
            lock: form.lock,
        })
    }

    pub(super) fn too_large(&self) -> Rejection {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the artifact is larger than this server's release.max_size ({})",
                bytesize::ByteSize(self.max_size)
            ),
        )
    }

    pub(super) fn multipart_error(&self, error: multer::Error) -> Rejection {
        match error {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
                self.too_large()
            }
            multer::Error::StreamReadFailed(e) => {
                let io = e.downcast_ref::<io::Error>();
                let timed_out = io.is_some_and(|e| e.kind() == io::ErrorKind::TimedOut);
                let header_too_large = io
                    .and_then(|e| e.get_ref())
                    .is_some_and(|inner| inner.is::<PartHeaderTooLarge>());
                if header_too_large {
                    Rejection::new(
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        format!("a part header of the form is longer than {MAX_PART_HEADER} bytes"),
                    )
                } else if timed_out {
                    Rejection::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "no data for {}; upload abandoned",
                            humantime::format_duration(self.idle_timeout)
                        ),
                    )
                } else {
                    Rejection::new(StatusCode::BAD_REQUEST, "the upload was cut off")
                }
            }
            other => Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("malformed multipart body: {other}"),
            ),
        }
    }
}

/// The largest body accepted: `max_size` plus room for the form.
pub(super) fn body_limit(max_size: u64) -> u64 {
    max_size.saturating_add(FORM_ALLOWANCE)
}

/// The fields seen so far.
#[derive(Default)]
struct Form {
    product: Option<String>,
    md5: Option<String>,
    meta: BTreeMap<String, String>,
    file: Option<(String, ReceivedFile)>,
    lock: Option<VersionLock>,
}

impl Form {
    fn set(&mut self, name: String, value: String) -> Result<(), Rejection> {
        let duplicate = || Rejection::unprocessable(format!("field {name:?} is given twice"));
        match name.as_str() {
            FIELD_PRODUCT => {
                if self.product.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            FIELD_MD5 => {
                let value = value.trim().to_ascii_lowercase();
                if !is_md5_hex(&value) {
                    return Err(Rejection::unprocessable(
                        "the `md5` field is not 32 hex digits",
                    ));
                }
                if self.md5.replace(value).is_some() {
                    return Err(duplicate());
                }
            }
            _ => {
                if !is_valid_meta_key(&name) {
                    return Err(Rejection::unprocessable(meta_key_rule(&name)));
                }
                if !is_valid_meta_value(&value) {
                    return Err(Rejection::unprocessable(format!(
                        "metadata {name:?} contains a NUL byte"
                    )));
                }
                if self.meta.contains_key(&name) {
                    return Err(duplicate());
                }
                self.meta.insert(name, value);
            }
        }
        Ok(())
    }
}

enum FieldError {
    Multipart(multer::Error),
    Rejected(Rejection),
}

/// A metadata field's value, at most `MAX_FIELD_BYTES`, as UTF-8.
async fn read_text(field: &mut multer::Field<'_>, name: &str) -> Result<String, FieldError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(FieldError::Multipart)? {
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(FieldError::Rejected(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("field {name:?} is longer than {MAX_FIELD_BYTES} bytes"),
            )));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| {
        FieldError::Rejected(Rejection::unprocessable(format!(
            "field {name:?} is not UTF-8 text"
        )))
    })
}

/// The request body as a stream that fails with `TimedOut` when the client
/// sends nothing for `idle`.
fn idle_timeout<S>(stream: S, idle: Duration) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send,
{
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(io::ErrorKind::TimedOut, "client idle")),
                None,
            )),
        }
    })
}
